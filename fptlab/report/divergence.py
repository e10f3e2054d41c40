"""Divergence (the paper's †, Table 13: "training diverged, number reported before divergence"), one
definition for every table that marks it.

With gradient clipping (the reference clips at 1.0) most divergences are not a NaN loss but a
collapse: accuracy falls from its best to near chance and stays there. A run diverged when

    its loss became NaN/inf (the trial's status is `diverged`: training stopped there), or
    its curve collapsed: after its best evaluation the accuracy falls to chance + NEAR_CHANCE x
    (best - chance) or below and stays there, through the end of the run, for at least AFTER
    evaluations (a dip that recovers is not a divergence), where best - chance is at least
    LEARNED x (1 - chance) (a run that barely learned cannot collapse: noise on a small validation
    split would make its every dip a divergence).

The curve read is validation accuracy (test accuracy for trials stored without a validation split).
The number a diverged cell shows is the test accuracy at the step validation selected, which lies
before the collapse; for trials without a validation split, the test accuracy at the last
evaluation before the collapse began (or before the NaN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

NEAR_CHANCE = 0.2
AFTER = 2
LEARNED = 0.25

DEFINITION = (
    f"† diverged: the loss became NaN/inf, or accuracy collapsed: after a best evaluation at least {LEARNED:.0%} of the "
    f"way from chance to 100%, it fell to within {NEAR_CHANCE:.0%} of that gain above chance and stayed there to the end "
    f"of the run ({AFTER}+ evaluations; a dip that recovers does not count). A diverged cell shows the accuracy before the divergence: test accuracy at the "
    "step validation selected (trials without a validation split: the last evaluation before the collapse)."
)


@dataclass(frozen=True)
class Collapse:
    step: float  # the first evaluation of the collapse
    before_step: float  # the evaluation before it
    before: float  # the curve's value there


def collapse(curve: Any, chance: float) -> Collapse | None:
    """The collapse of `curve` (a frame with columns step, value; accuracies), or None."""
    import numpy as np

    frame = curve.dropna(subset=["value"]).sort_values("step")
    values, steps = frame["value"].to_numpy(dtype=float), frame["step"].to_numpy(dtype=float)
    if len(values) < AFTER + 1:
        return None
    chance = chance if math.isfinite(chance) else 0.0
    best_at = int(np.argmax(values))
    best = values[best_at]
    if best - chance < LEARNED * (1 - chance):
        return None
    near = values <= chance + NEAR_CHANCE * (best - chance)
    # the first index after the best from which every later evaluation is near chance
    start = None
    for j in range(len(values) - 1, best_at, -1):
        if not near[j]:
            break
        start = j
    if start is None or len(values) - start < AFTER:
        return None
    return Collapse(float(steps[start]), float(steps[start - 1]), float(values[start - 1]))


def value_before(test_curve: Any, step: float) -> float:
    """The test accuracy at evaluation `step` (NaN when the curve lacks it)."""
    rows = test_curve[test_curve["step"] == step]["value"]
    return float(rows.iloc[-1]) if len(rows) else math.nan
