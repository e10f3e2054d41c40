"""The two pieces that tie Ray Tune to the store: a search algorithm that claims cells, and a
driver-side callback that writes what workers report and keeps leases fresh."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.search import Searcher

from fptlab.sweep.executor import Cell, SweepOptions
from fptlab.sweep.trainable import EVENT, PAYLOAD, ROWS


def _float(value: Any) -> float:
    return float(value) if not isinstance(value, str) else {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}[value]


class ClaimingSearcher(Searcher):
    """Hands Tune one claimed cell per `suggest()`; FINISHED when nothing is left to claim."""

    def __init__(self, store: Any, cells: list[Cell], owner: str, host: str, opts: SweepOptions) -> None:
        super().__init__()
        self.store, self.owner, self.host, self.opts = store, owner, host, opts
        self.pending = [c.config_hash for c in cells]
        self.cells = {c.config_hash: c for c in cells}
        self.checkpoints = (Path(opts.storage) / "checkpoints").resolve()

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        config_hash = self.store.next_claim(
            self.pending, self.owner, self.host, self.opts.lease_seconds, max_attempts=self.opts.retries + 1
        )
        if config_hash is None:
            return Searcher.FINISHED
        self.pending.remove(config_hash)
        return {
            "config_hash": config_hash,
            "config": self.cells[config_hash].config,
            "checkpoint_path": str(self.checkpoints / f"{config_hash}.pt"),
            "data_dir": str(self.opts.data_dir) if self.opts.data_dir else None,
        }

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass


class StoreCallback(Callback):
    """Runs in the sweep driver: the single writer of the store for this sweep."""

    def __init__(self, store: Any, owner: str, opts: SweepOptions, view: Any) -> None:
        self.store, self.owner, self.opts, self.view = store, owner, opts, view
        self._last_beat = 0.0
        self.finished: dict[str, str] = {}

    @staticmethod
    def _hash(trial: Any) -> str:
        return trial.config["config_hash"]

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.view.started(self._hash(trial))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        config_hash = self._hash(trial)
        rows = [(int(step), key, _float(value)) for step, key, value in result.get(ROWS, [])]
        if rows:
            # owner=: once another driver has taken this cell over, our worker's values are dropped.
            self.store.log_metrics(config_hash, rows, owner=self.owner)
        payload = result.get(PAYLOAD, {})
        if result.get(EVENT) == "start":
            counts = {k: float(payload[k]) for k in ("trainable_params", "total_params", "resumed_from") if k in payload}
            counts.update({f"params.{g}": float(n) for g, n in payload.get("params_by_group", {}).items()})
            self.store.record_start(
                config_hash, self.owner, device=payload.get("device"), fptlab_version=payload.get("fptlab_version"),
                data_fingerprint=payload.get("data_fingerprint"), results=counts,
            )
        elif result.get(EVENT) == "finish":
            numbers = {k: _float(v) for k, v in payload.items() if isinstance(v, (int, float, str)) and k not in ("status", "device", "config_hash")}
            numbers = {k: v for k, v in numbers.items() if not isinstance(v, bool)}
            self.store.finish(config_hash, self.owner, payload["status"], numbers, error=None, device=payload.get("device"))
            self.finished[config_hash] = payload["status"]
            self.view.finished(config_hash, payload["status"], payload.get("test_accuracy"))
        self._beat(trials)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        config_hash = self._hash(trial)
        self.store.finish(config_hash, self.owner, "failed", {}, error=_error_text(trial), device=None)
        self.finished[config_hash] = "failed"
        self.view.finished(config_hash, "failed", None)

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        self._beat(trials)

    def _beat(self, trials: list) -> None:
        now = time.monotonic()
        if now - self._last_beat < self.opts.lease_seconds / 4:
            return
        self._last_beat = now
        # PENDING trials hold a claim too (Tune asks for the next cell before resources free up).
        running = [self._hash(t) for t in trials if t.status in ("RUNNING", "PENDING") and self._hash(t) not in self.finished]
        if running:
            self.store.heartbeat(running, self.owner)


def _error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text() if path else ""
    except OSError:
        text = ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-3:]) if lines else "trial failed (no error file)"
