"""Steps to converge against each row's own plateau (flat curves are "did not learn", rising ones "not
converged by N"), divergence as NaN or collapse, on synthetic curves with known answers; the seed statistics."""

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


def run(points: list[tuple[int, float]], stopped: str = "") -> convergence.SeedRun:
    return convergence.SeedRun(curve(points), stopped, float(points[-1][0]))


def rise(until: int, budget: int, low: float = 0.5, high: float = 1.0, every: int = 50) -> list[tuple[int, float]]:
    """A linear rise from `low` at step 0 to `high` at `until`, then flat at `high` to `budget`."""
    return [(s, low + (high - low) * min(1.0, s / until)) for s in range(every, budget + 1, every)]


# ---- steps to converge: each row against its own plateau, on curves with a known answer -----------------
def test_a_fast_and_a_slow_riser_converge_where_they_reach_90_percent_of_their_gain() -> None:
    fast = convergence.verdict([run(rise(500, 4000))], chance=0.5)
    slow = convergence.verdict([run(rise(2000, 4000))], chance=0.5)
    assert fast.kind == slow.kind == "converged"
    assert fast.plateau == pytest.approx(1.0) and fast.level == pytest.approx(0.95)
    # linear rise to 1.0 at `until`: the 3-evaluation trailing mean reaches 0.95 a little after 0.9 x until
    assert 450 <= fast.steps <= 550 and 1800 <= slow.steps <= 2000
    assert slow.steps / fast.steps == pytest.approx(4, rel=0.15)


def test_a_row_flat_at_chance_did_not_learn_and_is_never_fast() -> None:
    flat = convergence.verdict([run([(s, 0.5) for s in range(50, 2001, 50)])], chance=0.5)
    assert flat.kind == "did_not_learn" and flat.text == "did not learn" and math.isnan(flat.steps)
    noisy = convergence.verdict([run([(s, 0.5 + (0.03 if (s // 50) % 2 else -0.02)) for s in range(50, 2001, 50)])], chance=0.5)
    assert noisy.kind == "did_not_learn"


def test_a_row_still_rising_at_its_budget_is_not_converged_by_n() -> None:
    rising = convergence.verdict([run(rise(8000, 2000))], chance=0.5)  # a quarter of the way up at the budget
    assert rising.kind == "not_converged" and rising.steps == 2000 and rising.text == "not converged by 2 × 10^3"


def test_a_run_stopped_at_its_target_converged_where_it_stopped() -> None:
    # Bit XOR stops at 100%: the trailing window still holds 0.8 and 0.9, below the level, at the last step
    stopped = [(50, 0.5), (100, 0.6), (150, 0.8), (200, 0.9), (250, 1.0)]
    seeds = [run(stopped, "target"), run([*stopped[:3], (200, 1.0)], "target")]
    v = convergence.verdict(seeds, chance=0.5)
    assert v.kind == "converged" and v.steps == pytest.approx((250 + 200) / 2)


def test_doubling_the_budget_of_a_plateaued_row_moves_nothing() -> None:
    for until in (300, 1000):
        short = convergence.verdict([run(rise(until, 4000)), run(rise(until * 1.2, 4000))], chance=0.1)
        long = convergence.verdict([run(rise(until, 8000)), run(rise(until * 1.2, 8000))], chance=0.1)
        assert short.kind == long.kind == "converged"
        assert short.steps == long.steps and short.plateau == pytest.approx(long.plateau)


def test_the_level_is_the_rows_own_so_a_lower_plateau_converges_on_its_own_terms() -> None:
    low = convergence.verdict([run(rise(500, 4000, low=0.1, high=0.4))], chance=0.1)
    high = convergence.verdict([run(rise(2000, 4000, low=0.1, high=0.9))], chance=0.1)
    assert low.kind == high.kind == "converged" and low.plateau == pytest.approx(0.4) and low.steps < high.steps
    # the second reading: the low row never reaches the high row's converged level
    assert convergence.steps_to_level([run(rise(500, 4000, low=0.1, high=0.4))], high.level) == (4000.0, True)
    steps, censored = convergence.steps_to_level([run(rise(500, 4000, low=0.1, high=0.9))], high.level)
    assert not censored and steps < high.steps


def test_smoothing_ignores_a_single_lucky_evaluation() -> None:
    spiky = [(10, 0.5), (20, 1.0), (30, 0.5), (40, 0.5), *[(s, 1.0) for s in range(50, 301, 10)]]
    v = convergence.verdict([run(spiky)], chance=0.5)
    assert v.steps == 70  # not 20: the first step where the last three evaluations average >= 0.95


def test_a_seed_stopped_at_its_target_keeps_its_accuracy() -> None:
    full = curve([(s, 1.0 if s >= 200 else 0.5) for s in range(0, 301, 50)])
    stopped = curve([(0, 0.5), (50, 0.5), (100, 1.0)])  # target_accuracy reached: the run ended at 100
    row = convergence.row_curve([full, stopped])
    assert list(row.index) == [0, 50, 100, 150, 200, 250, 300]
    assert row[100] == 0.75 and row[150] == 0.75 and row[300] == 1.0


# ---- divergence: a NaN loss is the trial's status; a collapse is read off the curve ----------------------
def test_a_collapse_with_finite_loss_is_a_divergence_and_keeps_the_value_before() -> None:
    from fptlab.report import divergence

    collapsed = curve([(100, 0.3), (200, 0.6), (300, 0.85), (400, 0.8), (500, 0.11), (600, 0.1), (700, 0.1)])
    found = divergence.collapse(collapsed, chance=0.1)
    assert found is not None and found.step == 500 and found.before_step == 400 and found.before == 0.8


def test_a_noisy_dip_that_recovers_is_not_a_divergence() -> None:
    from fptlab.report import divergence

    dip = curve([(100, 0.3), (200, 0.8), (300, 0.12), (400, 0.1), (500, 0.7), (600, 0.8)])
    assert divergence.collapse(dip, chance=0.1) is None
    short = curve([(100, 0.3), (200, 0.8), (300, 0.1)])  # one evaluation near chance at the end: not enough
    assert divergence.collapse(short, chance=0.1) is None
    never = curve([(100, 0.11), (200, 0.12), (300, 0.1), (400, 0.1)])  # never learned: nothing to collapse
    assert divergence.collapse(never, chance=0.1) is None


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
