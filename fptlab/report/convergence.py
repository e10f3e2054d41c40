"""Steps to converge (paper Section 3.4, Table 6: "approximate number of gradient steps until
convergence" of each model), measured on each row's own curve, and defined so that no number echoes
the configuration (a budget, a stopping rule) and a flat curve is never rewarded:

    row curve  = the mean over the row's seeds of their selection accuracy (validation accuracy; test
                 accuracy for trials stored without a validation split) at each evaluation step; a
                 seed that stopped early (its target or a validation plateau) keeps its last value
    smoothed   = the mean of the row curve's last SMOOTH evaluations up to each step (trailing window)
    plateau    = the median of the smoothed curve over its last TAIL share of evaluations (at least
                 SMOOTH), the row's own converged accuracy
    chance     = always predicting the most common label (recorded per trial)
    level      = chance + FRACTION x (plateau - chance)

    did not learn      plateau < chance + LEARNED x (1 - chance): never clearly above chance
    not converged by N the row curve still rises over its last TAIL of evaluations (least-squares
                       slope x their span > max(RISING, RISING_SHARE x (plateau - chance))), and no
                       seed stopped on a plateau; N = its last evaluated step
    steps              the first evaluation step at which the smoothed curve reaches `level`; a row
                       whose every seed stopped at its target converged where it stopped (the mean of
                       those steps): reaching the target is convergence

A second measure, `steps_to_level`, answers "how long until this row reaches another row's
converged level" (Random's time to FPT's level), "> N" when it never does. Doubling the budget of a
row that has plateaued moves neither measure: the plateau is read from the flat end of the curve and
the crossing happens where it happened.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas loads when curves are read, not when a table without them renders
    import pandas as pd

SMOOTH = 3  # evaluations in the trailing window
TAIL = 0.2  # the end of the run the plateau and the rising test read
FRACTION = 0.9  # of the gain above chance that counts as converged
LEARNED = 0.1  # a plateau this share of the way from chance to 100% counts as learning
RISING = 0.01  # a tail gain (absolute accuracy) above this and ...
RISING_SHARE = 0.1  # ... above this share of the row's gain over chance is "still rising"

DEFINITION = (
    f"steps to converge: each row against its own plateau. Row curve = the mean over seeds of validation accuracy "
    f"(test accuracy for trials stored without a validation split) per evaluation, smoothed over the last {SMOOTH} "
    f"evaluations; plateau = the median of that curve over the last {TAIL:.0%} of evaluations; steps = the first "
    f"evaluation at which it reaches chance + {FRACTION:.0%} of (plateau - chance). 'did not learn': a plateau below "
    f"chance + {LEARNED:.0%} of the way to 100%; 'not converged by N': still rising over the last {TAIL:.0%} of "
    f"evaluations (least-squares gain above {RISING:.0%} and {RISING_SHARE:.0%} of its gain over chance). A run that "
    "stops at its target accuracy converged at the step it stopped. Chance = always predicting the most common label."
)
LEVEL_DEFINITION = (
    "steps to another row's level: the first evaluation at which this row's smoothed curve reaches the named row's "
    "converged level (its chance + 90% of its gain); '> N' when it never does within N steps."
)


@dataclass(frozen=True)
class SeedRun:
    curve: pd.DataFrame  # columns step, value: the selection accuracy at each evaluation
    stopped: str = ""  # "target" | "plateau" | "" (ran its budget, or diverged)
    steps: float = math.nan  # the step it ended at


@dataclass(frozen=True)
class Verdict:
    """`kind`: converged | not_converged | did_not_learn | no_curve. `steps`: converged: the step;
    not_converged: N, the last evaluated step; else NaN."""

    kind: str
    steps: float
    plateau: float = math.nan
    level: float = math.nan
    chance: float = math.nan
    curve: Any = None  # the smoothed row curve (step -> accuracy)

    @property
    def text(self) -> str | None:
        """What a cell shows instead of a number (None: a number, see `steps`)."""
        from fptlab.report.values import format_steps

        if self.kind == "did_not_learn":
            return "did not learn"
        if self.kind == "not_converged":
            return f"not converged by {format_steps(self.steps)}"
        return None


def row_curve(curves: Sequence[pd.DataFrame]) -> Any:
    """Mean over seeds at each evaluation step (each curve: columns step, value), indexed by step. A
    seed that stopped early keeps its last accuracy for the later steps."""
    import pandas as pd

    parts = [c.dropna(subset=["value"]).groupby("step")["value"].mean() for c in curves]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.Series(dtype=float)
    return pd.concat(parts, axis=1).sort_index().ffill().mean(axis=1, skipna=True)


def smoothed(series: Any) -> Any:
    return series.sort_index().rolling(SMOOTH, min_periods=1).mean()


def _tail(n: int) -> int:
    return min(n, max(SMOOTH, math.ceil(TAIL * n)))


def verdict(seeds: Sequence[SeedRun], chance: float) -> Verdict:
    """The row's steps to converge (see the module docstring) from its seeds' runs."""
    import numpy as np

    raw = row_curve([s.curve for s in seeds])
    if raw.empty:
        return Verdict("no_curve", math.nan, chance=chance)
    curve = smoothed(raw)
    values, steps = curve.to_numpy(dtype=float), curve.index.to_numpy(dtype=float)
    plateau = float(np.median(values[-_tail(len(values)):]))
    chance = chance if math.isfinite(chance) else 0.0
    level = chance + FRACTION * (plateau - chance)
    base = dict(plateau=plateau, level=level, chance=chance, curve=curve)
    if plateau < chance + LEARNED * (1 - chance):
        return Verdict("did_not_learn", math.nan, **base)
    if seeds and all(s.stopped == "target" for s in seeds):
        return Verdict("converged", float(np.mean([s.steps for s in seeds])), **base)
    if not any(s.stopped for s in seeds) and _rising(raw, plateau - chance):
        return Verdict("not_converged", float(steps[-1]), **base)
    hit = np.flatnonzero(values >= level - 1e-12)
    return Verdict("converged", float(steps[hit[0]]), **base) if hit.size else Verdict("not_converged", float(steps[-1]), **base)


def _rising(raw: Any, gain: float) -> bool:
    """Whether the row curve still rises over its last TAIL of evaluations: the least-squares slope
    there times their span exceeds max(RISING, RISING_SHARE x the row's gain over chance)."""
    import numpy as np

    k = _tail(len(raw))
    if k < SMOOTH:
        return False
    x, y = raw.index.to_numpy(dtype=float)[-k:], raw.to_numpy(dtype=float)[-k:]
    if x[-1] == x[0]:
        return False
    slope = np.polyfit(x, y, 1)[0]
    return slope * (x[-1] - x[0]) > max(RISING, RISING_SHARE * max(gain, 0.0))


def steps_to_level(seeds: Sequence[SeedRun], level: float) -> tuple[float, bool]:
    """(step, censored): the first evaluation at which the row's smoothed curve reaches `level`, or
    (its last evaluated step, True) when it never does."""
    import numpy as np

    curve = smoothed(row_curve([s.curve for s in seeds]))
    if curve.empty or not math.isfinite(level):
        return math.nan, False
    values, steps = curve.to_numpy(dtype=float), curve.index.to_numpy(dtype=float)
    hit = np.flatnonzero(values >= level - 1e-12)
    return (float(steps[hit[0]]), False) if hit.size else (float(steps[-1]), True)
