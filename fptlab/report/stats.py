"""Seeds -> numbers a reader can trust: mean ± standard deviation, n, a 95% confidence interval
(Student's t), and for two rows Welch's t-test with the CI of the difference of means. The paper ran
one seed per cell and could report none of these."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float  # sample standard deviation (ddof=1); NaN when n < 2
    n: int
    low: float  # 95% CI of the mean; NaN when n < 2
    high: float


@dataclass(frozen=True)
class Difference:
    """mean(a) - mean(b) with its 95% CI (Welch-Satterthwaite degrees of freedom) and the two-sided
    p-value of Welch's t-test; NaNs when either side has fewer than 2 values."""

    diff: float
    low: float
    high: float
    p: float
    n_a: int
    n_b: int


def summarize(values: Sequence[float]) -> Stat | None:
    xs = [float(v) for v in values if not math.isnan(float(v))]
    if not xs:
        return None
    n = len(xs)
    mean = sum(xs) / n
    if n < 2:
        return Stat(mean, math.nan, 1, math.nan, math.nan)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = _t_quantile(n - 1) * std / math.sqrt(n)
    return Stat(mean, std, n, mean - half, mean + half)


def welch(a: Sequence[float], b: Sequence[float]) -> Difference | None:
    xa = [float(v) for v in a if not math.isnan(float(v))]
    xb = [float(v) for v in b if not math.isnan(float(v))]
    if not xa or not xb:
        return None
    sa, sb = summarize(xa), summarize(xb)
    assert sa is not None and sb is not None
    diff = sa.mean - sb.mean
    if sa.n < 2 or sb.n < 2:
        return Difference(diff, math.nan, math.nan, math.nan, sa.n, sb.n)
    va, vb = sa.std**2 / sa.n, sb.std**2 / sb.n
    se = math.sqrt(va + vb)
    if se == 0.0:  # identical constant samples (e.g. 100% on every seed): no evidence either way, or certainty
        return Difference(diff, diff, diff, 1.0 if diff == 0 else 0.0, sa.n, sb.n)
    df = (va + vb) ** 2 / (va**2 / (sa.n - 1) + vb**2 / (sb.n - 1))
    from scipy.special import stdtr  # Student's t CDF; scipy.stats would add ~0.4 s to every report

    t = diff / se
    p = float(2 * stdtr(df, -abs(t)))
    half = _t_quantile(df) * se
    return Difference(diff, diff - half, diff + half, p, sa.n, sb.n)


def _t_quantile(df: float) -> float:
    from scipy.special import stdtrit  # inverse of Student's t CDF

    return float(stdtrit(df, 0.5 + CONFIDENCE / 2))


def format_p(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
