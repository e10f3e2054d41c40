"""The logic of analysis modules table9-table16 beyond what every module meets (tests/report/
test_modules.py): Table 10's Speedup column computed by its post hook from the runs' timings, Table
12's cells the paper did not run, Table 16's columns selected by the list-valued `train` axis, and
Table 13's diverged runs, on small databases built through the store API."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fptlab.report import render
from fptlab.report.engine import ReportOptions, make_report
from fptlab.store import Store
from tests.report.builders import record, register, spec_cells

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def _db(tmp_path: Path, data_dir: Path, spec: str) -> tuple[Store, str, dict[tuple, list[str]]]:
    """A store with `spec`'s cells registered; hashes by (variant, task), in seed order."""
    url = f"sqlite:///{tmp_path / f'{spec}.db'}"
    store = Store(url)
    store.ensure_schema()
    cells = spec_cells(EXPERIMENTS / f"{spec}.toml", data_dir)
    register(store, spec, [cfg for _, cfg in cells])
    by: dict[tuple, list[str]] = {}
    for labels, cfg in cells:
        by.setdefault((labels.get("variant"), labels.get("task")), []).append(cfg.hash)
    return store, url, by


def _report(key: str, store: Store, url: str, data_dir: Path) -> object:
    [out] = make_report([key], store, ReportOptions(db_url=url, experiments=EXPERIMENTS, plots=False, data_dir=data_dir))
    return out.result


def _timed(store: Store, h: str, *, seconds_per_step: float, steps: int = 1000, feature_seconds: float = 0.0,
           accuracy: float = 0.3, status: str = "completed") -> None:
    """A finished run whose wall clock is `feature_seconds` (the cached-feature pass) + steps x seconds_per_step."""
    record(store, h, status=status, accuracy=accuracy, curve=[(steps, accuracy)],
           results={"steps": steps, "wall_seconds": feature_seconds + steps * seconds_per_step, "feature_seconds": feature_seconds})


# ---- Table 10: Speedup = FPT seconds per step / Output Only seconds per step ----------------------------
def test_table10_speedup_is_fpt_over_output_only_seconds_per_step(tmp_path: Path, data_dir: Path) -> None:
    store, url, by = _db(tmp_path, data_dir, "table10")
    for h, sps in zip(by[("fpt", "listops")], [0.5, 0.6, 0.7]):  # mean 0.6 s/step
        _timed(store, h, seconds_per_step=sps, accuracy=0.38)
    for h in by[("output_only", "listops")]:  # 1 ms/step once the 200 s feature pass is left out
        _timed(store, h, seconds_per_step=0.001, feature_seconds=200.0, accuracy=0.33)
    result = _report("table10", store, url, data_dir)
    cell = result.cell("ListOps", "Speedup")
    assert cell.state == "derived" and cell.unit == "x" and not cell.hashes
    assert cell.stat.mean == pytest.approx(600.0) and cell.stat.n == 3
    assert cell.text == "600.0x"
    assert cell.paper.text == "500 – 2000×" and cell.difference() == pytest.approx(100.0)  # against the range's low end
    assert result.cell("ListOps", "Output Only").stat.mean == pytest.approx(33.0)
    assert result.cell("ListOps", "FPT").stat.mean == pytest.approx(38.0)
    assert "600.0x" in render.to_markdown(result)


def test_table10_speedup_waits_for_both_variants_and_counts_finished_runs_only(tmp_path: Path, data_dir: Path) -> None:
    store, url, by = _db(tmp_path, data_dir, "table10")
    for h in by[("fpt", "cifar10_lra")]:  # FPT finished, Output Only not run: no ratio yet
        _timed(store, h, seconds_per_step=1.0)
    fpt, cached = by[("fpt", "listops")], by[("output_only", "listops")]
    _timed(store, fpt[0], seconds_per_step=0.4)
    _timed(store, fpt[1], seconds_per_step=0.8, status="diverged")  # finished: its timing counts
    record(store, fpt[2], status="failed")  # no timing: left out
    _timed(store, cached[0], seconds_per_step=0.002, feature_seconds=50.0)
    record(store, cached[1], status="running")
    result = _report("table10", store, url, data_dir)
    lra = result.cell("CIFAR-10 LRA", "Speedup")
    assert lra.text == "—" and lra.stat is None
    listops = result.cell("ListOps", "Speedup")
    assert listops.stat.mean == pytest.approx(0.6 / 0.002) and listops.stat.n == 1
    assert listops.text == "300.0x"


def test_table10_full_transformer_is_literature(tmp_path: Path, data_dir: Path) -> None:
    store, url, _ = _db(tmp_path, data_dir, "table10")
    result = _report("table10", store, url, data_dir)
    for row in ("ListOps", "CIFAR-10 LRA"):
        cell = result.cell(row, "Full Transformer")
        assert cell.state == "literature" and cell.literature == "Tay et al. (2020)" and not cell.hashes
    assert result.cell("CIFAR-10 LRA", "Full Transformer").paper.value == 42.0


# ---- Table 12: the paper's "-" cells select nothing ----------------------------------------------------
def test_table12_cells_the_paper_did_not_run_select_nothing(tmp_path: Path, data_dir: Path) -> None:
    store, url, _ = _db(tmp_path, data_dir, "table12")
    result = _report("table12", store, url, data_dir)
    for row, column in (("1", "Random"), ("3", "Random"), ("6", "Random"), ("24", "Pretrained")):
        cell = result.cell(row, column)
        assert cell.hashes == [] and cell.paper is None and cell.ours() == "—"
    for row, column in (("1", "Pretrained"), ("12", "Pretrained"), ("12", "Random"), ("24", "Random")):
        assert len(result.cell(row, column).hashes) == 3, (row, column)
    assert set(result.cell("12", "Pretrained").hashes).isdisjoint(result.cell("24", "Random").hashes)


def test_table12_all_12_blocks_is_table10s_output_only_on_listops(tmp_path: Path, data_dir: Path) -> None:
    store, url, by10 = _db(tmp_path, data_dir, "table10")
    store12, url12, _ = _db(tmp_path, data_dir, "table12")
    result = _report("table12", store12, url12, data_dir)
    assert sorted(result.cell("12", "Pretrained").hashes) == sorted(by10[("output_only", "listops")])


# ---- Table 16: columns by the list-valued `train` axis -------------------------------------------------
def test_table16_columns_split_by_trained_groups(tmp_path: Path, data_dir: Path) -> None:
    store, url, _ = _db(tmp_path, data_dir, "table16")
    _, _, by2 = _db(tmp_path, data_dir, "table2")
    result = _report("table16", store, url, data_dir)
    frozen, finetuned = result.cell("Pretrained", "Frozen Layer Norm"), result.cell("Pretrained", "Finetuned Layer Norm")
    assert len(frozen.hashes) == len(finetuned.hashes) == 3 and set(frozen.hashes).isdisjoint(finetuned.hashes)
    assert sorted(finetuned.hashes) == sorted(by2[("fpt", "cifar10")])  # Finetuned Layer Norm = FPT
    assert sorted(result.cell("Random", "Finetuned Layer Norm").hashes) == sorted(by2[("random", "cifar10")])


# ---- Table 13: diverged runs -----------------------------------------------------------------------------
def test_table13_diverged_runs_are_marked_and_compared_with_fpt(tmp_path: Path, data_dir: Path) -> None:
    store, url, by = _db(tmp_path, data_dir, "table13")
    for h, acc in zip(by[("fpt", "mnist")], [0.98, 0.97, 0.99]):
        record(store, h, accuracy=acc, curve=[(100, acc)])
    attention = by[("attention", "mnist")]
    record(store, attention[0], status="diverged", accuracy=0.89, curve=[(100, 0.89)])
    for h in attention[1:]:
        record(store, h, accuracy=0.90, curve=[(100, 0.90)])
    result = _report("table13", store, url, data_dir)
    cell = result.cell("+ Attention", "MNIST")
    assert cell.diverged == 1 and cell.ours().startswith("89.7%†")
    assert cell.paper.diverged and cell.paper.value == 89.0
    [comp] = [c for c in result.comparisons if c.column == "MNIST" and c.b == "+ Attention"]
    assert comp.a == "FPT" and comp.result.diff == pytest.approx(98.0 - 89.0 - 2 / 3, abs=1e-6)
    assert not math.isnan(comp.result.p)
