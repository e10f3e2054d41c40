"""Steps to converge (paper Section 3.4, Table 6), defined so a flat curve is never rewarded.

"Steps until 99% of the run's own final accuracy" gives a random model that never learns Bit XOR a
convergence time of one evaluation. Here every compared run is measured against one common level:

    smoothed(t)  = mean test accuracy of the last SMOOTH evaluations up to step t (trailing window)
    level        = 0.99 x the highest smoothed accuracy ANY compared run (every row, every seed of
                   the column) reaches
    steps(run)   = the first evaluation step at which smoothed(t) >= level;
                   a run that never reaches it is censored: "> N", N its last evaluated step.

A row's value is the mean over its seeds; if any seed is censored the row shows "> N" with N the
largest such last step (the mean would understate it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

SMOOTH = 3  # evaluations in the trailing window
FRACTION = 0.99

DEFINITION = (
    f"steps to converge: first evaluation step at which the test accuracy, averaged over the last {SMOOTH} "
    f"evaluations, reaches {FRACTION:.0%} of the best such average any compared row reaches in that column; "
    "'> N' when a run never does (N = its last evaluated step)."
)


@dataclass(frozen=True)
class Reached:
    steps: float
    censored: bool  # never reached the level: `steps` is the last evaluated step


def smoothed(curve: pd.DataFrame) -> pd.Series:
    """Trailing mean over SMOOTH evaluations, indexed by step (curve: columns step, value)."""
    ordered = curve.dropna(subset=["value"]).sort_values("step")
    return pd.Series(ordered["value"].to_numpy(), index=ordered["step"].to_numpy()).rolling(SMOOTH, min_periods=1).mean()


def level_of(curves: Mapping[str, pd.DataFrame]) -> float:
    """FRACTION x the best smoothed accuracy over all the given runs (NaN if none has a curve)."""
    peaks = [float(smoothed(c).max()) for c in curves.values() if not c.dropna(subset=["value"]).empty]
    return FRACTION * max(peaks) if peaks else math.nan


def steps_to_level(curve: pd.DataFrame, level: float) -> Reached | None:
    s = smoothed(curve)
    if s.empty or math.isnan(level):
        return None
    hit = np.flatnonzero(s.to_numpy() >= level)
    if hit.size:
        return Reached(float(s.index[hit[0]]), False)
    return Reached(float(s.index[-1]), True)


def converge(curves: Mapping[str, pd.DataFrame]) -> tuple[float, dict[str, Reached]]:
    """For one column's runs {config_hash: curve}: the common level and each run's steps to reach it."""
    level = level_of(curves)
    out = {}
    for h, curve in curves.items():
        reached = steps_to_level(curve, level)
        if reached is not None:
            out[h] = reached
    return level, out
