"""Successive halving per arm (`fptlab.sweep.halving.ArmRungs`) on synthetic reports whose answer is
known: the first arrival at a rung always continues; a later one continues only when it is not below
the (1 - 1/eta) quantile of the earlier ones (Ray Tune's ASHA rule); arms never compare with each
other; a candidate (one tuned value, all its seeds) is kept or cut whole, by its first seed at the
rung, against the other candidates' mean scores; the arm's fixed value is never cut; a rung past a
cell's end is never applied; a resumed sweep, seeded from the stored curves, cuts exactly what an
uninterrupted one cut."""

from __future__ import annotations

import math

import numpy as np

from fptlab.sweep.halving import ArmRungs
from fptlab.sweep.tuning import Halving

ARM_A, ARM_B = ("init", "pretrained"), ("init", "random")


def rungs(halving: Halving, arms: dict[str, tuple], steps: int = 100, eval_every: int = 10,
          exempt: tuple = ()) -> ArmRungs:
    """Each trial its own candidate of its arm, unless named "candidate/seed" (then seeds of one)."""
    units = {h: (arm, h.split("/")[0]) for h, arm in arms.items()}
    return ArmRungs(halving, units, {h: halving.steps_of(steps, eval_every) for h in arms},
                    {(arms[h], h.split("/")[0]) for h in exempt})


def run(state: ArmRungs, h: str, curve: list[tuple[int, float]]) -> int | None:
    """Feed a trial's evaluations in order; the step it was cut at, or None."""
    for step, value in curve:
        cut = state.report(h, step, value)
        if cut is not None:
            return cut.rung
    return None


def flat(value: float) -> list[tuple[int, float]]:
    return [(s, value) for s in range(10, 101, 10)]


def test_first_arrival_continues_and_a_worse_later_one_is_cut_at_the_rung() -> None:
    state = rungs(Halving(3, (30,)), {"a": ARM_A, "b": ARM_A, "c": ARM_A})
    assert run(state, "a", flat(0.5)) is None  # nothing recorded before it
    assert run(state, "b", flat(0.4)) == 30  # below the only earlier value
    assert run(state, "c", flat(0.6)) is None
    assert state.cuts["b"].cutoff == 0.5 and state.cuts["b"].earlier == 1


def test_the_cutoff_is_the_asha_quantile_of_the_earlier_arrivals() -> None:
    earlier = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    arms = {f"t{i}": ARM_A for i in range(len(earlier))} | {"low": ARM_A, "high": ARM_A}
    state = rungs(Halving(3, (20,)), arms)
    for i, v in enumerate(earlier):
        run(state, f"t{i}", [(10, v), (20, v)])
    cutoff = float(np.percentile(earlier, 100 * (1 - 1 / 3)))
    assert run(state, "low", [(20, cutoff - 1e-6)]) == 20
    assert state.cuts["low"].cutoff == cutoff
    assert run(state, "high", [(20, cutoff)]) is None  # not below: continues


def test_the_best_value_so_far_is_judged_not_the_last_one() -> None:
    state = rungs(Halving(2, (30,)), {"a": ARM_A, "b": ARM_A})
    run(state, "a", [(10, 0.5), (20, 0.5), (30, 0.5)])
    assert run(state, "b", [(10, 0.2), (20, 0.7), (30, 0.3)]) is None  # its best by the rung is 0.7


def test_arms_never_compare_with_each_other() -> None:
    state = rungs(Halving(3, (30,)), {"a": ARM_A, "b": ARM_B})
    run(state, "a", flat(0.9))
    assert run(state, "b", flat(0.1)) is None  # the first of its own arm


def test_a_rung_at_or_past_the_end_of_a_cell_is_never_applied() -> None:
    halving = Halving(3, (50, 100))
    assert halving.steps_of(100, 10) == [50]
    assert Halving(3, (0.25, 0.5)).steps_of(200, 20) == [40, 100]  # fractions: the evaluation at or before
    assert Halving(3, (0.01,)).steps_of(200, 20) == [20]  # at least the first evaluation
    state = ArmRungs(halving, {"a": (ARM_A, "a"), "b": (ARM_A, "b")}, {"a": [50], "b": [50]})
    run(state, "a", flat(0.9))
    assert run(state, "b", [(s, 0.8 if s < 60 else 0.1) for s in range(10, 101, 10)]) == 50


def test_a_resumed_sweep_seeded_from_the_store_cuts_what_an_uninterrupted_one_cut() -> None:
    curves = {"a": flat(0.6), "b": flat(0.7), "c": flat(0.5), "d": flat(0.65), "e": flat(0.3)}
    arms = {h: ARM_A for h in curves}
    halving = Halving(2, (30, 60))
    whole = rungs(halving, arms)
    cut_whole = {h: run(whole, h, curve) for h, curve in curves.items()}
    assert cut_whole == {"a": None, "b": None, "c": 30, "d": None, "e": 30}
    resumed = rungs(halving, arms)
    resumed.seed("a", curves["a"])  # finished before the kill
    resumed.seed("b", curves["b"][:4])  # killed at step 40, past rung 30: not judged there again
    resumed.seed("c", curves["c"][:2])  # killed at step 20, before any rung
    cut_resumed = {"a": None, "b": run(resumed, "b", curves["b"][4:]), "c": run(resumed, "c", curves["c"][2:])}
    for h in ("d", "e"):
        cut_resumed[h] = run(resumed, h, curves[h])
    assert cut_resumed == cut_whole


def test_nan_validation_accuracy_is_never_a_best() -> None:
    state = rungs(Halving(2, (20,)), {"a": ARM_A, "b": ARM_A})
    run(state, "a", [(10, 0.4), (20, 0.4)])
    assert run(state, "b", [(10, math.nan), (20, math.nan)]) == 20  # no value at all: below any cutoff


def test_a_candidate_is_kept_or_cut_whole_by_its_first_seed_at_the_rung() -> None:
    arms = {f"{c}/{seed}": ARM_A for c in ("x", "y", "z") for seed in (0, 1, 2)}
    state = rungs(Halving(2, (30,)), arms)
    assert [run(state, f"x/{s}", flat(v)) for s, v in enumerate((0.6, 0.5, 0.7))] == [None] * 3
    # y's first seed is below x's mean (0.6): every seed of y stops at 30, also a seed better than x
    assert [run(state, f"y/{s}", flat(v)) for s, v in enumerate((0.55, 0.9, 0.1))] == [30] * 3
    assert state.cuts["y/1"].cutoff == state.cuts["y/0"].cutoff == 0.6 and state.cuts["y/1"].value == 0.9
    # z's first seed passes the cutoff (the quantile of x's and y's mean scores): a poor later seed goes on
    assert run(state, "z/0", flat(0.8)) is None and run(state, "z/1", flat(0.0)) is None


def test_every_arm_keeps_a_candidate_whose_seeds_all_finish() -> None:
    rng = np.random.default_rng(0)
    arms = {f"{c}/{seed}": ARM_A for c in range(4) for seed in range(3)}
    for trial in range(20):
        state = rungs(Halving(3, (30,)), arms)
        outcome = {h: run(state, h, flat(float(rng.uniform()))) for h in arms}
        whole = {c for c in range(4) if all(outcome[f"{c}/{s}"] is None for s in range(3))}
        cut = {c for c in range(4) if all(outcome[f"{c}/{s}"] == 30 for s in range(3))}
        assert 0 in whole and whole | cut == set(range(4)), (trial, outcome)


def test_the_arms_fixed_value_is_never_cut_and_its_scores_count() -> None:
    arms = {"hi/0": ARM_A, "fixed/0": ARM_A, "lo/0": ARM_A}
    state = rungs(Halving(2, (30,)), arms, exempt=("fixed/0",))
    run(state, "hi/0", flat(0.9))
    assert run(state, "fixed/0", flat(0.1)) is None  # below the cutoff: goes on (the fixed comparison's cell)
    assert run(state, "lo/0", flat(0.4)) == 30  # the quantile of 0.9 and 0.1 is 0.5
    assert state.cuts["lo/0"].cutoff == 0.5


def test_a_resumed_sweep_keeps_its_candidates_decisions() -> None:
    halving = Halving(2, (30,))
    arms = {f"{c}/{seed}": ARM_A for c in ("x", "y") for seed in (0, 1)}
    whole = rungs(halving, arms)
    curves = {"x/0": flat(0.6), "x/1": flat(0.9), "y/0": flat(0.5), "y/1": flat(0.95)}
    cut_whole = {h: run(whole, h, c) for h, c in curves.items()}
    assert cut_whole == {"x/0": None, "x/1": None, "y/0": 30, "y/1": 30}
    resumed = rungs(halving, arms)
    resumed.seed("x/0", curves["x/0"])
    resumed.seed("y/0", curves["y/0"][:3], pruned=True)  # stored pruned at 30
    assert {h: run(resumed, h, curves[h]) for h in ("x/1", "y/1")} == {"x/1": None, "y/1": 30}


def test_the_fixed_value_is_found_by_arm_when_the_run_cells_hashes_differ_from_the_specs() -> None:
    """A sweep runs cells whose data sources were resolved here (MNIST's installed copy), so their hashes
    are not the spec's: the arm's fixed value must still be known (it once was not, and MNIST's fixed
    lr was cut)."""
    from types import SimpleNamespace

    from fptlab.sweep.halving import arm_rungs, fixed_by_arm
    from fptlab.sweep.tuning import TuneDecl

    decl = TuneDecl("lr", (1e-4, 1e-3), halving=Halving(2, (20,)))
    config = SimpleNamespace(steps=100, eval_every=10)
    labels = [{"task": "mnist", "lr": lr, "seed": 0} for lr in (1e-4, 1e-3)]
    spec = SimpleNamespace(cells=[SimpleNamespace(hash=f"spec-{i}", labels=lab) for i, lab in enumerate(labels)],
                           fixed={"spec-0": 1e-3, "spec-1": 1e-3})
    ran = [SimpleNamespace(hash=f"here-{i}", labels=lab, config=config) for i, lab in enumerate(labels)]
    store = SimpleNamespace(curves=lambda hashes, keys: [], statuses=lambda hashes: {})
    state = arm_rungs(decl, ran, store, fixed_by_arm(decl, spec))
    run(state, "here-0", flat(0.9))
    assert run(state, "here-1", flat(0.1)) is None  # lr 1e-3, the fixed value: never cut
