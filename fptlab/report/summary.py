"""The summary a sweep prints when no analysis module reads its spec: per group of the spec's own axes
(seed aside), n, mean ± std and the 95% confidence interval of the final test accuracy. Specs that a
table reads (the quickstart, the paper's tables) print that table's report instead
(`fptlab.report.engine.report_for_spec`), with steps to converge by `fptlab.report.convergence`."""

from __future__ import annotations

import math
from typing import Any

from fptlab.escape import for_terminal
from fptlab.report.stats import summarize
from fptlab.store.models import DONE

COLUMNS = ("n", "test_acc_mean", "test_acc_std", "ci_low", "ci_high")


def summary_frame(trials: Any, by: tuple[str, ...] = ("task", "init")) -> Any:
    """One row per group of finished trials: n, mean/std test accuracy, 95% CI of the mean."""
    import pandas as pd

    done = trials[trials["status"].isin(list(DONE))]
    rows = []
    if not done.empty:
        for key, group in done.groupby(list(by), sort=True, dropna=False):
            stat = summarize(list(group["test_accuracy"].astype(float)))
            if stat is None:
                continue
            values = key if isinstance(key, tuple) else (key,)
            rows.append({**dict(zip(by, values)), "n": stat.n, "test_acc_mean": stat.mean, "test_acc_std": stat.std,
                         "ci_low": stat.low, "ci_high": stat.high})
    return pd.DataFrame(rows, columns=[*by, *COLUMNS])


def render_summary(frame: Any) -> str:
    """Plain-text table: the group columns, then mean ± std (n) and the 95% CI."""
    if frame.empty:
        return "no finished trials to summarise"
    groups = [c for c in frame.columns if c not in COLUMNS]
    rows = [[for_terminal(v) for v in row] for row in frame[groups].itertuples(index=False)]  # values from the database
    widths = [max(len(g), *(len(r[i]) for r in rows)) for i, g in enumerate(groups)]
    lines = ["  ".join(g.ljust(w) for g, w in zip(groups, widths)) + f"  {'test accuracy':>24}  {'95% CI':>15}"]
    for cells, row in zip(rows, frame.itertuples(index=False)):
        std = 0.0 if math.isnan(row.test_acc_std) else row.test_acc_std
        acc = f"{row.test_acc_mean:.3f} ± {std:.3f} (n={row.n})"
        ci = "-" if math.isnan(row.ci_low) else f"[{row.ci_low:.3f}, {row.ci_high:.3f}]"
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)) + f"  {acc:>24}  {ci:>15}")
    return "\n".join(lines)
