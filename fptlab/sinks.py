"""Where a run's records go. The training loop writes through this protocol and knows nothing of
files, SQL or Ray; the results store provides a database sink."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Protocol


class Sink(Protocol):
    def start(self, info: dict[str, Any]) -> None:
        """Called once: config, config hash, parameter counts, device, versions (fptlab, torch, transformers)."""

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Per-step values (train loss/accuracy; test loss/accuracy at evaluations). May be NaN/inf."""

    def artifact(self, kind: str, location: str, meta: dict[str, Any]) -> None:
        """A file the run wrote (attention maps, parameter statistics, a saved body), after training."""

    def finish(self, result: dict[str, Any]) -> None:
        """Called once at the end with the final result, whatever the status."""


class NullSink:
    def start(self, info: dict[str, Any]) -> None:
        pass

    def log(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def artifact(self, kind: str, location: str, meta: dict[str, Any]) -> None:
        pass

    def finish(self, result: dict[str, Any]) -> None:
        pass


def jsonable_float(v: Any) -> Any:
    """JSON has no NaN/inf: keep them explicit as "nan" / "inf" / "-inf" rather than dropping them."""
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def from_jsonable(v: Any) -> Any:
    """Inverse of `jsonable_float`: "nan" / "inf" / "-inf" back to floats; anything else unchanged."""
    return NON_FINITE[v] if isinstance(v, str) and v in NON_FINITE else v


class JsonlSink:
    """One JSON object per line: {"event": "start"|"log"|"artifact"|"finish", ...}. Appends, so a
    resumed run continues the same file. The file (and its folder) is created at the first record, so
    a run refused before it starts (bad weights, missing data) leaves nothing behind."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fh: Any = None

    def _write(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", buffering=1)
        record = {k: jsonable_float(v) for k, v in record.items()}
        self._fh.write(json.dumps(record, sort_keys=True, default=str) + "\n")

    def start(self, info: dict[str, Any]) -> None:
        self._write({"event": "start", "time": time.time(), **info})

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self._write({"event": "log", "step": step, **metrics})

    def artifact(self, kind: str, location: str, meta: dict[str, Any]) -> None:
        self._write({"event": "artifact", "kind": kind, "location": location, "meta": meta})

    def finish(self, result: dict[str, Any]) -> None:
        self._write({"event": "finish", "time": time.time(), **result})
        self._fh.close()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
