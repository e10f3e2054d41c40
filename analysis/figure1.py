"""Figure 1 (Section 3.1): bars of test accuracy per task for FPT, a fully trained transformer (Full)
and a fully trained LSTM, beside the paper's numbers. Spec: experiments/figure1.toml, which is
table1.toml's cells (base = "table1.toml"); the bars are Table 1's cells (analysis/table1.py: rows
FPT / Full / LSTM = variant fpt / full / lstm, columns by task), read through `ctx.table("table1")`.
No offline counterpart.

A bar is the mean over seeds with its 95% CI; the paper's number is a black tick on every cell (Table 1
"is transcribed from Figure 1"). Cells the paper quotes from the literature (Full on ListOps, C10 LRA
and Homology; LSTM on Homology) have nothing to run: they show only the paper's tick, marked "lit.".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fptlab.report import Figure

TITLE = "Test accuracy: FPT vs fully trained transformer vs LSTM"


def draw(ctx: Any) -> list[tuple[str, Any]]:
    from fptlab.errors import FptlabError
    from fptlab.report.figures import bars  # matplotlib loads only when a figure is drawn

    try:
        result = ctx.table("table1")
    except FptlabError as e:
        if ctx.cells is not None:  # otherwise the report already says why figure1's spec is not here
            ctx.notes.append(f"figure1 draws Table 1's cells, which cannot be read here: {e}")
        return [("Figure 1: Table 1's cells are not available.", bars(pd.DataFrame(), title=TITLE))]
    frame = frame_of(result)
    fig = bars(frame, title=TITLE)
    _mark_literature(fig, frame)
    quoted = sorted({f"{r} · {c}: {cell.literature}" for (r, c), cell in result.cells.items() if cell.literature})
    diverged = [f"{r} · {c}" for (r, c), cell in result.cells.items() if cell.diverged]
    caption = ("Test accuracy per task: bars are our mean over seeds with 95% CIs, black ticks the paper's numbers; "
               "\"n/a\": no finished run yet.")
    if quoted:
        caption += f" \"lit.\": quoted by the paper from the literature, nothing to run ({'; '.join(quoted)})."
    if diverged:
        caption += f" Diverged runs, reported before divergence: {', '.join(diverged)}."
    return [(caption, fig)]


def frame_of(result: Any) -> pd.DataFrame:
    """One row per (row, column) cell in the table's order: our mean and CI (NaN without a value, and on
    literature cells), the paper's number, and whether the cell is quoted from the literature."""
    out = []
    for row in result.table.rows:
        for column in result.table.columns:
            cell = result.cell(row.label, column.label)
            stat = None if cell.literature else cell.stat
            out.append({
                "row": row.label, "column": column.label,
                "mean": stat.mean if stat is not None else np.nan,
                "ci_low": stat.low if stat is not None else np.nan,
                "ci_high": stat.high if stat is not None else np.nan,
                "paper": cell.paper.value if cell.paper is not None else np.nan,
                "literature": bool(cell.literature),
            })
    return pd.DataFrame(out)


def _mark_literature(fig: Any, frame: pd.DataFrame) -> None:
    """`bars` writes "n/a" over every cell without a mean, row by row in frame order: relabel the
    literature cells' marks "lit." (they have no run to wait for)."""
    ax = fig.axes[0]
    marks = [t for t in ax.texts if t.get_text() == "n/a"]
    rows = list(pd.unique(frame["row"]))
    empty = [frame[(frame["row"] == r) & ~np.isfinite(frame["mean"].to_numpy(dtype=float))] for r in rows]
    flags = [bool(x) for part in empty for x in part["literature"]]
    if len(flags) != len(marks):
        return  # `bars` changed how it marks empty cells: leave its marks as they are
    for mark, literature in zip(marks, flags, strict=True):
        if literature:
            mark.set_text("lit.")


FIGURE = Figure(
    key="figure1",
    title="FPT vs a fully trained transformer vs a fully trained LSTM",
    section="3.1",
    draw=draw,
    notes=(
        "The bars are Table 1's cells: FPT on CIFAR-10 is GPT-2 large (36 layers), Full on CIFAR-10 keeps 3 blocks.",
    ),
)
