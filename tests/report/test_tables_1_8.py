"""The logic of analysis modules table1 and table3-table8 beyond the catalog-wide contracts of
test_modules.py: Table 6's derived Speedup rows from runs' curves (plain, a Random still rising = lower
bound, an FPT that did not learn = no ratio, a low Random plateau read both ways), the "# Layers" columns Tables 7 and 8 read off their specs, and the
cells whose selection the paper's text pins (Table 1's CIFAR-10 models, its literature cells)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from fptlab.analysis.table7 import fill_layers, layers_of

from fptlab.report import Column, Row, Table, catalog
from fptlab.report.build import build_table
from fptlab.report.engine import ReportOptions, make_report
from fptlab.report.source import Snapshot, load_cells
from fptlab.store import Store
from tests.report.builders import record, register, spec_cells

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
STEPS = range(100, 1001, 100)


def _store(tmp_path: Path, spec: str, data_dir: Path) -> tuple[Store, str, dict[tuple[str, str], list[str]]]:
    """A database with `spec`'s trials registered (none run); hashes by (variant, task)."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = Store(url)
    store.ensure_schema()
    cells = spec_cells(EXPERIMENTS / f"{spec}.toml", data_dir)
    register(store, spec, [cfg for _, cfg in cells])
    by: dict[tuple[str, str], list[str]] = {}
    for labels, cfg in cells:
        by.setdefault((labels.get("variant"), labels.get("task")), []).append(cfg.hash)
    return store, url, by


def _report(key: str, store: Store, url: str) -> object:
    [out] = make_report([key], store, ReportOptions(db_url=url, experiments=EXPERIMENTS, plots=False))
    return out.result


def _flat(value: float) -> list[tuple[int, float]]:
    return [(s, value) for s in STEPS]


def _jump(at: int) -> list[tuple[int, float]]:
    """0.5 before step `at`, 1.0 from it: the 3-evaluation trailing mean reaches 0.99 two evaluations later."""
    return [(s, 1.0 if s >= at else 0.5) for s in STEPS]


# ---- Table 6: Speedup = Random steps / FPT steps, each row to its own plateau ------------------------------
def _rising(top: float) -> list[tuple[int, float]]:
    """Still rising at the budget: a straight line from chance (0.1) towards `top`, never flat."""
    return [(s, 0.1 + (top - 0.1) * s / 1000) for s in STEPS]


@pytest.fixture()
def table6(tmp_path: Path, data_dir: Path) -> object:
    store, url, by = _store(tmp_path, "table6", data_dir)
    runs = {
        ("fpt", "listops"): _flat(1.0), ("random", "listops"): _jump(400),     # 100 vs 600 steps: 6x
        ("fpt", "mnist"): _flat(0.9), ("random", "mnist"): _rising(0.8),       # Random still rising at 1,000
        ("fpt", "bit_xor"): _flat(0.5), ("random", "bit_xor"): _flat(1.0),     # FPT at chance: did not learn
        ("fpt", "cifar10_lra"): _jump(300), ("random", "cifar10_lra"): _flat(0.4),  # Random: a low plateau, fast
    }
    for key, curve in runs.items():
        for h in by[key]:
            record(store, h, accuracy=curve[-1][1], curve=curve)
    return _report("table6", store, url)


def test_table6_speedup_is_random_steps_over_fpt_steps(table6: object) -> None:
    fpt, random = table6.cell("FPT", "ListOps"), table6.cell("Random", "ListOps")
    assert fpt.stat.mean == 100 and random.stat.mean == 600 and not (fpt.censored or random.censored)
    speedup = table6.cell("Speedup", "ListOps")
    assert speedup.text == "6.0x" and speedup.stat.mean == pytest.approx(6.0) and speedup.state == "derived"
    assert speedup.paper.value == 3 and speedup.difference() == pytest.approx(3.0)


def test_table6_a_random_row_still_rising_gives_a_lower_bound(table6: object) -> None:
    random = table6.cell("Random", "MNIST")
    assert random.censored and random.ours() == "not converged by 1 × 10^3"
    speedup = table6.cell("Speedup", "MNIST")
    assert speedup.text == "> 10.0x" and speedup.censored and math.isnan(speedup.difference())


def test_table6_an_fpt_row_that_did_not_learn_gives_no_ratio(table6: object) -> None:
    assert table6.cell("FPT", "XOR").ours() == "did not learn"
    assert table6.cell("Speedup", "XOR").text == "—"


def test_table6_a_low_plateau_is_fast_by_its_own_level_and_slow_to_fpts(table6: object) -> None:
    """Random flat at 40% converged at once on its own terms; it never reaches FPT's level."""
    assert table6.cell("Random", "C10 LRA").stat.mean == 100 and table6.cell("FPT", "C10 LRA").stat.mean == 500
    to_level = table6.cell("Random: steps to FPT's level", "C10 LRA")
    assert to_level.censored and to_level.ours().startswith("> 1 × 10^3")
    assert table6.cell("Speedup", "C10 LRA").text == "0.2x"
    assert table6.cell("Speedup to FPT's level", "C10 LRA").text == "> 2.0x"


def test_table6_columns_without_runs_show_no_ratio(table6: object) -> None:
    assert table6.cell("Speedup", "C10").text == "—" and table6.cell("FPT", "C10").stat is None


def test_table6_notes_state_both_definitions(table6: object) -> None:
    from fptlab.report import convergence

    assert convergence.DEFINITION in table6.definitions() and convergence.LEVEL_DEFINITION in table6.definitions()


# ---- Tables 7 and 8: "# Layers" read off the spec -----------------------------------------------------
def _from_spec(key: str, data_dir: Path) -> object:
    table = catalog.get(key)
    return build_table(table, load_cells(table.spec_name, offline=False, folder=EXPERIMENTS, data_dir=data_dir), Snapshot({}, {}))


def test_table8_layers_come_from_each_rows_backbone(data_dir: Path) -> None:
    result = _from_spec("table8", data_dir)
    assert [result.cell(r, "# Layers").text for r in ("Small (Base)", "Medium", "Large")] == ["12", "24", "36"]
    assert result.cell("Large", "# Layers").state == "derived"


def test_table7_layers_for_fpt_and_literature_rows(data_dir: Path) -> None:
    result = _from_spec("table7", data_dir)
    assert result.cell("FPT (GPT-2)", "# Layers").text == "12"
    vanilla = result.cell("Vanilla Transformer", "# Layers")
    assert vanilla.literature == "Tay et al. (2020)" and vanilla.text is None and vanilla.paper.value == 3


def test_layers_of_reads_depth_then_lstm_layers_then_the_backbone() -> None:
    assert layers_of({"backbone": "gpt2", "model.depth": 0}) == 12
    assert layers_of({"backbone": "gpt2", "model.depth": 3}) == 3
    assert layers_of({"backbone": "lstm", "model.depth": 0, "model.layers": 12}) == 12
    assert layers_of({"backbone": "gpt2-large"}) == 36


def test_fill_layers_shows_every_count_a_row_mixes_and_a_dash_for_none(data_dir: Path) -> None:
    table = Table(
        key="table1", title="t", section="3.1", post=fill_layers,
        rows=(Row("Full", {"variant": "full"}), Row("None", {"variant": "nothing"})),
        columns=(Column("# Layers", derived=True),),
    )
    result = build_table(table, load_cells("table1", offline=False, folder=EXPERIMENTS, data_dir=data_dir), Snapshot({}, {}))
    assert result.cell("Full", "# Layers").text == "3/12"  # Full on CIFAR-10 keeps 3 blocks
    assert result.cell("None", "# Layers").text == "—"


def test_table8_parameter_columns_read_the_fpt_runs(tmp_path: Path, data_dir: Path) -> None:
    store, url, by = _store(tmp_path, "table8", data_dir)
    cells = spec_cells(EXPERIMENTS / "table8.toml", data_dir)
    small = [cfg.hash for labels, cfg in cells if labels["backbone"] == "gpt2"]
    for h in small:
        fpt = h in by[("fpt", "cifar10")]
        record(store, h, accuracy=0.68 if fpt else 0.61, results={"total_params": 123_747_850, "trainable_params": 132_874 if fpt else 1})
    result = _report("table8", store, url)
    assert result.cell("Small (Base)", "Total Params").stat.mean == 123_747_850
    assert result.cell("Small (Base)", "Trained Params").stat.mean == 132_874  # the FPT runs', not Random's
    assert result.cell("Small (Base)", "Trained Params").ours().startswith("133K")
    assert result.cell("Small (Base)", "FPT").stat.mean == pytest.approx(68.0)
    assert result.cell("Medium", "FPT").state == "empty"


# ---- Table 1: the cells the paper's text pins --------------------------------------------------------
def test_table1_cifar10_runs_the_papers_models(data_dir: Path) -> None:
    cells = load_cells("table1", offline=False, folder=EXPERIMENTS, data_dir=data_dir)
    result = build_table(catalog.get("table1"), cells, Snapshot({}, {}))
    by_hash = {c.hash: c for c in cells.cells}
    fpt = [by_hash[h].values for h in result.cell("FPT", "CIFAR-10").hashes]
    full = [by_hash[h].values for h in result.cell("Full", "CIFAR-10").hashes]
    assert len(fpt) == 3 and {v["backbone"] for v in fpt} == {"gpt2-large"}
    assert len(full) == 3 and {(v["backbone"], v["model.depth"]) for v in full} == {("gpt2", 3)}
    literature = {k for k, c in result.cells.items() if c.literature}
    assert literature == {("Full", "ListOps"), ("Full", "C10 LRA"), ("Full", "Homology"), ("LSTM", "Homology")}
    assert result.cell("LSTM", "Homology").hashes == []
