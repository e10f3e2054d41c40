"""Steps to converge against a common level (flat curves are not rewarded), and the seed statistics."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from fptlab.report import convergence
from fptlab.report.declare import paper_grid, parse_paper_value
from fptlab.report.stats import summarize, welch
from fptlab.report.values import format_count, format_steps


def curve(points: list[tuple[int, float]]) -> pd.DataFrame:
    return pd.DataFrame(points, columns=["step", "value"])


def test_a_flat_curve_never_converges_while_a_learning_one_does() -> None:
    learns = curve([(s, min(1.0, 0.5 + s / 1000)) for s in range(0, 1001, 50)])
    flat = curve([(s, 0.5) for s in range(0, 1001, 50)])
    level, reached = convergence.converge({"fpt": [learns], "random": [flat]})
    assert level == pytest.approx(0.99)
    assert reached["random"] == convergence.Reached(1000.0, True)  # "> 1000", not 25 steps
    assert not reached["fpt"].censored and 500 < reached["fpt"].steps <= 650


def test_smoothing_ignores_a_single_lucky_evaluation() -> None:
    spiky = curve([(0, 0.5), (10, 1.0), (20, 0.5), (30, 0.5), (40, 1.0), (50, 1.0), (60, 1.0)])
    level, reached = convergence.converge({"a": [spiky]})
    assert reached["a"].steps == 60  # the first step where the last three evaluations average >= 0.99


def test_the_level_is_set_by_row_means_not_by_one_lucky_seed() -> None:
    steps = range(0, 501, 50)
    lucky = curve([(s, min(1.0, s / 250)) for s in steps])  # reaches 1.0
    usual = curve([(s, min(0.9, s / 250)) for s in steps])  # tops out at 0.9
    level, reached = convergence.converge({"fpt": [lucky, usual, usual], "random": [usual]})
    assert level == pytest.approx(0.99 * (1.0 + 0.9 + 0.9) / 3)  # the best ROW mean, not the lucky seed's 1.0
    assert not reached["fpt"].censored
    assert reached["random"].censored  # 0.9 < 0.924: random's row never gets there


def test_a_seed_stopped_at_its_target_keeps_its_accuracy() -> None:
    full = curve([(s, 1.0 if s >= 200 else 0.5) for s in range(0, 301, 50)])
    stopped = curve([(0, 0.5), (50, 0.5), (100, 1.0)])  # target_accuracy reached: the run ended at 100
    row = convergence.row_curve([full, stopped])
    assert list(row.index) == [0, 50, 100, 150, 200, 250, 300]
    assert row[100] == 0.75 and row[150] == 0.75 and row[300] == 1.0


def test_paper_values_parse_as_printed() -> None:
    assert parse_paper_value("89.0% †").diverged and parse_paper_value("89.0% †").value == 89.0
    assert parse_paper_value("$4 \\times 10^4$".replace("$", "").replace("\\times", "×")).value == 40000
    assert parse_paper_value("117M").value == 117e6 and parse_paper_value("106K").value == 106e3
    assert parse_paper_value("-") is None
    grid = paper_grid("""
        | A | B
        x | 1% | -
    """)
    assert list(grid) == [("x", "A")]


def test_seed_statistics() -> None:
    s = summarize([0.9, 1.0, 1.1])
    assert s.mean == pytest.approx(1.0) and s.std == pytest.approx(0.1) and s.n == 3
    single = summarize([0.5])
    assert single.n == 1 and math.isnan(single.std) and math.isnan(single.low)
    d = welch([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    assert d.diff == 0 and d.p == 1.0
    d = welch([10, 11, 12], [1, 2, 3])
    assert d.p < 0.001 and d.low < 9 < d.high
    assert welch([1.0], []) is None


def test_counts_and_steps_print_as_the_paper_does() -> None:
    assert format_count(117e6) == "117M" and format_count(106_000) == "106K"
    assert format_steps(40000) == "4 × 10^4" and format_steps(500) == "500" and format_steps(25000) == "2.5 × 10^4"


def test_welch_matches_scipys_reference_implementation() -> None:
    from scipy import stats as reference

    a, b = [0.61, 0.58, 0.66, 0.63], [0.52, 0.57, 0.49]
    d = welch(a, b)
    ref = reference.ttest_ind(a, b, equal_var=False)
    assert d.p == pytest.approx(ref.pvalue, rel=1e-9)
    s = summarize(a)
    low, high = reference.t.interval(0.95, len(a) - 1, loc=s.mean, scale=reference.sem(a))
    assert (s.low, s.high) == (pytest.approx(low), pytest.approx(high))
