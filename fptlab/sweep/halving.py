"""Successive halving per arm: the optional cost cut of a tuned comparison (`[tune] halving`).

Asynchronous successive halving (ASHA; Li et al. 2020, the rule of Ray Tune's `ASHAScheduler`) with
one set of rungs per *arm*: a trial of an arm that reaches a rung (a step count) continues when its
best validation accuracy so far is not below the `1 - 1/eta` quantile of what the arm's trials that
reached the rung before it recorded there; otherwise it is stopped at the rung and recorded `pruned`
(not failed, never run again, its curve kept). Ray's own ASHA compares every trial of a sweep with
every other; a tuned comparison must compare only the candidates of one arm (an lr that is poor for a
frozen body may be the best for a fully trained one), hence this Tune scheduler.

The records of each rung are seeded from the store when a sweep starts, so a resumed sweep applies the
same cut to the trials still to run as an uninterrupted one would have. Nothing here reads the test
split: the only metric is the validation accuracy a worker reports (`VAL`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from fptlab.sinks import from_jsonable
from fptlab.sweep.trainable import VAL
from fptlab.sweep.tuning import Halving


@dataclass(frozen=True)
class Cut:
    """Why a trial was pruned: at `rung` its best validation accuracy `value` fell below `cutoff`, the
    quantile of the `earlier` values its arm had recorded there."""

    rung: int
    value: float
    cutoff: float
    earlier: int


class ArmRungs:
    """The halving rule, without Ray: per arm and rung, the values recorded there in arrival order."""

    def __init__(self, halving: Halving, arm_of: Mapping[str, Any], rungs_of: Mapping[str, list[int]]) -> None:
        self.halving = halving
        self.arm_of, self.rungs_of = dict(arm_of), {h: list(r) for h, r in rungs_of.items()}
        self.records: dict[tuple[Any, int], list[float]] = {}
        self.seen: set[tuple[str, int]] = set()  # (trial, rung) already judged or seeded
        self.best: dict[str, float] = {}
        self.cuts: dict[str, Cut] = {}

    def seed(self, config_hash: str, curve: Iterable[tuple[int, float]]) -> None:
        """A trial stored before this sweep: its validation curve's best up to each rung it reached."""
        if config_hash not in self.arm_of:
            return
        points = sorted((int(s), float(v)) for s, v in curve if math.isfinite(v))
        for rung in self._rungs(config_hash):
            upto = [v for s, v in points if s <= rung]
            if points and points[-1][0] >= rung and upto:
                self.records.setdefault((self.arm_of[config_hash], rung), []).append(max(upto))
                self.seen.add((config_hash, rung))
        if points:
            self.best[config_hash] = max(v for _, v in points)

    def report(self, config_hash: str, step: int, value: float) -> Cut | None:
        """A trial's validation accuracy at `step`: the cut that stops it, or None to continue."""
        if config_hash not in self.arm_of:
            return None
        if math.isfinite(value):
            self.best[config_hash] = max(self.best.get(config_hash, -math.inf), value)
        best = self.best.get(config_hash, -math.inf)
        for rung in self._rungs(config_hash):
            if step < rung or (config_hash, rung) in self.seen:
                continue
            self.seen.add((config_hash, rung))
            earlier = self.records.setdefault((self.arm_of[config_hash], rung), [])
            cutoff = float(np.percentile(earlier, (1 - 1 / self.halving.eta) * 100)) if earlier else None
            earlier.append(best)
            if cutoff is not None and best < cutoff:
                self.cuts[config_hash] = Cut(rung, best, cutoff, len(earlier) - 1)
                return self.cuts[config_hash]
        return None

    def _rungs(self, config_hash: str) -> list[int]:
        return self.rungs_of.get(config_hash, [])


class ArmHalving(FIFOScheduler):
    """The Tune scheduler: trials in the order the searcher hands them out, each stopped at the first
    rung where `ArmRungs` cuts it. `StoreCallback` records a cut trial as `pruned` (it reads `rungs.cuts`)."""

    def __init__(self, rungs: ArmRungs) -> None:
        super().__init__()
        self.rungs = rungs

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        report = result.get(VAL)
        if not report:
            return TrialScheduler.CONTINUE
        step, value = report
        cut = self.rungs.report(trial.config["config_hash"], int(step), float(from_jsonable(value)))
        return TrialScheduler.STOP if cut is not None else TrialScheduler.CONTINUE


def arm_rungs(decl: Any, cells: list[Any], store: Any) -> ArmRungs:
    """The halving state of a tuned sweep: every cell's arm and length, seeded with the validation
    curves the store already holds for them (a resumed sweep)."""
    rungs = ArmRungs(decl.halving, {c.hash: decl.arm(c.labels) for c in cells},
                     {c.hash: decl.halving.steps_of(c.config.steps, c.config.eval_every) for c in cells})
    curves: dict[str, list[tuple[int, float]]] = {}
    for config_hash, _key, step, value in store.curves([c.hash for c in cells], ["val_accuracy"]):
        curves.setdefault(config_hash, []).append((step, value))
    for config_hash, curve in curves.items():
        rungs.seed(config_hash, curve)
    return rungs
