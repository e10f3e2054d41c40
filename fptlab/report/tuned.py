"""A tuned comparison's table (`Table(tuned=True)` over a spec with a `[tune]` table): every arm (a row x
column cell) at its own best value of the tuned key, chosen on the validation split.

Selection, per arm: among the candidate values whose seeds have all finished (completed or diverged;
a value with a seed cut by successive halving is out: it lost at a rung), the value whose seeds reach
the best mean validation accuracy, each seed at its selected step (`best_val_accuracy`). Ties go to
the smaller value. The cell shows those seeds' test accuracy at their selected steps
(`selected_test_accuracy`): the test split is read only to report the chosen value, never to choose it.

Each arm row of the declared table becomes two rows: "<row> · tuned" (the selected value) and
"<row> · fixed" (the value the cell has without tuning, e.g. the paper's lr 1e-3, 1e-4 for homology),
both beside the paper's number. The notes say which arms selected an edge of their candidates (with the
command that widens the range), which trials successive halving cut, whether the order of the rows in
each column changes between fixed and tuned, and that the comparisons' p-values are Holm-adjusted over
the table. `sensitivity_figures` draws validation accuracy against the tuned value per task.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from fptlab.report.build import CellResult, Comparison, TableResult, provenance
from fptlab.report.declare import Row, Table
from fptlab.report.multiple import NAMES, adjust
from fptlab.report.stats import summarize, welch
from fptlab.store.models import DONE, PRUNED

TUNED, FIXED = "tuned", "fixed"
CORRECTION = "holm"
SELECTION_NOTE = (
    "Selection, per arm (row × column): of the {key} values whose seeds all finished, the one with the best mean "
    "validation accuracy (each seed at its selected step); ties go to the smaller value. A cell shows those seeds' test "
    "accuracy at their selected steps, mean ± std and 95% CI: the test split never enters the selection. "
    "\"· fixed\" rows: the {key} each cell has without tuning (the paper's)."
)


@dataclass
class Candidate:
    value: float
    hashes: list[str] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    val: list[float] = field(default_factory=list)  # best_val_accuracy of each finished seed
    test: list[float] = field(default_factory=list)  # selected_test_accuracy of each finished seed
    pruned: list[tuple[str, float]] = field(default_factory=list)  # (trial, step it was cut at)
    curves_val: dict[str, float] = field(default_factory=dict)  # trial -> best validation accuracy it reached

    @property
    def finished(self) -> bool:
        """Nothing left to run: every seed completed, diverged or was cut."""
        return bool(self.hashes) and sum(self.statuses[s] for s in DONE) == len(self.hashes)

    @property
    def eligible(self) -> bool:
        """Every seed finished and recorded a validation accuracy, none was cut."""
        return self.finished and not self.pruned and len(self.val) == len(self.hashes) and bool(self.val)

    @property
    def mean_val(self) -> float:
        return sum(self.val) / len(self.val) if self.val else math.nan


@dataclass
class Arm:
    row: str
    column: str
    candidates: dict[float, Candidate]
    fixed: float | None  # the value this cell has without tuning (None: unknown)
    selected: float | None = None
    edge: str | None = None  # "lowest" / "highest" when the selected value is an end of the candidates

    @property
    def pending(self) -> int:
        return sum(1 for c in self.candidates.values() if not c.finished)


def arms_of(table: Table, cells: Any, snap: Any, key: str) -> dict[tuple[str, str], Arm]:
    """Every arm of the table with its candidates' trials and their validation / test numbers."""
    out = {}
    for row in table.rows:
        for column in table.columns:
            selected = cells.select({**table.where, **row.where, **column.where}) if cells is not None else []
            arm = Arm(row.label, column.label, {}, _fixed_of(selected))
            for cell in selected:
                value = cell.get(key)
                if not isinstance(value, (int, float)):
                    continue
                cand = arm.candidates.setdefault(float(value), Candidate(float(value)))
                _add_trial(cand, cell.hash, snap)
            arm.candidates = dict(sorted(arm.candidates.items()))
            arm.selected = select(arm)
            arm.edge = edge_of(arm.selected, list(arm.candidates))
            out[(row.label, column.label)] = arm
    return out


def _fixed_of(cells: list[Any]) -> float | None:
    values = {float(c.fixed) for c in cells if isinstance(getattr(c, "fixed", None), (int, float))}
    return values.pop() if len(values) == 1 else None


def _add_trial(cand: Candidate, h: str, snap: Any) -> None:
    state = snap.states.get(h)
    status = "missing" if state is None else state["status"]
    cand.hashes.append(h)
    cand.statuses[status] += 1
    results = snap.results.get(h, {})
    if status == PRUNED:
        cand.pruned.append((h, results.get("steps", math.nan)))
    elif status in DONE:
        val, test = results.get("best_val_accuracy", math.nan), results.get("selected_test_accuracy", math.nan)
        if math.isfinite(val):
            cand.val.append(val)
        if math.isfinite(test):
            cand.test.append(test)
    best = results.get("best_val_accuracy", math.nan)
    if math.isfinite(best):
        cand.curves_val[h] = best


def select(arm: Arm) -> float | None:
    """The eligible candidate with the best mean validation accuracy (the smaller value on a tie)."""
    eligible = [c for c in arm.candidates.values() if c.eligible]
    if not eligible:
        return None
    return max(eligible, key=lambda c: (c.mean_val, -c.value)).value


def edge_of(value: float | None, candidates: list[float]) -> str | None:
    """"lowest" / "highest" when `value` is an end of two or more candidates, else None."""
    if value is None or len(candidates) < 2:
        return None
    if math.isclose(value, min(candidates), rel_tol=1e-9):
        return "lowest"
    if math.isclose(value, max(candidates), rel_tol=1e-9):
        return "highest"
    return None


def widened(candidates: list[float], edge: str, log: bool) -> list[float]:
    """The candidates with one more value past `edge`, one step of the range's own spacing further."""
    values = sorted(candidates)
    if edge == "lowest":
        a, b = values[0], values[1]
        extra = a * a / b if log and a > 0 else a - (b - a)
        values = [extra, *values]
    else:
        a, b = values[-2], values[-1]
        extra = b * b / a if log and a > 0 else b + (b - a)
        values = [*values, extra]
    return [float(f"{v:.6g}") for v in values]


def _value_text(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


# ---- the table ---------------------------------------------------------------------------------------
def build_tuned(table: Table, cells: Any, snap: Any, *, db_url: str | None = None) -> TableResult:
    decl = getattr(cells, "tune", None) if cells is not None else None
    key = decl.key if decl is not None else "lr"
    log = decl.log if decl is not None else True
    arms = arms_of(table, cells, snap, key)
    rows = tuple(Row(f"{r.label} · {kind}", r.where) for r in table.rows for kind in (TUNED, FIXED))
    paper = {(f"{r} · {kind}", c): v for (r, c), v in table.paper.items() for kind in (TUNED, FIXED)}
    literature = {(f"{r} · {kind}", c): v for (r, c), v in table.literature.items() for kind in (TUNED, FIXED)}
    shown = replace(table, rows=rows, paper=paper, literature=literature, compare=tuple((f"{a} · {k}", f"{b} · {k}") for a, b in table.compare
                                                                  for k in (TUNED, FIXED)))
    grid: dict[tuple[str, str], CellResult] = {}
    for (row, column), arm in arms.items():
        grid[(f"{row} · {TUNED}", column)] = _tuned_cell(arm, table, key)
        grid[(f"{row} · {FIXED}", column)] = _fixed_cell(arm, table, key)
        for kind in (TUNED, FIXED):
            grid[(f"{row} · {kind}", column)].literature = table.literature.get((row, column))
    offline = bool(cells is not None and cells.offline)
    for cell in grid.values():
        cell.offline = offline
    comparisons = _comparisons(shown, grid)
    hashes = sorted({h for arm in arms.values() for c in arm.candidates.values() for h in c.hashes})
    status_of = {h: (snap.states.get(h) or {}).get("status", "missing") for h in hashes}
    unfinished = Counter(s for s in status_of.values() if s not in DONE)
    result = TableResult(shown, grid, comparisons, provenance(cells, hashes, snap), unfinished, [], spec=cells, snap=snap)
    result.arms = arms
    result.tune_key, result.tune_log = key, log
    if cells is not None and unfinished:
        result.fill.append(cells.fill_command(db_url))
        if unfinished.get("failed"):
            result.fill.append(f"{cells.fill_command(db_url)} --retry-failed")
    if decl is None:
        result.notes.append("The spec has no [tune] table: this is not a tuned comparison (see README, Tuned comparisons).")
    result.notes.append(SELECTION_NOTE.format(key=key))
    result.notes.extend(edge_notes(arms, key, log, cells, db_url))
    result.notes.extend(pruned_notes(arms, key, decl))
    result.notes.extend(rank_lines(table, arms, grid))
    if comparisons:
        result.notes.append(f"Comparisons: Welch's t-test per pair of rows and column; p adjusted with {NAMES[CORRECTION]} "
                            f"over the table's {len(comparisons)} comparisons (\"adj. p\").")
    if offline:
        result.notes.append("OFFLINE COUNTERPART: MiniLM and offline data on a laptop budget, not the paper's setting.")
    if cells is not None:
        result.notes.extend(cells.notes)
    return result


def _tuned_cell(arm: Arm, table: Table, key: str) -> CellResult:
    out = CellResult(f"{arm.row} · {TUNED}", arm.column, "%", paper=table.paper.get((arm.row, arm.column)))
    every = [h for c in arm.candidates.values() for h in c.hashes]
    if not every:
        return out
    cand = arm.candidates.get(arm.selected) if arm.selected is not None else None
    if cand is None:
        out.hashes = every
        for c in arm.candidates.values():
            out.statuses.update(c.statuses)
        if arm.pending:
            out.tag = f" · {len(arm.candidates) - arm.pending} of {len(arm.candidates)} {key} values finished"
        else:  # all done, none eligible: each has a seed cut by halving or without a selected step
            cut = sum(1 for c in arm.candidates.values() if c.pruned)
            out.tag = f" · no {key} value has every seed completed ({cut} of {len(arm.candidates)} cut by halving)"
        return out
    warn = f" ⚠ {arm.edge} {key}" if arm.edge else ""
    pending = f" ({arm.pending} value(s) still to finish)" if arm.pending else ""
    return _shown(out, cand, f" · {key} {_value_text(arm.selected)}{warn}{pending}")


def _shown(out: CellResult, cand: Candidate, said: str) -> CellResult:
    """`out` showing candidate `cand`: its seeds' test accuracy at their selected steps, with its CI."""
    out.hashes = list(cand.hashes)
    out.statuses.update(cand.statuses)
    out.values = [v * 100.0 for v in cand.test]
    out.stat = summarize(out.values)
    ci = f" [95% CI {out.stat.low:.1f}, {out.stat.high:.1f}]" if out.stat and math.isfinite(out.stat.low) else ""
    out.tag = ci + said
    return out


def _fixed_cell(arm: Arm, table: Table, key: str) -> CellResult:
    out = CellResult(f"{arm.row} · {FIXED}", arm.column, "%", paper=table.paper.get((arm.row, arm.column)))
    if arm.fixed is None:
        return out
    cand = next((c for v, c in arm.candidates.items() if math.isclose(v, arm.fixed, rel_tol=1e-9)), None)
    if cand is None:
        return out
    cut = " (cut by halving)" if cand.pruned else ""
    return _shown(out, cand, f" · {key} {_value_text(arm.fixed)}{cut}")


def _comparisons(shown: Table, grid: dict[tuple[str, str], CellResult]) -> list[Comparison]:
    found = []
    for a, b in shown.compare:
        for column in shown.columns:
            diff = welch(grid[(a, column.label)].values, grid[(b, column.label)].values)
            if diff is not None:
                found.append((column.label, a, b, diff))
    adjusted = adjust([d.p for *_, d in found], CORRECTION)
    return [Comparison(column, a, b, d, adjusted=p) for (column, a, b, d), p in zip(found, adjusted)]


# ---- notes ---------------------------------------------------------------------------------------------
def edge_notes(arms: dict[tuple[str, str], Arm], key: str, log: bool, cells: Any, db_url: str | None) -> list[str]:
    out = []
    for arm in arms.values():
        if arm.edge is None:
            continue
        side = "below" if arm.edge == "lowest" else "above"
        values = widened(list(arm.candidates), arm.edge, log)
        command = f"{cells.fill_command(db_url)} --tune-values {','.join(f'{v:g}' for v in values)}" if cells is not None else ""
        out.append(f"⚠ {arm.row} / {arm.column}: the selected {key} = {_value_text(arm.selected)} is the {arm.edge} candidate; "
                   f"the best value may lie {side} it. Widen the range: {command}")
    return out


def pruned_notes(arms: dict[tuple[str, str], Arm], key: str, decl: Any) -> list[str]:
    parts = []
    for arm in arms.values():
        cut = [(c.value, step) for c in arm.candidates.values() for _h, step in c.pruned]
        if not cut:
            continue
        by_value: dict[float, list[float]] = {}
        for value, step in cut:
            by_value.setdefault(value, []).append(step)
        listed = ", ".join(f"{key} {v:g} ({len(steps)} seed(s) at step {'/'.join(f'{s:g}' for s in sorted(set(steps)))})"
                           for v, steps in sorted(by_value.items()))
        parts.append(f"{arm.row} / {arm.column}: {listed}")
    if not parts:
        return []
    eta = f" (eta {decl.halving.eta}, rungs {', '.join(map(str, decl.halving.rungs))})" if decl is not None and decl.halving else ""
    return [f"Cut early by successive halving{eta}, their curves kept: " + "; ".join(parts) + "."]


def rank_lines(table: Table, arms: dict[tuple[str, str], Arm], grid: dict[tuple[str, str], CellResult]) -> list[str]:
    """One line per column: whether the order of the rows (by mean test accuracy) changes with tuning."""
    out = []
    for column in table.columns:
        tuned = _order(table, grid, column.label, TUNED)
        fixed = _order(table, grid, column.label, FIXED)
        if len(tuned) < 2 or sorted(tuned) != sorted(fixed):
            continue
        if tuned == fixed:
            out.append(f"Rank of rows, {column.label}: unchanged by tuning ({' > '.join(tuned)}).")
        else:
            out.append(f"Rank of rows, {column.label}: CHANGED by tuning: fixed {' > '.join(fixed)}; tuned {' > '.join(tuned)}.")
    return out


def _order(table: Table, grid: dict[tuple[str, str], CellResult], column: str, kind: str) -> list[str]:
    means = [(grid[(f"{r.label} · {kind}", column)].stat, r.label) for r in table.rows]
    ranked = sorted(((s.mean, label) for s, label in means if s is not None), key=lambda t: -t[0])
    return [label for _m, label in ranked]


# ---- the sensitivity figure ------------------------------------------------------------------------------
def sensitivity_figures(result: TableResult) -> list[tuple[str, Any]]:
    """Per column (task): each arm's validation accuracy against the tuned value, mean over seeds with a
    min–max band, its selected value marked; log x axis for a log-spaced key."""
    from fptlab.report import figures

    arms = getattr(result, "arms", None) or {}
    out = []
    for column in result.table.columns:
        series = []
        for (row, col), arm in arms.items():
            if col != column.label:
                continue
            points = []
            for value, cand in arm.candidates.items():
                vals = [v * 100.0 for v in cand.curves_val.values()]
                if vals:
                    points.append((value, sum(vals) / len(vals), min(vals), max(vals), bool(cand.pruned)))
            if points:
                series.append((row, points, arm.selected, arm.fixed))
        if not series:
            continue
        key = result.tune_key
        fig = figures.sensitivity(series, title=column.label, xlabel=key, log=result.tune_log)
        out.append((f"{result.title}, {column.label}: validation accuracy against {key} per arm, mean over seeds with a "
                    "min–max band; ★ the selected value, ○ the fixed one, × values cut by halving.", fig))
    return out


__all__ = ["Arm", "Candidate", "arms_of", "build_tuned", "edge_of", "select", "sensitivity_figures", "widened"]
