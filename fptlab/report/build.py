"""A declared table + the spec's cells + a store snapshot -> a structured TableResult: per cell our
seeds (mean ± std, n, 95% CI), the trial statuses, the paper's number and the difference; per
compared row pair Welch's test; what is missing and the command that fills it; provenance.

Renderers (`fptlab.report.render`) only format a TableResult; nothing below prints.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fptlab.errors import FptlabWarning
from fptlab.report import convergence, divergence
from fptlab.report.declare import PaperValue, Table
from fptlab.report.source import Snapshot, SpecCells
from fptlab.report.stats import Difference, Stat, summarize, welch
from fptlab.report.values import VALUES, format_spread, format_value, has_selection
from fptlab.store.models import DONE, PRUNED

UNFINISHED_ORDER = ("missing", "queued", "running", "interrupted", "failed")


@dataclass
class CellResult:
    row: str
    column: str
    unit: str
    hashes: list[str] = field(default_factory=list)  # the spec's trials for this cell (every seed)
    values: list[float] = field(default_factory=list)  # one per finished trial that has a value
    statuses: Counter = field(default_factory=Counter)  # trial statuses; "missing" = not in the database
    diverged: int = 0
    censored: bool = False  # steps: a lower bound (the row never reached the level within its budget)
    verdict: str | None = None  # steps to converge: "did not learn", "not converged by N" (shown instead of a number)
    stat: Stat | None = None
    paper: PaperValue | None = None
    literature: str | None = None  # quoted by the paper from this work: nothing to run
    text: str | None = None  # display set by a table's post hook (derived cells such as speedups)
    hash_status: dict[str, str] = field(default_factory=dict)
    offline: bool = False  # an offline counterpart's cell: not comparable to the paper's number
    problems: list[str] = field(default_factory=list)  # trials whose stored value is impossible (inf %, 140 %)
    legacy: int = 0  # steps: trials whose curve is test accuracy (stored without a validation split)
    unselected: int = 0  # accuracy: trials without a validation split, shown at their last evaluation
    task_chance: float = math.nan  # 1 / classes of the cell's task: chance for trials that did not record it
    tag: str = ""  # said after the value (a tuned cell: its CI, the selected value, an edge warning)

    @property
    def finished(self) -> int:
        return sum(self.statuses[s] for s in DONE)

    @property
    def state(self) -> str:
        """literature | not in grid | derived | done | partial | empty (nothing finished yet)."""
        if self.literature:
            return "literature"
        if self.text is not None:
            return "derived"
        if not self.hashes:
            return "not in grid"
        if self.finished == len(self.hashes):
            return "done"
        return "partial" if self.finished else "empty"

    def ours(self, show_n: bool = True) -> str:
        """"38.2 ± 0.4 (n=3)", "> 2 × 10^4", "91.0%† (n=1)", or what keeps it from having a value.
        Without `show_n`, the "(n=...)" is left out when every seed finished (a caption says n)."""
        if self.text is not None:
            return self.text
        if self.literature:
            return "(literature)"
        if not self.hashes:
            return "—"
        if self.verdict is not None:
            pending = self._pending()
            return self.verdict + (f" (n={self.stat.n if self.stat else 0}; {pending})" if pending else "")
        if self.stat is None:
            return (self._pending() or "no value") + self.tag
        mark = "†" if self.diverged else ""
        head = ("> " if self.censored else "") + format_value(self.stat.mean, self.unit) + mark
        spread = "" if self.censored or math.isnan(self.stat.std) else f" ± {format_spread(self.stat.std, self.unit)}"
        of = f"{self.stat.n}/{len(self.hashes)}" if self.stat.n != len(self.hashes) else f"{self.stat.n}"
        pending = self._pending()
        if not show_n and not pending and self.stat.n == len(self.hashes):
            return f"{head}{spread}{self.tag}"
        return f"{head}{spread} (n={of}{'; ' + pending if pending else ''}){self.tag}"

    def _pending(self) -> str:
        parts = [f"{s} {self.statuses[s]}" for s in UNFINISHED_ORDER if self.statuses.get(s)]
        return ", ".join(parts)

    def difference(self) -> float:
        """Ours minus the paper's (NaN unless both exist, and for offline counterparts, whose setting
        is not the paper's)."""
        if self.stat is None or self.paper is None or self.censored or self.offline or self.verdict is not None:
            return math.nan
        return self.stat.mean - self.paper.value


@dataclass(frozen=True)
class Comparison:
    column: str
    a: str
    b: str
    result: Difference
    adjusted: float = math.nan  # the p-value corrected for the table's comparisons (tuned tables: Holm)


@dataclass
class Provenance:
    spec: str | None
    spec_hash: str
    offline: bool
    hashes: list[str]
    versions: Counter  # "fptlab 0.3.0 · torch 2.13.0 · transformers 5.x" -> trials
    hosts: Counter
    devices: Counter
    sources: dict[str, list[str]]  # task -> data sources used
    backbones: list[str]


@dataclass
class TableResult:
    table: Table
    cells: dict[tuple[str, str], CellResult]
    comparisons: list[Comparison]
    provenance: Provenance
    unfinished: Counter  # status -> trials not finished, over the whole table
    fill: list[str]  # commands that fill what is missing
    levels: dict[str, float] = field(default_factory=dict)  # steps to converge: the level per column
    notes: list[str] = field(default_factory=list)
    spec: SpecCells | None = None  # for post hooks: the spec's cells and the store snapshot
    snap: Snapshot | None = None
    arms: dict[tuple[str, str], Any] = field(default_factory=dict)  # a tuned table's arms (`fptlab.report.tuned.Arm`)
    tune_key: str = ""
    tune_log: bool = True

    def cell(self, row: str, column: str) -> CellResult:
        return self.cells[(row, column)]

    def uniform_n(self) -> int | None:
        """The number of seeds of every cell with a value, if they all finished the same number; else None."""
        ns = {len(c.hashes) for c in self.cells.values() if c.stat is not None and c.text is None}
        full = all(c.stat.n == len(c.hashes) and not c._pending() for c in self.cells.values() if c.stat is not None and c.text is None)
        return ns.pop() if len(ns) == 1 and full else None

    @property
    def title(self) -> str:
        return f"{self.table.kind.capitalize()} {self.table.number}: {self.table.title}"

    def definitions(self) -> list[str]:
        """The definitions of the measures this table shows (steps to converge, divergence), for its notes."""
        kinds = {c.unit for c in self.cells.values()}
        values = {r.value for r in self.table.rows} | {c.value for c in self.table.columns} | {self.table.value}
        out = []
        if any(c.diverged for c in self.cells.values()):
            out.append(divergence.DEFINITION)
        if "steps" in kinds and values & {"steps_to_converge", "steps_to_level"}:
            out.append(convergence.DEFINITION)
            if "steps_to_level" in values:
                out.append(convergence.LEVEL_DEFINITION)
        return out


def build_table(table: Table, cells: SpecCells | None, snap: Snapshot, *, db_url: str | None = None) -> TableResult:
    grid: dict[tuple[str, str], CellResult] = {}
    for row in table.rows:
        for column in table.columns:
            grid[(row.label, column.label)] = _cell(table, row, column, cells, snap)
    levels = _steps_to_converge(table, grid, snap)
    comparisons = _compare(table, grid)
    result = TableResult(table, grid, comparisons, _provenance(table, cells, grid, snap), Counter(), [], levels, spec=cells, snap=snap)
    for problem in (p for cell in grid.values() for p in cell.problems):
        warnings.warn(f"{table.key}: {problem}", FptlabWarning, stacklevel=2)
        result.notes.append(problem)
    if cells is not None and any(c.values.get("task") == "remote_homology" for c in cells.cells
                                 if any(c.hash in cell.hashes for cell in grid.values())):
        result.notes.append(HOMOLOGY_NOTE)
    unselected = sum(c.unselected for c in grid.values())
    if unselected:
        result.notes.append(f"{unselected} trial(s) here have no validation split (stored before fptlab 0.4.0, or run without "
                            "val_fraction): their accuracy is the last evaluation's, as before; the others show test "
                            "accuracy at the step of best validation accuracy.")
    legacy = sum(c.legacy for c in grid.values())
    if legacy:
        result.notes.append(f"{legacy} trial(s) here were stored without a validation split (before fptlab 0.4.0): their "
                            "steps to converge read the test-accuracy curve, as before.")
    _fill(result, cells, db_url)
    if cells is not None and cells.offline:
        for cell in grid.values():
            cell.offline = True
        result.notes.append("OFFLINE COUNTERPART: MiniLM and offline data on a laptop budget, not the paper's setting: "
                            "the paper's numbers are shown for orientation, without differences.")
    if cells is not None:
        result.notes.extend(cells.notes)
    if cells is not None and cells.unresolved:
        result.notes.append(f"{len(cells.unresolved)} cell(s) never swept could not resolve their data source here; shown "
                            "by their spec config.")
    if table.post is not None:
        table.post(result)
    return result


def _cell(table: Table, row: Any, column: Any, cells: SpecCells | None, snap: Snapshot) -> CellResult:
    kind = VALUES.get(column.value or row.value or table.value)
    key = (row.label, column.label)
    out = CellResult(row.label, column.label, kind.unit, paper=table.paper.get(key))
    out.literature = table.literature.get(key) or row.literature or column.literature
    if out.literature or cells is None or row.derived or column.derived:
        return out
    selected = cells.select({**table.where, **row.where, **column.where})
    out.hashes = [c.hash for c in selected]
    if kind.unit == "steps" and selected:
        out.task_chance = task_chance(selected[0].values)
    collapses = _collapses(out, snap, selected) if kind.name in DIVERGING_KINDS else {}
    for h in out.hashes:
        state = snap.states.get(h)
        status = "missing" if state is None else state["status"]
        out.statuses[status] += 1
        out.hash_status[h] = status
        if status == "diverged" or h in collapses:
            out.diverged += 1
        if status in DONE and kind.of_trial is not None:
            results = snap.results.get(h, {})
            value = kind.of_trial(results)
            if h in collapses and not has_selection(results):
                value = collapses[h]  # no validation split: the last evaluation before the collapse
            if math.isnan(value):
                continue
            if kind.selected and not has_selection(results):
                out.unselected += 1
            problem = kind.problem(value)
            if problem is None:
                out.values.append(value)
            else:
                out.problems.append(f"trial {h}: its {kind.name} is {problem}; left out of {row.label} / {column.label}.")
    out.stat = summarize(out.values)
    return out


def _steps_to_converge(table: Table, grid: dict[tuple[str, str], CellResult], snap: Snapshot) -> dict[str, float]:
    """Table 6's values (`fptlab.report.convergence`): each row of a column against its own plateau
    (value steps_to_converge), or against another row's converged level (steps_to_level, the row's
    `reference`). Returns the converged level of each column's first row, for the notes."""
    levels: dict[str, float] = {}
    rows = {r.label: r for r in table.rows}
    for column in table.columns:
        own: dict[str, convergence.Verdict] = {}
        for kind in ("steps_to_converge", "steps_to_level"):
            for (r, col), c in grid.items():
                if col != column.label or not c.hashes or _kind_of(table, rows[r], column) != kind:
                    continue
                seeds = _seed_runs(c, snap)
                if not seeds:
                    continue
                if kind == "steps_to_converge":
                    own[r] = _set_verdict(c, seeds, convergence.verdict(seeds, _chance(c, snap)))
                    levels.setdefault(column.label, own[r].level)
                else:
                    _set_level_steps(c, seeds, own.get(rows[r].reference or ""))
    return levels


DIVERGING_KINDS = ("test_accuracy", "last_test_accuracy", "best_test_accuracy")
HOMOLOGY_NOTE = (
    "Homology: ours count the evaluation split's sequences over 1024 tokens as wrong (accuracy on the kept "
    "sequences x their share of the split, which each run records and its data description prints). The paper skipped whole batches whose padded length exceeded 1024 and multiplied its accuracy by "
    "0.9739 (a kept share from counts, 236,224 of 242,560, that match no TAPE split), so both numbers count skipped "
    "examples as wrong; they differ in what was skipped (batches vs sequences). The task has 1,195 fold classes "
    "(TAPE and the paper's text); the paper's code used an output layer of 1,200, so 5 of its logits were never a label."
)


def _collapses(cell: CellResult, snap: Snapshot, selected: list[Any]) -> dict[str, float]:
    """{hash: test accuracy (%) before the collapse} of the cell's completed trials whose curve collapsed
    (`fptlab.report.divergence`): validation accuracy for trials with a validation split, test accuracy
    for the others. Trials whose loss went NaN are `diverged` already."""
    done = [h for h in cell.hashes if (snap.states.get(h) or {}).get("status") == "completed"]
    if not done:
        return {}
    chance = task_chance(selected[0].values) if selected else math.nan
    validated = [h for h in done if has_selection(snap.results.get(h, {}))]
    tests = snap.curves(done)
    curves = {**{h: tests[h] for h in done if h not in validated and h in tests}, **snap.curves(validated, "val_accuracy")}
    out = {}
    for h, curve in curves.items():
        recorded = snap.results.get(h, {}).get("chance_accuracy", math.nan)
        found = divergence.collapse(curve, recorded if math.isfinite(recorded) else chance)
        if found is not None:
            kept = snap.results.get(h, {}).get("test_kept", 1.0)
            out[h] = divergence.value_before(tests[h], found.before_step) * 100.0 * kept if h in tests else math.nan
    return out


def task_chance(values: dict[str, Any]) -> float:
    """1 / classes of the task a flattened config runs (NaN when it cannot be built here)."""
    from fptlab.config import config_from_dict
    from fptlab.errors import FptlabError
    from fptlab.plan import task_spec

    nested: dict[str, Any] = {}
    for key, value in values.items():
        *sections, name = key.split(".")
        target = nested
        for section in sections:
            target = target.setdefault(section, {})
        target[name] = list(value) if isinstance(value, tuple) else value
    try:
        return 1.0 / task_spec(config_from_dict(nested, origin="report")).n_classes
    except (FptlabError, ValueError, TypeError, ZeroDivisionError):
        return math.nan


def _kind_of(table: Table, row: Any, column: Any) -> str:
    return column.value or row.value or table.value


def _seed_runs(cell: CellResult, snap: Snapshot) -> list[convergence.SeedRun]:
    """The cell's finished trials as convergence reads them: the validation-accuracy curve when the
    trial has a validation split (test accuracy otherwise: trials stored before 0.4.0), how it stopped."""
    done = [h for h in cell.hashes if cell.hash_status.get(h) in DONE and cell.hash_status.get(h) != PRUNED]  # a cut run never converged
    validated = [h for h in done if math.isfinite(snap.results.get(h, {}).get("best_val_accuracy", math.nan))]
    curves = {**snap.curves([h for h in done if h not in validated]), **snap.curves(validated, "val_accuracy")}
    cell.legacy += len([h for h in done if h not in validated and h in curves])
    out = []
    for h in done:
        if h not in curves:
            continue
        results = snap.results.get(h, {})
        if results.get("stopped_at_target") or (results.get("stopped_early") and "stopped_at_target" not in results):
            stopped = "target"  # before 0.4.0, stopping early meant reaching target_accuracy
        elif results.get("stopped_on_plateau"):
            stopped = "plateau"
        else:
            stopped = ""
        out.append(convergence.SeedRun(curves[h], stopped, float(results.get("steps", math.nan))))
    return out


def _chance(cell: CellResult, snap: Snapshot) -> float:
    """The cell's chance accuracy: what its trials recorded (always predicting the most common label),
    else 1 / classes of its task (trials stored before 0.4.0)."""
    recorded = [snap.results.get(h, {}).get("chance_accuracy", math.nan) for h in cell.hashes]
    recorded = [v for v in recorded if math.isfinite(v)]
    if recorded:
        return sum(recorded) / len(recorded)
    return cell.task_chance


def _set_verdict(cell: CellResult, seeds: list[Any], verdict: convergence.Verdict) -> convergence.Verdict:
    cell.verdict = verdict.text
    n = len(seeds)
    if verdict.kind == "converged":
        cell.values, cell.stat = [verdict.steps], Stat(verdict.steps, math.nan, n, math.nan, math.nan)
    elif verdict.kind == "not_converged":
        cell.values, cell.censored = [verdict.steps], True
        cell.stat = Stat(verdict.steps, math.nan, n, math.nan, math.nan)
    else:
        cell.stat = Stat(math.nan, math.nan, n, math.nan, math.nan) if verdict.kind == "did_not_learn" else None
    return verdict


def row_reference_text(reference: convergence.Verdict | None) -> str:
    return "its reference row has no runs" if reference is None else "its reference row has no converged level"


def _set_level_steps(cell: CellResult, seeds: list[Any], reference: convergence.Verdict | None) -> None:
    if reference is None or reference.kind != "converged":
        cell.verdict = f"— ({row_reference_text(reference)})"
        return
    steps, censored = convergence.steps_to_level(seeds, reference.level)
    cell.values, cell.censored = [steps], censored
    cell.stat = Stat(steps, math.nan, len(seeds), math.nan, math.nan)


def _compare(table: Table, grid: dict[tuple[str, str], CellResult]) -> list[Comparison]:
    out = []
    for a, b in table.compare:
        for column in table.columns:
            ca, cb = grid[(a, column.label)], grid[(b, column.label)]
            if ca.unit != "%" or cb.unit != "%":
                continue  # accuracies over seeds; steps to converge are one value per row (see convergence)
            diff = welch(ca.values, cb.values)
            if diff is not None:
                out.append(Comparison(column.label, a, b, diff))
    return out


def _fill(result: TableResult, cells: SpecCells | None, db_url: str | None) -> None:
    """Count the table's unfinished trials (each hash once) and give the command that runs them: a
    sweep of the table's spec runs exactly the cells not finished yet."""
    status_of: dict[str, str] = {}
    for cell in result.cells.values():
        for h in cell.hashes:
            status_of.setdefault(h, _status(cell, h))
    result.unfinished = Counter(s for s in status_of.values() if s not in DONE)
    if cells is None or not result.unfinished:
        return
    command = cells.fill_command(db_url)
    result.fill.append(command)
    if result.unfinished.get("failed"):
        result.fill.append(f"{command} --retry-failed")


def _status(cell: CellResult, h: str) -> str:
    return cell.hash_status.get(h, "missing")


def _provenance(table: Table, cells: SpecCells | None, grid: dict[tuple[str, str], CellResult], snap: Snapshot) -> Provenance:
    return provenance(cells, sorted({h for c in grid.values() for h in c.hashes}), snap)


def provenance(cells: SpecCells | None, hashes: list[str], snap: Snapshot) -> Provenance:
    """Where a table's trials come from: spec, versions, hosts, devices, data sources, backbones."""
    versions, hosts, devices = Counter(), Counter(), Counter()
    for h in hashes:
        state = snap.states.get(h)
        if state is None or state["status"] not in DONE:
            continue
        versions[_versions(state)] += 1
        hosts[state.get("host") or "?"] += 1
        devices[state.get("device") or "?"] += 1
    sources: dict[str, set[str]] = {}
    backbones: set[str] = set()
    by_hash = {c.hash: c for c in cells.cells} if cells is not None else {}
    for h in hashes:
        values = by_hash[h].values
        task = values.get("task")
        backbones.add(str(values.get("backbone")))
        source = values.get(f"{task}.source")
        if source is not None:
            sources.setdefault(task, set()).add(str(source))
    return Provenance(
        spec=cells.path if cells is not None else None, spec_hash=cells.spec_hash if cells is not None else "",
        offline=bool(cells is not None and cells.offline), hashes=hashes, versions=versions, hosts=hosts, devices=devices,
        sources={t: sorted(s) for t, s in sorted(sources.items())}, backbones=sorted(backbones),
    )


def _versions(state: dict[str, Any]) -> str:
    parts = [f"{name} {state.get(f'{name}_version') or '?'}" for name in ("fptlab", "torch", "transformers")]
    return " · ".join(parts)


# ---- helpers for tables' post hooks (derived rows and columns) ------------------------------------------
def values_for(result: TableResult, where: dict[str, Any], value: str) -> list[float]:
    """Per finished trial, `value` (a VALUES kind computed per trial) of the spec's cells matching `where`."""
    kind = VALUES.get(value)
    if result.spec is None or result.snap is None or kind.of_trial is None:
        return []
    out = []
    for c in result.spec.select(where):
        state = result.snap.states.get(c.hash)
        if state is not None and state["status"] in DONE:
            v = kind.of_trial(result.snap.results.get(c.hash, {}))
            if not math.isnan(v):
                out.append(v)
    return out


def set_ratio(cell: CellResult, numerator: list[float] | Stat | None, denominator: list[float] | Stat | None,
              *, lower_bound: bool = False) -> None:
    """A derived cell = mean(numerator) / mean(denominator), shown as "4.0x" ("> 4.0x" when the
    numerator is censored, i.e. the true ratio is at least this)."""
    num = numerator if isinstance(numerator, Stat) or numerator is None else summarize(numerator)
    den = denominator if isinstance(denominator, Stat) or denominator is None else summarize(denominator)
    cell.unit = "x"
    if num is None or den is None or den.mean == 0:
        cell.text = "—"
        return
    ratio = num.mean / den.mean
    cell.stat = Stat(ratio, math.nan, min(num.n, den.n), math.nan, math.nan)
    cell.censored = lower_bound
    cell.text = f"{'> ' if lower_bound else ''}{ratio:.1f}x"


def ratio_row(result: TableResult, row: str, numerator: str, denominator: str) -> None:
    """Fill derived row `row` column by column with numerator-row / denominator-row (Table 6's speedup:
    Random steps / FPT steps; a censored Random makes it a lower bound)."""
    for column in result.table.columns:
        top, bottom = result.cells[(numerator, column.label)], result.cells[(denominator, column.label)]
        target = result.cells[(row, column.label)]
        if bottom.censored or bottom.verdict is not None or (top.verdict is not None and not top.censored):
            target.unit, target.text = "x", "—"  # the denominator never converged, or the numerator never learned: no ratio
            continue
        set_ratio(target, top.stat, bottom.stat, lower_bound=top.censored)
