"""`StoreSink`: the `fptlab.sinks.Sink` that writes a claimed trial's run into the store: the one
way a trial is recorded. A sweep driver feeds one per running trial with what its Ray worker reports
(`fptlab.sweep.tune_glue.StoreCallback`); in-process runs write through it directly.

Per-step metrics are buffered and written in batches (every `flush_every` rows, at each evaluation
and at the end), so a 10k-step run costs a few hundred statements, not 30k. While it flushes it also
renews the trial's lease, so a run that is alive is never handed to another driver.
"""

from __future__ import annotations

import numbers
import time
from typing import Any

from fptlab.store.db import Store

EVAL_PREFIX = "test_"  # keys logged at evaluations: flush them at once so progress is visible
START_RESULTS = ("trainable_params", "total_params", "resumed_from", "threads", "pack_size")
TRIAL_FIELDS = ("status", "device", "config_hash", "config", "error")  # not results


class StoreSink:
    """Writes one trial's run, on behalf of the driver `owner` that claimed it."""

    def __init__(
        self, store: Store, config_hash: str, owner: str, *, flush_every: int = 200, heartbeat_every: float = 30.0
    ) -> None:
        self.store, self.config_hash, self.owner = store, config_hash, owner
        self.flush_every, self.heartbeat_every = flush_every, heartbeat_every
        self._rows: list[tuple[int, str, float]] = []
        self._last_beat = time.monotonic()
        self.applied: bool | None = None  # after finish: whether the store accepted the result
        self.stale = False  # another driver took the trial over (our lease expired): stop writing

    def start(self, info: dict[str, Any]) -> None:
        results = {k: float(info[k]) for k in START_RESULTS if _is_number(info.get(k))}
        results.update(_flatten_groups(info.get("params_by_group")))
        versions = info.get("versions") if isinstance(info.get("versions"), dict) else {}
        self.store.record_start(
            self.config_hash,
            self.owner,
            device=_str_or_none(info.get("device")),
            versions={k: _str_or_none(v) for k, v in versions.items()},
            data_fingerprint=_str_or_none(info.get("data_fingerprint")),
            results=results,
        )

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.add_rows([(step, key, value) for key, value in metrics.items()])
        evaluated = any(key.startswith(EVAL_PREFIX) for key in metrics)
        if evaluated or len(self._rows) >= self.flush_every:
            self.flush()

    def add_rows(self, rows: list[tuple[int, str, Any]]) -> None:
        """Buffer (step, key, value) rows (non-numbers are dropped); `flush` writes them."""
        self._rows.extend((int(step), key, float(value)) for step, key, value in rows if _is_number(value))

    def artifact(self, kind: str, location: str, meta: dict[str, Any]) -> None:
        if not self.stale:
            self.store.add_artifact(self.config_hash, kind, location, meta)

    def flush(self) -> None:
        """Write buffered metrics now (and renew the lease if it is due)."""
        if self._rows and not self.stale:
            self.stale = not self.store.log_metrics(self.config_hash, self._rows, owner=self.owner)
        self._rows = []
        if not self.stale and time.monotonic() - self._last_beat >= self.heartbeat_every:
            self.store.heartbeat([self.config_hash], self.owner)
            self._last_beat = time.monotonic()

    def finish(self, result: dict[str, Any]) -> None:
        """Flush, then record the final status and numeric results (RunResult.as_dict() keys)."""
        self.flush()
        status = str(result.get("status", "completed"))
        results = {k: float(v) for k, v in result.items() if k not in TRIAL_FIELDS and _is_number(v)}
        results.update(_flatten_groups(result.get("params_by_group")))
        self.applied = self.store.finish(
            self.config_hash,
            self.owner,
            status,
            results,
            error=_str_or_none(result.get("error")),
            device=_str_or_none(result.get("device")),
        )

    def prune(self, step: int, best_val_accuracy: float, cutoff: float) -> None:
        """Successive halving stopped the run at rung `step`: record it `pruned` (done, its curve kept),
        with its best validation accuracy there and the cut it fell below."""
        from fptlab.store.models import PRUNED

        self.flush()
        results = {"steps": float(step), "pruned_at": float(step), "best_val_accuracy": float(best_val_accuracy),
                   "pruned_cutoff": float(cutoff)}
        self.applied = self.store.finish(self.config_hash, self.owner, PRUNED, results)

    def fail(self, error: str, status: str = "failed") -> None:
        """The run raised: keep what was logged and record the error (status failed or interrupted)."""
        try:
            self.flush()
        finally:
            self.applied = self.store.finish(self.config_hash, self.owner, status, {}, error=error)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real)  # bool, int, float and numpy scalars; NaN/inf included


def _flatten_groups(groups: Any) -> dict[str, float]:
    if not isinstance(groups, dict):
        return {}
    return {f"params.{name}": float(n) for name, n in groups.items() if _is_number(n)}


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
