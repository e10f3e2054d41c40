"""The compact summary printed after a sweep: mean ± std test accuracy per task and init over seeds,
and convergence speed as the steps needed to reach 99% of the final test accuracy (paper Section 3.4
compares compute efficiency the same way)."""

from __future__ import annotations

import math
from typing import Any


def steps_to_fraction(curve: Any, fraction: float = 0.99) -> float:
    """First evaluated step whose test accuracy reaches `fraction` × the final one (NaN if no curve)."""
    curve = curve.dropna().sort_values("step")
    if curve.empty:
        return math.nan
    target = fraction * float(curve["value"].iloc[-1])
    reached = curve[curve["value"] >= target]
    return float(reached["step"].iloc[0])


def summary_frame(trials: Any, curves: Any, by: tuple[str, ...] = ("task", "init")) -> Any:
    """One row per group: n seeds, mean/std test accuracy, mean steps to 99% of final accuracy."""
    import pandas as pd

    done = trials[trials["status"].isin(["completed", "diverged"])].copy()
    if done.empty:
        return pd.DataFrame(columns=[*by, "n", "test_acc_mean", "test_acc_std", "steps_to_99"])
    acc_curves = curves[curves["key"] == "test_accuracy"]
    steps = {h: steps_to_fraction(g) for h, g in acc_curves.groupby("config_hash")}
    done["steps_to_99"] = done["config_hash"].map(steps)
    grouped = done.groupby(list(by), sort=True)
    out = grouped.agg(
        n=("config_hash", "size"),
        test_acc_mean=("test_accuracy", "mean"),
        test_acc_std=("test_accuracy", "std"),
        steps_to_99=("steps_to_99", "mean"),
    ).reset_index()
    return out


def render_summary(frame: Any) -> str:
    """Plain-text table: the group columns, mean ± std (n), steps to 99% of the final accuracy."""
    if frame.empty:
        return "no finished trials to summarise"
    stats = ("n", "test_acc_mean", "test_acc_std", "steps_to_99")
    groups = [c for c in frame.columns if c not in stats]
    rows = [[str(v) for v in row] for row in frame[groups].itertuples(index=False)]
    widths = [max(len(g), *(len(r[i]) for r in rows)) for i, g in enumerate(groups)]
    lines = ["  ".join(g.ljust(w) for g, w in zip(groups, widths)) + f"  {'test accuracy':>22}  {'steps to 99% of final':>22}"]
    for cells, row in zip(rows, frame.itertuples(index=False)):
        std = 0.0 if math.isnan(row.test_acc_std) else row.test_acc_std
        acc = f"{row.test_acc_mean:.3f} ± {std:.3f} (n={row.n})"
        steps = "-" if math.isnan(row.steps_to_99) else f"{row.steps_to_99:.0f}"
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)) + f"  {acc:>22}  {steps:>22}")
    return "\n".join(lines)
