"""Corrections for multiple comparisons: a table that tests many row pairs (every column, every arm)
reports adjusted p-values, so a "significant" cell is not just the one lucky test out of twenty.

    holm(p)                Holm-Bonferroni step-down: controls the family-wise error rate.
    benjamini_hochberg(p)  Benjamini-Hochberg step-up: controls the false discovery rate.

Both take the raw p-values of one family (the pairs one table compares) and return adjusted p-values
in the same order, each at most 1; NaN stays NaN and is not counted in the family.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

METHODS = ("holm", "bh")
NAMES = {"holm": "Holm-Bonferroni (family-wise error rate)", "bh": "Benjamini-Hochberg (false discovery rate)"}


def _family(p: Sequence[float]) -> list[int]:
    return [i for i, v in enumerate(p) if not math.isnan(v)]


def holm(p: Sequence[float]) -> list[float]:
    """p_(k) adjusted = max over j <= k of min(1, (m - j + 1) p_(j)), in ascending order of p."""
    out = [math.nan] * len(p)
    members = sorted(_family(p), key=lambda i: p[i])
    m, running = len(members), 0.0
    for rank, i in enumerate(members):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def benjamini_hochberg(p: Sequence[float]) -> list[float]:
    """p_(k) adjusted = min over j >= k of min(1, m p_(j) / j), in ascending order of p."""
    out = [math.nan] * len(p)
    members = sorted(_family(p), key=lambda i: p[i])
    m, running = len(members), 1.0
    for rank in range(m - 1, -1, -1):
        i = members[rank]
        running = min(running, m * p[i] / (rank + 1))
        out[i] = min(1.0, running)
    return out


def adjust(p: Sequence[float], method: str = "holm") -> list[float]:
    if method not in METHODS:
        raise ValueError(f"unknown correction {method!r}; expected one of {', '.join(METHODS)}")
    return holm(p) if method == "holm" else benjamini_hochberg(p)
