"""Tuned comparisons: a spec's `[tune]` table gives every arm of a table (a row x column cell: every axis
value but the seed) its own best value of one numeric config key, chosen on the validation split.

    [tune]
    key = "lr"                                        # any numeric run-config key, task or model option
    values = [1e-4, 3e-4, 1e-3]                       # the candidates, or:
    range = { low = 1e-6, high = 1e-2, count = 5 }    # count values, log-spaced (log = false: linear)
    metric = "val_accuracy"                           # what selects (the only one recorded per step)
    seeds = [0, 1, 2]                                 # optional: the seeds (or top-level seeds = [...])
    halving = { eta = 3, rungs = [100, 300] }         # optional: successive halving per arm (ASHA); rungs
                                                      # are steps, or fractions of each cell's steps ([0.25])

The candidates form one more axis of the grid (`key`), so every candidate of every arm is an ordinary
trial: hashed, stored, resumable, deduplicated (a cell already run at the same config, e.g. at the
paper's lr, is that same trial). The tuned value is set last, over any [[when]] that sets the key (the
paper-base's homology lr 1e-4): that value is the cell's *fixed* one, and the spec also holds each
arm's cell at its fixed value when it is not a candidate, so the report can show both. The report selects, per arm, the value whose seeds reach the best
mean validation accuracy at their selected steps, and shows the test accuracy there
(`fptlab.report.tuned`). With `halving`, a candidate (one value of one arm, all its seeds) that at a
rung (a step count) is not among the best 1/eta of its arm's candidates that reached that rung has
its seeds stopped there and recorded `pruned`: not failed, never run again, their curves kept
(`fptlab.sweep.halving`). The arm's fixed value is never cut.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fptlab.escape import quoted
from fptlab.sweep.keys import check_axis, fail, key_type

TUNE_KEYS = ("key", "values", "range", "metric", "seeds", "halving")
RANGE_KEYS = ("low", "high", "count", "log")
HALVING_KEYS = ("eta", "rungs")
METRICS = ("val_accuracy",)  # recorded at every evaluation of a run with a validation split


@dataclass(frozen=True)
class Halving:
    eta: int  # keep the best 1/eta of an arm's trials at each rung
    rungs: tuple[float, ...]  # where an arm's trials are compared: step counts, or fractions of each cell's steps

    @property
    def fractions(self) -> bool:
        return all(isinstance(r, float) for r in self.rungs)

    def steps_of(self, steps: int, eval_every: int) -> list[int]:
        """The rungs of a cell of `steps` steps evaluated every `eval_every`: step counts as given; a
        fraction f becomes the last evaluation at or before f x steps (at least the first)."""
        if not self.fractions:
            return [int(r) for r in self.rungs if r < steps]
        out = [max(eval_every, int(f * steps) // eval_every * eval_every) for f in self.rungs]
        return sorted({r for r in out if r < steps})


@dataclass(frozen=True)
class TuneDecl:
    key: str
    values: tuple[float, ...]
    metric: str = "val_accuracy"
    halving: Halving | None = None
    log: bool = True  # log-spaced candidates: the report's sensitivity figure uses a log axis
    seeds: tuple[int, ...] = ()  # [tune] seeds = [...], when the seeds are given here

    def arm(self, labels: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
        """The arm a cell belongs to: its labels without the tuned key and the seed."""
        return tuple(sorted((k, _hashable(v)) for k, v in labels.items() if k not in (self.key, "seed")))


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def parse_tune(table: Any, origin: str) -> TuneDecl:
    """The `[tune]` table, checked: a numeric key, candidates (a list, or a range), the metric, halving."""
    if not isinstance(table, Mapping):
        raise fail(origin, "tune", f"must be a table ([tune] with key = value lines), got {quoted(table)}.")
    for name in table:
        if name not in TUNE_KEYS:
            raise fail(origin, f"tune.{name}", f"unknown key; [tune] takes {', '.join(TUNE_KEYS)}.")
    key = table.get("key")
    if not isinstance(key, str) or not key:
        raise fail(origin, "tune.key", f'names the config key to tune, e.g. key = "lr"; got {quoted(key)}.')
    if key in ("seed", "variant"):
        raise fail(origin, "tune.key", f"{quoted(key)} cannot be tuned: the seeds are what a tuned value is averaged over, and "
                   "variants are arms. Tune a numeric config key such as lr.")
    _numeric(key, origin)
    if ("values" in table) == ("range" in table):
        raise fail(origin, "tune", "give the candidates as values = [...] or as range = { low, high, count }, one of the two.")
    if "values" in table:
        values = _values(table["values"], origin)
        log = all(v > 0 for v in values)
    else:
        values, log = _range(table["range"], origin)
    values = tuple(check_axis(key, list(values), "tune.values" if "values" in table else "tune.range", origin))
    if len(values) < 2:
        raise fail(origin, "tune.values", f"a tuned comparison needs at least 2 candidates, got {len(values)}.")
    metric = table.get("metric", "val_accuracy")
    if metric not in METRICS:
        raise fail(origin, "tune.metric", f"{quoted(metric)} is not recorded at every evaluation; select on one of: {', '.join(METRICS)}.")
    halving = _halving(table["halving"], origin) if "halving" in table else None
    seeds = table.get("seeds", [])
    if "seeds" in table and not (isinstance(seeds, list) and seeds and all(
            isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in seeds)):
        raise fail(origin, "tune.seeds", f"must be a non-empty list of integers >= 0, e.g. seeds = [0, 1, 2]; got {quoted(seeds)}.")
    return TuneDecl(key, values, metric, halving, log, tuple(seeds))


def _numeric(key: str, origin: str) -> None:
    try:
        typ = key_type(key)
    except (KeyError, AttributeError, Exception):  # noqa: BLE001 - an unknown section or option: one message
        raise fail(origin, "tune.key", f"{quoted(key)} is not a config key; tune a numeric run-config key (lr, weight_decay, "
                   "dropout, ...), a task option (bit_xor.n_bits) or a model option (model.hidden_dropout).") from None
    args = [a for a in typing.get_args(typ) if a is not type(None)] or [typ]
    if not all(a in (int, float) for a in args):
        raise fail(origin, "tune.key", f"{quoted(key)} is not numeric ({typ}); only a number can be tuned over a range.")


def _values(values: Any, origin: str) -> tuple[float, ...]:
    if not isinstance(values, list) or not values:
        raise fail(origin, "tune.values", f"must be a non-empty list of numbers, e.g. values = [1e-4, 1e-3]; got {quoted(values)}.")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise fail(origin, "tune.values", f"every candidate must be a finite number; got {quoted(values)}.")
    if len(set(values)) != len(values):
        raise fail(origin, "tune.values", f"candidates repeat: {quoted(values)}; give each once.")
    return tuple(values)


def _range(spec: Any, origin: str) -> tuple[tuple[float, ...], bool]:
    if not isinstance(spec, Mapping) or any(k not in RANGE_KEYS for k in spec):
        raise fail(origin, "tune.range", f"must be a table {{ low, high, count[, log] }}; got {quoted(spec)}.")
    low, high, count, log = spec.get("low"), spec.get("high"), spec.get("count"), spec.get("log", True)
    for name, value in (("low", low), ("high", high)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise fail(origin, f"tune.range.{name}", f"must be a finite number, got {quoted(value)}.")
    if not low < high:
        raise fail(origin, "tune.range", f"low ({low:g}) must be below high ({high:g}).")
    if not isinstance(count, int) or isinstance(count, bool) or count < 2:
        raise fail(origin, "tune.range.count", f"must be an integer of at least 2 candidates, got {quoted(count)}.")
    if not isinstance(log, bool):
        raise fail(origin, "tune.range.log", f"must be true (log-spaced) or false (linear), got {quoted(log)}.")
    if log and low <= 0:
        raise fail(origin, "tune.range.low", f"a log-spaced range needs low > 0, got {low:g}; set log = false for a linear one.")
    if log:
        values = [math.exp(math.log(low) + i * (math.log(high) - math.log(low)) / (count - 1)) for i in range(count)]
    else:
        values = [low + i * (high - low) / (count - 1) for i in range(count)]
    return tuple(float(f"{v:.6g}") for v in values), log  # printable candidates: 1e-06, 1e-05, ...


def _halving(spec: Any, origin: str) -> Halving:
    if not isinstance(spec, Mapping) or any(k not in HALVING_KEYS for k in spec):
        raise fail(origin, "tune.halving", f"must be a table {{ eta, rungs }}; got {quoted(spec)}.")
    eta, rungs = spec.get("eta", 3), spec.get("rungs")
    if not isinstance(eta, int) or isinstance(eta, bool) or eta < 2:
        raise fail(origin, "tune.halving.eta", f"must be an integer >= 2 (keep the best 1/eta at each rung), got {quoted(eta)}.")
    steps = isinstance(rungs, list) and bool(rungs) and all(isinstance(r, int) and not isinstance(r, bool) and r > 0 for r in rungs)
    fractions = isinstance(rungs, list) and bool(rungs) and all(isinstance(r, float) and 0 < r < 1 for r in rungs)
    if not (steps or fractions) or sorted(set(rungs)) != rungs:
        raise fail(origin, "tune.halving.rungs", "must be increasing step counts > 0 (rungs = [100, 300]) or increasing fractions "
                   f"of each cell's steps in (0, 1) (rungs = [0.1, 0.3]); got {quoted(rungs)}.")
    return Halving(eta, tuple(rungs))


def check_cells(decl: TuneDecl, configs: list[Any], origin: str) -> None:
    """What a tuned comparison needs of every cell: a validation split to select on, and rungs that
    come before the end of the run."""
    for cfg in configs:
        if cfg.val_fraction is None:
            raise fail(origin, "tune", f"selects on {decl.metric}, so every cell needs a validation split: set val_fraction "
                       "(e.g. 0.1) in [defaults]. Selection never reads the test split.")
        if decl.halving is None or decl.halving.fractions:
            continue
        if decl.halving.rungs[-1] >= cfg.steps:
            raise fail(origin, "tune.halving.rungs", f"the last rung ({decl.halving.rungs[-1]}) must come before the end of every "
                       f"run; a cell runs {cfg.steps} steps (or give fractions of each cell's steps, e.g. rungs = [0.25]).")
        if any(int(r) % cfg.eval_every for r in decl.halving.rungs):
            raise fail(origin, "tune.halving.rungs", f"rungs must be evaluation steps (multiples of eval_every = {cfg.eval_every}) "
                       f"for every cell; got {list(decl.halving.rungs)}.")
