"""Steps to converge (paper Section 3.4, Table 6), defined so a flat curve is never rewarded.

"Steps until 99% of the run's own final accuracy" gives a random model that never learns Bit XOR a
convergence time of one evaluation. Here every compared row is measured against one common level:

    row curve    = the mean over the row's seeds of their test accuracy at each evaluation step
    smoothed(t)  = the mean of the row curve's last SMOOTH evaluations up to step t (trailing window)
    level        = 0.99 x the highest smoothed accuracy ANY compared row (every row of the column)
                   reaches
    steps(row)   = the first evaluation step at which the row's smoothed curve >= level;
                   a row that never reaches it is censored: "> N", N its last evaluated step.

Row curves, not single seeds, set and meet the level: one lucky seed cannot raise the bar out of
every other run's reach, and the value is that of the row a reader compares.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas loads when curves are read, not when a table without them renders
    import pandas as pd

SMOOTH = 3  # evaluations in the trailing window
FRACTION = 0.99

DEFINITION = (
    f"steps to converge: first evaluation step at which a row's test accuracy (mean over its seeds, averaged over "
    f"the last {SMOOTH} evaluations) reaches {FRACTION:.0%} of the best such accuracy any compared row reaches in "
    "that column; '> N' when a row never does (N = its last evaluated step)."
)


@dataclass(frozen=True)
class Reached:
    steps: float
    censored: bool  # never reached the level: `steps` is the last evaluated step


def row_curve(curves: Sequence[pd.DataFrame]) -> Any:
    """Mean over seeds at each evaluation step (each curve: columns step, value), indexed by step. A
    seed that stopped early (target_accuracy reached) keeps its last accuracy for the later steps."""
    import pandas as pd

    parts = [c.dropna(subset=["value"]).groupby("step")["value"].mean() for c in curves]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.Series(dtype=float)
    return pd.concat(parts, axis=1).sort_index().ffill().mean(axis=1, skipna=True)


def smoothed(series: Any) -> Any:
    return series.sort_index().rolling(SMOOTH, min_periods=1).mean()


def converge(rows: Mapping[str, Sequence[pd.DataFrame]]) -> tuple[float, dict[str, Reached]]:
    """For one column's rows {row: [seed curves]}: the common level and each row's steps to reach it."""
    curves = {row: smoothed(row_curve(seeds)) for row, seeds in rows.items()}
    curves = {row: s for row, s in curves.items() if not s.empty}
    if not curves:
        return math.nan, {}
    level = FRACTION * max(float(s.max()) for s in curves.values())
    import numpy as np

    out = {}
    for row, s in curves.items():
        hit = np.flatnonzero(s.to_numpy() >= level)
        out[row] = Reached(float(s.index[hit[0]]), False) if hit.size else Reached(float(s.index[-1]), True)
    return level, out
