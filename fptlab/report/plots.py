"""The figures every table gets in a full report: ours against the paper's numbers (one scatter for
the whole table) and, for convergence tables or on request, test-accuracy curves per column with a
band over seeds. Drawing itself lives in `fptlab.report.figures`."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from fptlab.report.build import TableResult
from fptlab.report.source import Snapshot
from fptlab.store.models import DONE


def scatter_points(result: TableResult) -> pd.DataFrame:
    rows = []
    for (r, c), cell in result.cells.items():
        if cell.unit != "%" or cell.paper is None or cell.stat is None or cell.offline:
            continue
        rows.append({"label": f"{r} · {c}", "row": r, "paper": cell.paper.value, "ours": cell.stat.mean,
                     "low": cell.stat.low, "high": cell.stat.high})
    return pd.DataFrame(rows, columns=["label", "row", "paper", "ours", "low", "high"])


def curve_frame(result: TableResult, column: str, snap: Snapshot, key: str = "test_accuracy") -> pd.DataFrame:
    """Long frame (row, seed, step, value in %) of one column's finished trials."""
    parts, seen = [], set()
    for row in result.table.rows:
        cell = result.cells[(row.label, column)]
        finished = [h for h in cell.hashes if cell.hash_status.get(h) in DONE]
        if not finished or frozenset(finished) in seen:
            continue  # a row drawn already (e.g. the quickstart's accuracy and steps rows read the same runs)
        seen.add(frozenset(finished))
        for i, (_h, curve) in enumerate(sorted(snap.curves(finished, key).items())):
            part = curve.assign(row=row.label, seed=i, value=curve["value"] * 100.0)
            parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["row", "seed", "step", "value"])
    return pd.concat(parts, ignore_index=True)[["row", "seed", "step", "value"]]


def table_figures(result: TableResult, snap: Snapshot, *, curves: bool) -> list[tuple[str, Any]]:
    from fptlab.report import figures

    out = []
    points = scatter_points(result)
    if result.table.paper and not points.empty:
        out.append((f"{result.title}: ours (mean, 95% CI) against the paper's number for every cell with both.",
                    figures.paper_vs_ours(points, title=f"Table {result.table.number}: ours vs paper")))
    if curves:
        for column in result.table.columns:
            key, what = curve_key(result, column.label, snap)
            frame = curve_frame(result, column.label, snap, key)
            if frame.empty:
                continue
            level = result.levels.get(column.label)
            out.append((f"{result.title}, {column.label}: {what} over training, mean over seeds with a min–max band"
                        + (" (the curve steps to converge read, with the converged level)." if level is not None else "."),
                        figures.convergence(frame, title=f"{column.label}", ylabel=f"{what} (%)",
                                            level=None if level is None or math.isnan(level) else level * 100)))
    return out


def curve_key(result: TableResult, column: str, snap: Snapshot) -> tuple[str, str]:
    """The curve a column's trials are drawn by: validation accuracy when they have a validation split
    (what selection and steps to converge read), else test accuracy (trials stored before 0.4.0)."""
    hashes = [h for row in result.table.rows for h in result.cells[(row.label, column)].hashes]
    validated = any(math.isfinite(snap.results.get(h, {}).get("best_val_accuracy", math.nan)) for h in hashes)
    return ("val_accuracy", "validation accuracy") if validated else ("test_accuracy", "test accuracy")
