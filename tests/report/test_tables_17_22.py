"""Tables 17-22: Table 22's registry-derived values against the paper's (and its parameter count against
torch's), its rendering without a spec or a database, and the trials Tables 17-21 share with Tables 2
and with each other (the paper prints the same numbers for them, and the modules' notes say so)."""

from __future__ import annotations

import functools
import importlib
import math
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fptlab.cli import app
from fptlab.report import catalog, render
from fptlab.report.build import build_table
from fptlab.report.engine import ReportOptions, make_report
from fptlab.report.html import page
from fptlab.report.source import Snapshot, load_cells
from tests.report.test_engine import assert_balanced_html
from tests.report.test_paper_numbers import PAPER_TABLES

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
TABLE22 = catalog.get("table22")
table22 = importlib.import_module(TABLE22.post.__module__)  # the module, for its helpers
BODY_PARAMS = {"gpt2": 124_439_808, "gpt2-medium": 354_823_168, "gpt2-large": 774_030_080}  # GPT2Model, as torch counts


def _table22() -> object:
    return build_table(TABLE22, None, Snapshot({}, {}))


# ---- Table 22: descriptive, from the backbone registry ----------------------------------------------------
def test_table22_labels_are_the_papers_without_tex_subscript_braces() -> None:
    printed = {(r, re.sub(r"_\{(\w+)\}", r"_\1", c)): v for (r, c), v in PAPER_TABLES[22].items()}
    assert {k: v.text for k, v in TABLE22.paper.items()} == printed


@pytest.mark.parametrize("column", ["n_layers", "n_dim", "n_heads"])
def test_table22_hyperparameters_are_the_papers(column: str) -> None:
    result = _table22()
    for row in ("Small (Base)", "Medium", "Large"):
        cell = result.cell(row, column)
        assert cell.state == "derived" and cell.stat.n == 1
        assert cell.stat.mean == cell.paper.value and cell.difference() == 0
        assert cell.ours() == cell.paper.text  # "12", "768", ...


def test_table22_parameter_counts() -> None:
    result = _table22()
    for row, backbone in table22.SIZES.items():
        cell = result.cell(row, "# Parameters")
        assert cell.unit == "params" and cell.stat.mean == BODY_PARAMS[backbone]
        assert f"{BODY_PARAMS[backbone] / 1e6:.1f}M" in TABLE22.notes[0]  # the note quotes what we count
    assert [result.cell(r, "# Parameters").ours() for r in table22.SIZES] == ["124M", "355M", "774M"]
    # The paper's 117M and 345M are GPT-2's original (retracted) counts; Large agrees to the printed digits.
    assert result.cell("Large", "# Parameters").ours() == result.cell("Large", "# Parameters").paper.text
    assert result.cell("Small (Base)", "# Parameters").difference() == pytest.approx(124_439_808 - 117e6)


def test_table22_gpt2_parameter_formula_is_what_torch_counts() -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from fptlab.backbones import BACKBONES
    from fptlab.backbones.gpt2 import SIZES

    for name, expected in BODY_PARAMS.items():
        width, layers, heads, _, vocab = SIZES[name]
        config = transformers.GPT2Config(n_embd=width, n_layer=layers, n_head=heads, n_positions=1024, vocab_size=vocab)
        with torch.device("meta"):  # shapes only: no memory, no init time
            model = transformers.GPT2Model(config)
        counted = sum(p.numel() for p in model.parameters())
        assert counted == expected == table22.gpt2_parameters(width, layers, vocab, BACKBONES.get(name).max_positions)


def test_table22_shows_a_dash_for_what_the_registry_does_not_record(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(table22.SIZES, "Small (Base)", "bert-base")  # a family without GPT-2's size table
    result = _table22()
    assert result.cell("Small (Base)", "n_layers").ours() == "12"
    for column in ("n_heads", "# Parameters"):
        cell = result.cell("Small (Base)", column)
        assert cell.ours() == "—" and cell.stat is None and math.isnan(cell.difference())


def test_table22_renders_without_spec_or_database(tmp_path: Path) -> None:
    [out] = make_report(["table22"], None, ReportOptions(experiments=EXPERIMENTS))
    result = out.result
    assert out.provenance == "no runs (descriptive table)" and not result.fill and not result.unfinished
    assert "| Small (Base) | 12 · paper 12 (+0) | 768 · paper 768 (+0) | 12 · paper 12 (+0) | 124M · paper 117M" in render.to_markdown(result)
    assert len(render.to_csv([result]).splitlines()) == 1 + 3 * 4
    assert r"n\_layers" in render.to_latex(result)
    assert_balanced_html(page([out], title="t", subtitle="s", offline=False))
    cli = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["report", "--table", "22", "--db", f"sqlite:///{tmp_path / 'none.db'}", "--experiments", str(EXPERIMENTS)])
    assert cli.exit_code == 0, cli.output
    assert "124M" in cli.output and "paper 117M" in cli.output and "fptlab sweep" not in cli.output


# ---- Tables 17-21: the trials they share ----------------------------------------------------------------
@functools.cache
def _built(key: str, data_dir: Path, offline: bool = False) -> tuple[object, object]:
    table = catalog.get(key)
    cells = load_cells(table.spec_name, offline=offline, folder=EXPERIMENTS, data_dir=data_dir)
    return cells, build_table(table, cells, Snapshot({}, {}))


def _hashes(key: str, row: str, column: str, data_dir: Path) -> list[str]:
    return _built(key, data_dir)[1].cell(row, column).hashes


TASKS = ("Bit Memory", "Bit XOR", "ListOps", "MNIST", "CIFAR-10", "CIFAR-10 LRA", "Homology")
TABLE2_TASK = {"Bit Memory": "Bit Memory", "Bit XOR": "XOR", "ListOps": "ListOps", "MNIST": "MNIST", "CIFAR-10": "C10",
               "CIFAR-10 LRA": "C10 LRA", "Homology": "Homology"}
SHARED = [  # (table, row, column) == (table, row, column): the same trials
    *((("table17", t, "GPT-2 (FPT Default)"), ("table2", "FPT", TABLE2_TASK[t])) for t in ("ListOps", "CIFAR-10")),
    *((("table18", t, "output only"), ("table19", t, "output only")) for t in TASKS),
    *((("table18", t, "output + layernorm"), ("table19", t, "+ layernorm")) for t in TASKS),
    *((("table20", t, "output only"), ("table21", t, "output only")) for t in TASKS),
    *((("table20", t, "output + layernorm"), ("table21", t, "+ layernorm")) for t in TASKS),
    *((("table19", t, "+ positions"), ("table2", "FPT", TABLE2_TASK[t])) for t in TASKS),
    *((("table21", t, "+ positions"), ("table2", "Random", TABLE2_TASK[t])) for t in TASKS),
]


@pytest.mark.parametrize("key", ["table17", "table18", "table19", "table20", "table21"])
def test_shared_cells_select_the_same_trials(key: str, data_dir: Path) -> None:
    pairs = [(a, b) for a, b in SHARED if a[0] == key]
    assert pairs
    for a, b in pairs:
        ours, theirs = _hashes(*a, data_dir), _hashes(*b, data_dir)
        assert len(ours) == 3 and ours == theirs, f"{a} and {b} should be the same three seeds"


def test_table20_trials_are_not_table18s(data_dir: Path) -> None:
    for column in ("output only", "output + input", "output + positions", "output + layernorm"):
        assert not set(_hashes("table18", "MNIST", column, data_dir)) & set(_hashes("table20", "MNIST", column, data_dir))


@pytest.mark.parametrize("key", ["table18", "table19", "table20", "table21"])
def test_offline_homology_row_is_peptides(key: str, data_dir: Path) -> None:
    cells, result = _built(key, data_dir, offline=True)
    first = result.table.columns[0].label
    homology = result.cell("Homology", first).hashes
    assert len(homology) == 3 and {c.labels["task"] for c in cells.cells if c.hash in homology} == {"peptides"}
    assert not result.cell("CIFAR-10", first).hashes  # not in the offline grid: shown as such, not an error
