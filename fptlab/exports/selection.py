"""The trials an export writes (every one, or an experiment's, by status and column values) with their
config, results and curves, read in bulk: what the TensorBoard and MLflow exports share."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fptlab.config import flatten

SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class TrialRecord:
    trial: dict[str, Any]  # the trials table's columns, `config` parsed (None when it is not a JSON object)
    results: dict[str, float]
    curves: dict[str, list[tuple[int, float]]]  # metric key -> (step, value), by step

    @property
    def config_hash(self) -> str:
        return str(self.trial["config_hash"])

    def params(self) -> dict[str, Any]:
        """The config flattened (dotted keys), as strings, ints, floats or booleans."""
        out = {}
        for key, value in flatten(self.trial.get("config") or {}).items():
            out[key] = value if isinstance(value, (bool, int, float, str)) else str(value)
        return out

    def finite_results(self) -> dict[str, float]:
        return {k: v for k, v in self.results.items() if isinstance(v, float) and math.isfinite(v)}

    def label(self) -> str:
        """A folder or run name: task, backbone, init, seed and hash, with anything unsafe replaced
        (the values come from a database: they must not make a path climb out or hide a character)."""
        parts = [self.trial.get(k) for k in ("task", "backbone", "init")] + [f"s{self.trial.get('seed')}", self.config_hash]
        return "-".join(SAFE.sub("_", str(p))[:40] for p in parts if p is not None)


def selected(store: Any, *, experiment: str | None = None, statuses: list[str] | None = None,
             where: dict[str, Any] | None = None) -> Iterator[TrialRecord]:
    trials = store.trials(status=statuses or None, where=where or None, experiment=experiment)
    if not trials:
        return
    hashes = [t["config_hash"] for t in trials]
    results = store.results(hashes)
    curves: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for h, key, step, value in store.curves(hashes):
        curves.setdefault(h, {}).setdefault(key, []).append((int(step), float(value)))
    for t in trials:
        yield TrialRecord(t, results.get(t["config_hash"], {}), curves.get(t["config_hash"], {}))
