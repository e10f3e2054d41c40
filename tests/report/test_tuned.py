"""The tuned-comparison table (`fptlab.report.tuned`) on a database built through the store API from the
real offline spec (experiments/offline/tuned.toml): per arm the value with the best mean validation
accuracy, its test accuracy at the selected steps beside the fixed-lr result, edge warnings with the
widening command, pruned and unfinished candidates, rank stability, Holm-adjusted comparisons, every
format, and the sensitivity figure."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fptlab.report import render
from fptlab.report.engine import ReportOptions, make_report
from fptlab.report.multiple import holm
from fptlab.report.tuned import edge_of, widened
from fptlab.store import Store
from tests.report.builders import record, register, spec_cells

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
LRS = (1e-4, 3e-4, 1e-3, 3e-3)
# (variant, lr) -> mean validation accuracy of its seeds (each seed = mean + (seed - 1) / 100), on ListOps
VAL = {
    "fpt": {1e-4: 0.30, 3e-4: 0.35, 1e-3: 0.40, 3e-3: 0.33},  # interior optimum: the fixed lr
    "random": {1e-4: 0.20, 3e-4: 0.22, 1e-3: 0.25, 3e-3: 0.31},  # the highest candidate: edge
    "fpt_full": {1e-4: 0.45, 3e-4: 0.50, 1e-3: 0.30, 3e-3: 0.20},  # 3e-4 best on validation, but one seed is pruned
    "full": {1e-4: 0.36, 3e-4: 0.41, 1e-3: 0.28, 3e-3: 0.21},  # 3e-4 best, but one seed still running
}


def _test_of(variant: str, lr: float, seed: int, corrupt: bool) -> float:
    """The test accuracy at the selected step: unrelated to validation on purpose (and, corrupted,
    reversed), so a selection that read it would move."""
    base = 0.9 - VAL[variant][lr] if corrupt else VAL[variant][lr] - 0.02
    return base + seed / 100


def build(tmp_path: Path, data_dir: Path, *, corrupt: bool = False, name: str = "r.db") -> tuple[Store, str]:
    url = f"sqlite:///{tmp_path / name}"
    store = Store(url)
    store.ensure_schema()
    cells = spec_cells(EXPERIMENTS / "offline" / "tuned.toml", data_dir)
    register(store, "tuned-offline", [cfg for _, cfg in cells])
    for labels, cfg in cells:
        if labels["task"] != "listops":
            continue
        variant, lr, seed = labels["variant"], labels["lr"], labels["seed"]
        val = VAL[variant][lr] + (seed - 1) / 100
        if variant == "fpt_full" and lr == 3e-4 and seed == 2:
            record(store, cfg.hash, status="pruned", curve=[(50, 0.1)], results={"best_val_accuracy": 0.1, "pruned_at": 50})
            continue
        if variant == "full" and lr == 3e-4 and seed == 2:
            record(store, cfg.hash, status="running", curve=[(20, 0.3)])
            continue
        test = _test_of(variant, lr, seed, corrupt)
        record(store, cfg.hash, accuracy=test, curve=[(100, test)],
               results={"best_val_accuracy": val, "selected_test_accuracy": test, "selected_step": 100, "val_fraction": 0.1})
    return store, url


def report(store: Store, url: str, plots: bool = False):
    [out] = make_report(["tuned"], store, ReportOptions(db_url=url, experiments=EXPERIMENTS, plots=plots))
    return out


def test_each_arm_selects_its_best_mean_validation_value_and_shows_test_there(tmp_path: Path, data_dir: Path) -> None:
    store, url = build(tmp_path, data_dir)
    result = report(store, url).result
    arms = {row: result.arms[(row, "ListOps")] for row in ("Pretrained frozen", "Random frozen", "Pretrained full", "Random full")}
    assert arms["Pretrained frozen"].selected == 1e-3 and arms["Pretrained frozen"].edge is None
    assert arms["Random frozen"].selected == 3e-3 and arms["Random frozen"].edge == "highest"
    assert arms["Pretrained full"].selected == 1e-4 and arms["Pretrained full"].edge == "lowest"  # 3e-4 lost a seed at a rung
    assert arms["Random full"].selected == 1e-4  # 3e-4 is not finished: not eligible yet
    assert arms["Random full"].pending == 1
    cell = result.cell("Pretrained frozen · tuned", "ListOps")
    assert cell.stat.n == 3 and cell.stat.mean == pytest.approx((0.38 + 0.01) * 100)  # seeds 0.38, 0.39, 0.40
    assert math.isfinite(cell.stat.low) and "lr 0.001" in cell.ours() and "⚠" not in cell.ours()
    fixed = result.cell("Random frozen · fixed", "ListOps")
    assert fixed.stat.mean == pytest.approx((0.25 - 0.02 + 0.01) * 100) and "lr 0.001" in fixed.ours()
    assert "⚠ highest lr" in result.cell("Random frozen · tuned", "ListOps").ours()
    assert "1 value(s) still to finish" in result.cell("Random full · tuned", "ListOps").ours()
    assert result.cell("Pretrained frozen · tuned", "MNIST").stat is None  # nothing recorded there


def test_selection_never_reads_the_test_split(tmp_path: Path, data_dir: Path) -> None:
    honest = report(*build(tmp_path, data_dir)).result
    corrupted = report(*build(tmp_path, data_dir, corrupt=True, name="c.db")).result
    for key, arm in honest.arms.items():
        assert corrupted.arms[key].selected == arm.selected, key
    a = honest.cell("Random frozen · tuned", "ListOps").stat.mean
    b = corrupted.cell("Random frozen · tuned", "ListOps").stat.mean
    assert a != pytest.approx(b)  # the test numbers did change: only what is shown moved


@pytest.mark.parametrize(("value", "expected"), [(1e-4, "lowest"), (3e-3, "highest"), (3e-4, None), (1e-3, None)])
def test_the_edge_warning_fires_exactly_at_the_edges(value: float, expected: str | None) -> None:
    assert edge_of(value, list(LRS)) == expected
    assert edge_of(value, [value]) is None  # one candidate has no range to leave


def test_widening_adds_one_step_of_the_ranges_own_spacing() -> None:
    assert widened([1e-6, 1e-5, 1e-4], "lowest", log=True) == [1e-7, 1e-6, 1e-5, 1e-4]
    assert widened([1e-6, 1e-5, 1e-4], "highest", log=True) == [1e-6, 1e-5, 1e-4, 1e-3]
    assert widened([0.1, 0.2, 0.3], "highest", log=False) == [0.1, 0.2, 0.3, 0.4]


def test_notes_say_edges_with_the_command_pruned_runs_ranks_and_the_correction(tmp_path: Path, data_dir: Path) -> None:
    store, url = build(tmp_path, data_dir)
    result = report(store, url).result
    notes = "\n".join(result.notes)
    assert "Random frozen / ListOps: the selected lr = 0.003 is the highest candidate" in notes
    assert "--tune-values 0.0001,0.0003,0.001,0.003,0.009" in notes
    assert "Pretrained full / ListOps: the selected lr = 0.0001 is the lowest candidate" in notes
    assert "--tune-values 3.33333e-05,0.0001,0.0003,0.001,0.003" in notes
    assert "Cut early by successive halving (eta 3, rungs 50)" in notes and "Pretrained full / ListOps: lr 0.0003 (1 seed(s) at step 50)" in notes
    # fixed lr: Pretrained frozen > Pretrained full > Random full > Random frozen; tuned: Pretrained full first
    assert ("Rank of rows, ListOps: CHANGED by tuning: fixed Pretrained frozen > Pretrained full > Random full > Random frozen; "
            "tuned Pretrained full > Pretrained frozen > Random full > Random frozen.") in notes
    assert "Holm-Bonferroni" in notes
    raw = [c.result.p for c in result.comparisons]
    assert [c.adjusted for c in result.comparisons] == pytest.approx(holm(raw), nan_ok=True)
    assert any("adj. p" in line for line in render.comparison_lines(result))
    assert result.unfinished == {"running": 1, **{k: v for k, v in result.unfinished.items() if k != "running"}}
    assert any("fptlab sweep" in c and "tuned.toml" in c for c in result.fill)


def test_rank_lines_say_whether_tuning_changes_the_order_of_the_rows() -> None:
    from fptlab.report.build import CellResult
    from fptlab.report.declare import Column, Row, Table
    from fptlab.report.stats import summarize
    from fptlab.report.tuned import rank_lines

    table = Table(key="t", title="t", section="-", rows=(Row("A"), Row("B"), Row("C")), columns=(Column("X"), Column("Y")))

    def cell(mean: float) -> CellResult:
        c = CellResult("r", "c", "%")
        c.stat = summarize([mean - 1, mean + 1])
        return c

    means = {("A", "X"): (50, 50), ("B", "X"): (40, 45), ("C", "X"): (30, 35),  # (fixed, tuned): same order
             ("A", "Y"): (50, 50), ("B", "Y"): (40, 60), ("C", "Y"): (30, 35)}  # B overtakes A when tuned
    grid = {}
    for (r, c), (fixed, tuned) in means.items():
        grid[(f"{r} · fixed", c)], grid[(f"{r} · tuned", c)] = cell(fixed), cell(tuned)
    assert rank_lines(table, {}, grid) == [
        "Rank of rows, X: unchanged by tuning (A > B > C).",
        "Rank of rows, Y: CHANGED by tuning: fixed A > B > C; tuned B > A > C.",
    ]


def test_every_format_carries_the_tuned_cells_and_notes(tmp_path: Path, data_dir: Path) -> None:
    store, url = build(tmp_path, data_dir)
    item = report(store, url, plots=True)
    result = item.result
    md, latex, csv = render.to_markdown(result), render.to_latex(result), render.csv_document([item])
    from fptlab.report.html import page

    html = page([item], title="t", subtitle="s", offline=True)
    for text in (md, latex, csv, html):
        assert "highest lr" in text and "Holm" in text.replace("Holm-Bonferroni", "Holm")
    assert "Pretrained frozen · tuned" in csv
    captions = [c for c, _ in item.figures]
    assert any("validation accuracy against lr" in c and "ListOps" in c for c in captions)


def test_an_arm_whose_every_value_lost_a_seed_says_so(tmp_path: Path, data_dir: Path) -> None:
    store, url = build(tmp_path, data_dir)
    for labels, cfg in spec_cells(EXPERIMENTS / "offline" / "tuned.toml", data_dir):
        if labels["task"] != "bit_memory" or labels["variant"] != "fpt":
            continue
        if labels["seed"] == 2:
            record(store, cfg.hash, status="pruned", curve=[(50, 0.1)], results={"best_val_accuracy": 0.1, "pruned_at": 50})
        else:
            record(store, cfg.hash, accuracy=0.6, curve=[(100, 0.6)],
                   results={"best_val_accuracy": 0.6, "selected_test_accuracy": 0.6, "selected_step": 100, "val_fraction": 0.1})
    result = report(store, url).result
    cell = result.cell("Pretrained frozen · tuned", "Bit Memory")
    assert cell.stat is None and "no lr value has every seed completed (4 of 4 cut by halving)" in cell.ours()
