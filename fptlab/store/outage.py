"""Riding out a database outage: a server restart, a failover or a network blip must not end a sweep
that runs for days. A transaction that fails because the connection is gone is run again, with
exponential backoff, until the database is back or it has been unreachable for the outage budget
(`Store(outage_seconds=...)`, $FPTLAB_DB_OUTAGE_SECONDS, default 5 minutes); then `StoreError`.

The clock is per database, not per call: the outage starts at the first failure after a success and
ends at the next success, so "unreachable for N s" is true however many calls wait on it, and a call
made after the budget is spent (e.g. marking trials interrupted on the way out) tries once and gives
up instead of waiting another budget."""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time

from fptlab.store.errors import StoreError

ENV_VAR = "FPTLAB_DB_OUTAGE_SECONDS"
DEFAULT_SECONDS = 300.0
FIRST_DELAY = 0.25  # seconds before the first retry; doubles up to MAX_DELAY
MAX_DELAY = 10.0

log = logging.getLogger("fptlab.store")


def outage_budget(seconds: float | None = None) -> float:
    """`seconds`, else $FPTLAB_DB_OUTAGE_SECONDS, else 300; must be a finite number >= 0 (0: never retry)."""
    origin = "outage_seconds"
    if seconds is None:
        raw = os.environ.get(ENV_VAR, "").strip()
        if not raw:
            return DEFAULT_SECONDS
        origin = f"${ENV_VAR}"
        try:
            seconds = float(raw)
        except ValueError:
            raise StoreError(f"{origin} must be a number of seconds (0 or more), got {raw!r}.") from None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        raise StoreError(
            f"{origin} must be a number of seconds (0 or more: how long to wait for an unreachable database), got {seconds!r}."
        )
    return float(seconds)


class Outage:
    """The outage clock of one database (thread-safe): `failed` sleeps before the next try, or raises
    StoreError once the database has been unreachable for `budget` seconds; `succeeded` ends it."""

    def __init__(self, budget: float, masked_url: str) -> None:
        self.budget, self.masked_url = budget, masked_url
        self.since: float | None = None  # time.monotonic() of the first failure of this outage
        self._lock = threading.Lock()

    def failed(self, attempt: int, detail: str) -> None:
        """Attempt number `attempt` (from 1) of one transaction failed with a lost connection."""
        now = time.monotonic()
        with self._lock:
            if self.since is None:
                self.since = now
                log.warning(
                    "Lost the database '%s' (%s); retrying for up to %g s (outage budget).", self.masked_url, detail, self.budget
                )
            elapsed = now - self.since
        if elapsed >= self.budget:
            raise StoreError(
                f"The database '{self.masked_url}' was unreachable for {_seconds(elapsed)} s, longer than the outage budget of "
                f"{self.budget:g} s (--db-outage / ${ENV_VAR}). Last error: {detail}. Bring the server back and run the "
                "same command again: what was recorded is kept, and unfinished trials resume."
            )
        delay = min(MAX_DELAY, FIRST_DELAY * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)  # jitter: drivers spread out
        time.sleep(min(delay, self.budget - elapsed))

    def succeeded(self) -> None:
        if self.since is None:  # the common case: no lock taken
            return
        with self._lock:
            if self.since is not None:
                log.warning("The database '%s' is back after %.1f s.", self.masked_url, time.monotonic() - self.since)
                self.since = None


def _seconds(elapsed: float) -> str:
    return f"{elapsed:.0f}" if elapsed >= 10 else f"{elapsed:.1f}"
