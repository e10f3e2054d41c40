"""The drivers of a sweep, as the store sees them: whether a trial's owner is a dead process on this
host, which running trials a live peer driver holds, and why each failed cell failed. What a sweep
says when it ends (`fptlab sweep` prints it) is computed here."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fptlab.store.models import DONE

_FPTLAB_ERROR = re.compile(r"^fptlab\.[\w.]*Error: ")  # "fptlab.errors.BadFileError: " adds nothing to a message
SHOWN_ERRORS = 10
ERROR_CHARS = 400


def owner_is_dead_here(owner: str | None) -> bool:
    """True when `owner` (fptlab.store.new_owner_id: host:pid:nonce) is a driver on this host whose
    process no longer exists."""
    if not owner or owner.count(":") < 2:
        return False
    host, pid, _ = owner.rsplit(":", 2)
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False




def held_by_live_peers(store: Any, hashes: list[str], lease: float) -> dict[str, str]:
    """Of these running trials, those another driver holds and keeps alive (a heartbeat within the
    lease, and not a driver on this host whose process is gone): {hash: the peer's host}. A driver
    that has handed back everything it held can ask: a trial still running is a peer's."""
    if not hashes:
        return {}
    now, out = store.now(), {}
    for h, state in store.trial_states(hashes).items():
        beat, owner = state.get("heartbeat"), state.get("owner")
        if state["status"] == "running" and beat is not None and now - beat <= timedelta(seconds=lease) and not owner_is_dead_here(owner):
            out[h] = state.get("host") or str(owner).split(":", 1)[0]
    return out


def failure_reasons(store: Any, hashes: list[str], shown: int = SHOWN_ERRORS) -> list[tuple[str, str]]:
    """(hash, the last line of its recorded error) for the first `shown` failed trials of `hashes`."""
    states = store.trial_states(hashes[:shown])
    out = []
    for config_hash in hashes[:shown]:
        lines = [line.strip() for line in str((states.get(config_hash) or {}).get("error") or "").splitlines() if line.strip()]
        last = _FPTLAB_ERROR.sub("", lines[-1]) if lines else "no error recorded"
        out.append((config_hash, last[:ERROR_CHARS] + ("…" if len(last) > ERROR_CHARS else "")))
    return out


@dataclass
class Ending:
    """How a sweep's cells stand once it has handed back what it held: cells live peers are running
    ({hash: their host}), and the rest not finished ({hash: status}) with the failed ones' reasons."""

    peers: dict[str, str] = field(default_factory=dict)
    unfinished: dict[str, str] = field(default_factory=dict)
    reasons: list[tuple[str, str]] = field(default_factory=list)


def ending(store: Any, hashes: list[str], lease: float) -> Ending:
    statuses = store.statuses(hashes)
    open_cells = {h: s for h, s in statuses.items() if s not in DONE}
    peers = held_by_live_peers(store, [h for h, s in open_cells.items() if s == "running"], lease)
    rest = {h: s for h, s in sorted(open_cells.items()) if h not in peers}
    return Ending(peers, rest, failure_reasons(store, [h for h, s in rest.items() if s == "failed"]))
