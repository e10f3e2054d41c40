"""Successive halving per arm: the optional cost cut of a tuned comparison (`[tune] halving`).

Asynchronous successive halving (ASHA; Li et al. 2020, the rule of Ray Tune's `ASHAScheduler`) with
one set of rungs per *arm*, and the *candidate* (one tuned value of one arm, all its seeds) as the unit
that is kept or cut. The first seed of a candidate to reach a rung (a step count) decides for all its
seeds: the candidate continues when that seed's best validation accuracy so far is not below the
`1 - 1/eta` quantile of the scores of the arm's candidates that reached the rung before it (a score:
the mean over the seeds of that candidate recorded there); otherwise each of its seeds is stopped at
the rung and recorded `pruned` (not failed, never run again, its curve kept). Cutting seeds one by one
(Ray's rule applied per trial) left almost every candidate with a cut seed, so out of the selection:
on the offline tuned spec (3 seeds, eta 3) no fully trained arm had one candidate whose seeds all
finished. Ray's own ASHA also compares every trial of a sweep with every other; a tuned comparison
must compare only the candidates of one arm (an lr that is poor for a frozen body may be the best for
a fully trained one), hence this Tune scheduler.

The arm's cell at its *fixed* value (the paper's lr) is never cut: it is the fixed comparison's cell.
Its scores still count for the other candidates. The records and decisions of each rung are seeded from
the store when a sweep starts (a pruned trial: cut at the last rung it reached), so a resumed sweep
applies the same cut to the trials still to run as an uninterrupted one would have. Nothing here reads
the test split: the only metric is the validation accuracy a worker reports (`VAL`).
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
    """Why a trial was pruned: at `rung` its candidate's first arrival (best validation accuracy `value`
    for the trial itself) fell below `cutoff`, the quantile of the scores of the `earlier` candidates its
    arm had recorded there."""

    rung: int
    value: float
    cutoff: float
    earlier: int


Unit = tuple[Any, Any]  # (arm, candidate value): what halving keeps or cuts


class ArmRungs:
    """The halving rule, without Ray: per arm and rung, each candidate's recorded seed values and its
    decision there (None: kept; a Cut: every seed of it stops at that rung)."""

    def __init__(self, halving: Halving, unit_of: Mapping[str, Unit], rungs_of: Mapping[str, list[int]],
                 exempt: Iterable[Unit] = ()) -> None:
        self.halving = halving
        self.unit_of, self.rungs_of = dict(unit_of), {h: list(r) for h, r in rungs_of.items()}
        self.exempt = set(exempt)  # units never cut (an arm's fixed value)
        self.records: dict[tuple[Any, int], dict[Any, list[float]]] = {}  # (arm, rung) -> candidate -> values
        self.decided: dict[tuple[Unit, int], Cut | None] = {}
        self.seen: set[tuple[str, int]] = set()  # (trial, rung) already judged or seeded
        self.best: dict[str, float] = {}
        self.cuts: dict[str, Cut] = {}

    def seed(self, config_hash: str, curve: Iterable[tuple[int, float]], pruned: bool = False) -> None:
        """A trial stored before this sweep: its validation curve's best up to each rung it reached; its
        candidate's decision at each (kept, or for a `pruned` trial cut at the last rung it reached)."""
        if config_hash not in self.unit_of:
            return
        unit = self.unit_of[config_hash]
        points = sorted((int(s), float(v)) for s, v in curve if math.isfinite(v))
        reached = [r for r in self._rungs(config_hash) if points and points[-1][0] >= r]
        for rung in reached:
            best = max((v for s, v in points if s <= rung), default=-math.inf)
            self.records.setdefault((unit[0], rung), {}).setdefault(unit[1], []).append(best)
            self.seen.add((config_hash, rung))
            cut = pruned and rung == reached[-1] and unit not in self.exempt
            if cut or (unit, rung) not in self.decided:
                self.decided[(unit, rung)] = Cut(rung, best, math.nan, 0) if cut else None
            if cut:
                self.cuts[config_hash] = Cut(rung, best, math.nan, 0)
        if points:
            self.best[config_hash] = max(v for _, v in points)

    def report(self, config_hash: str, step: int, value: float) -> Cut | None:
        """A trial's validation accuracy at `step`: the cut that stops it, or None to continue."""
        if config_hash not in self.unit_of:
            return None
        if math.isfinite(value):
            self.best[config_hash] = max(self.best.get(config_hash, -math.inf), value)
        best = self.best.get(config_hash, -math.inf)
        arm, candidate = unit = self.unit_of[config_hash]
        for rung in self._rungs(config_hash):
            if step < rung or (config_hash, rung) in self.seen:
                continue
            self.seen.add((config_hash, rung))
            scores = self.records.setdefault((arm, rung), {})
            if (unit, rung) not in self.decided:  # the candidate's first seed here decides for all of them
                earlier = [s for s in (float(np.mean(v)) for c, v in scores.items() if c != candidate and v)
                           if math.isfinite(s)]
                cutoff = float(np.percentile(earlier, (1 - 1 / self.halving.eta) * 100)) if earlier else None
                cut = cutoff is not None and best < cutoff and unit not in self.exempt
                self.decided[(unit, rung)] = Cut(rung, best, cutoff, len(earlier)) if cut else None  # type: ignore[arg-type]
            scores.setdefault(candidate, []).append(best)
            decision = self.decided[(unit, rung)]
            if decision is not None:
                self.cuts[config_hash] = Cut(rung, best, decision.cutoff, decision.earlier)
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


def arm_rungs(decl: Any, cells: list[Any], store: Any, fixed: Mapping[Any, Any] | None = None) -> ArmRungs:
    """The halving state of a tuned sweep: every candidate cell's arm, value and length, seeded with the
    validation curves and prunings the store already holds for them (a resumed sweep). `fixed`: each
    arm's value without tuning (`fixed_by_arm`); an arm's cell at a fixed value that is not a candidate
    is not halved, one at a fixed value that is, is never cut."""
    fixed = fixed or {}
    units: dict[str, Unit] = {}
    exempt: set[Unit] = set()
    for c in cells:
        value = c.labels.get(decl.key)
        if not any(_close(value, v) for v in decl.values):
            continue  # the arm's fixed cell outside the candidates: run whole, compared with nothing
        arm = decl.arm(c.labels)
        units[c.hash] = (arm, value)
        if _close(value, fixed.get(arm)):
            exempt.add(units[c.hash])
    rungs = ArmRungs(decl.halving, units, {c.hash: decl.halving.steps_of(c.config.steps, c.config.eval_every)
                                           for c in cells if c.hash in units}, exempt)
    curves: dict[str, list[tuple[int, float]]] = {}
    for config_hash, _key, step, value in store.curves(list(units), ["val_accuracy"]):
        curves.setdefault(config_hash, []).append((step, value))
    statuses = store.statuses(list(units))
    for config_hash in sorted(curves, key=lambda h: (statuses.get(h) != "completed", h)):  # decisions kept first
        rungs.seed(config_hash, curves[config_hash], pruned=statuses.get(config_hash) == "pruned")
    return rungs


def fixed_by_arm(decl: Any, spec: Any) -> dict[Any, Any]:
    """Each arm's value of the tuned key without tuning, from the spec's own cells. By arm (labels), not
    by hash: the cells a sweep runs have their data sources resolved here, so other hashes."""
    return {decl.arm(c.labels): spec.fixed[c.hash] for c in spec.cells if c.hash in spec.fixed}


def _close(a: Any, b: Any) -> bool:
    return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-9)
