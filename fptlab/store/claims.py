"""Claiming trials so that each runs exactly once however many drivers share the database, and
handing back the trials of dead drivers through leases.

A claim reads a candidate trial and marks it running in ONE transaction that holds a lock on what it
read: on PostgreSQL a row lock (`SELECT ... FOR UPDATE SKIP LOCKED`: a row another driver is claiming
is skipped, not waited for); on SQLite the file's write lock (`BEGIN IMMEDIATE`, see `dialect`).
No second claimer can see the row as claimable until the first has committed it as running.

Through a database outage every operation is retried whole (`StoreBase.transaction`). All but the
claim are idempotent as written (conditional UPDATEs, upserts, values fixed before the first try).
A claim is not: if its commit landed but the reply was lost, a second try would find the row
running and claim the NEXT cell too. So a retried claim first re-reads whether the trial the lost
try took is now ours, at the attempt number it set, and returns that claim instead.

Claimable: `queued`; `failed` with attempts < max_attempts; `interrupted` always (Ctrl-C or a driver
known dead is not the trial's fault: it resumes from its checkpoint); `running` whose heartbeat
is older than the lease (its driver died) with attempts < max_attempts. A dead driver's trial that
has used up its attempts is marked failed instead of staying "running" forever. `completed` and
`diverged` are final.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Update, and_, case, or_, select, update
from sqlalchemy.orm import Session

from fptlab.store import dialect
from fptlab.store.base import StoreBase, chunks
from fptlab.store.errors import StoreError
from fptlab.store.models import ENDED, VERSIONED, Result, Trial, encode_float


@dataclass(frozen=True)
class Claim:
    """A trial this driver now owns. `attempt` counts from 1; `reclaimed` means it was taken over from
    a driver whose lease expired (resume from its checkpoint if there is one)."""

    config_hash: str
    attempt: int
    previous_status: str

    @property
    def reclaimed(self) -> bool:
        return self.previous_status == "running"

    @property
    def retry(self) -> bool:
        return self.attempt > 1


def new_owner_id() -> str:
    """A driver id unique across hosts and restarts: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _claimable(now: datetime, lease_seconds: float, max_attempts: int) -> ColumnElement[bool]:
    stale = now - timedelta(seconds=lease_seconds)
    return or_(
        Trial.status == "queued",
        # An interrupted trial (Ctrl-C, a driver that died on this host) was not the trial's fault:
        # it is always claimable again and resumes from its checkpoint. Failures count attempts.
        Trial.status == "interrupted",
        and_(Trial.status == "failed", Trial.attempts < max_attempts),
        and_(Trial.status == "running", or_(Trial.heartbeat.is_(None), Trial.heartbeat < stale)),
    )


class ClaimOps(StoreBase):
    def claim(self, config_hash: str, owner: str, host: str, lease_seconds: float, max_attempts: int) -> Claim | None:
        """Atomically take `config_hash` for `owner` if it is claimable (see module doc), else None."""
        return self._claim_first([config_hash], owner, host, lease_seconds, max_attempts)

    def next_claim(
        self, config_hashes: Sequence[str], owner: str, host: str, lease_seconds: float, max_attempts: int
    ) -> str | None:
        """Claim the first claimable of `config_hashes` (in the given order) and return its hash; None
        when none is claimable now. Drivers calling this concurrently never get the same trial."""
        claim = self._claim_first(list(config_hashes), owner, host, lease_seconds, max_attempts)
        return claim.config_hash if claim else None

    def _claim_first(self, hashes: list[str], owner: str, host: str, lease_seconds: float, max_attempts: int) -> Claim | None:
        if max_attempts < 1:
            raise StoreError(f"max_attempts must be >= 1, got {max_attempts}.")
        now = self.now()  # one value for every try: it also marks what a lost try committed
        for part in chunks(hashes):
            claim = self._claim_chunk(list(part), owner, host, now, lease_seconds, max_attempts)
            if claim is not None:
                return claim
        return None

    def _claim_chunk(
        self, hashes: list[str], owner: str, host: str, now: datetime, lease_seconds: float, max_attempts: int
    ) -> Claim | None:
        tried: list[Claim] = []  # what each try took before committing

        def work(session: Session) -> Claim | None:
            if tried and _landed(session, tried[-1], owner, now):
                return tried[-1]  # the last try committed; only its reply was lost
            claim = self._claim_in(session, hashes, owner, host, now, lease_seconds, max_attempts)
            if claim is not None:
                tried.append(claim)
            return claim

        return self.transaction(work, write=True)

    def _claim_in(
        self, session: Session, hashes: list[str], owner: str, host: str, now: datetime, lease_seconds: float, max_attempts: int
    ) -> Claim | None:
        order = case({h: i for i, h in enumerate(hashes)}, value=Trial.config_hash)
        query = (
            select(Trial.id, Trial.config_hash, Trial.status, Trial.attempts)
            .where(Trial.config_hash.in_(hashes), _claimable(now, lease_seconds, max_attempts))
            .order_by(order)
            .limit(1)
        )
        while (row := session.execute(dialect.lock_rows(session, query)).first()) is not None:
            if row.status == "running" and row.attempts >= max_attempts:
                _give_up(session, row.id, now, row.attempts)  # no longer matches: the loop moves on
                continue
            session.execute(
                update(Trial)
                .where(Trial.id == row.id)
                .values(
                    status="running",
                    attempts=row.attempts + 1,
                    owner=owner,
                    host=host,
                    started=now,
                    heartbeat=now,
                    finished=None,
                    error=None,
                )
            )
            return Claim(row.config_hash, row.attempts + 1, row.status)
        return None

    def next_attempt(self, config_hash: str, owner: str) -> int | None:
        """A new attempt (fencing token) for a trial `owner` holds and restarts itself (Tune retrying it
        after its worker or node died): attempts + 1 and a fresh heartbeat, returned; None when the trial
        is no longer `owner`'s. The restarted worker then writes checkpoints no older worker of this
        trial can overwrite. (A try whose reply was lost may skip a number: tokens only need to grow.)"""

        def work(session: Session) -> int | None:
            stmt = _owned([config_hash], owner).values(attempts=Trial.attempts + 1, heartbeat=self.now())
            if session.execute(stmt).rowcount != 1:
                return None
            return session.scalar(select(Trial.attempts).where(Trial.config_hash == config_hash))

        return self.transaction(work, write=True)

    def heartbeat(self, config_hashes: Sequence[str], owner: str) -> int:
        """Renew the lease of those of `config_hashes` that `owner` is running; returns how many."""
        now, renewed = self.now(), 0
        for part in chunks(list(config_hashes)):
            stmt = _owned(part, owner).values(heartbeat=now)
            renewed += self.transaction(lambda session, stmt=stmt: session.execute(stmt).rowcount, write=True)
        return renewed

    def record_start(
        self,
        config_hash: str,
        owner: str,
        *,
        device: str | None = None,
        versions: dict[str, str | None] | None = None,
        data_fingerprint: str | None = None,
        results: dict[str, float] | None = None,
    ) -> bool:
        """Store what a run reports when it starts (device, the fptlab / torch / transformers versions,
        parameter counts); only while `owner` still holds the trial. Returns whether it applied."""
        values = {"device": device, "data_fingerprint": data_fingerprint}
        values.update({f"{package}_version": (versions or {}).get(package) for package in VERSIONED})
        values = {k: v for k, v in values.items() if v is not None}
        stmt = _owned([config_hash], owner).values(heartbeat=self.now(), **values)
        return self.transaction(lambda session: self._apply(session, stmt, config_hash, results), write=True)

    def _apply(self, session: Session, stmt: Update, config_hash: str, results: dict[str, float] | None) -> bool:
        """Run an UPDATE of one trial; when it applied, also upsert `results`. Returns whether it applied."""
        applied = session.execute(stmt).rowcount == 1
        if applied and results:
            _write_results(session, self._trial_id(session, config_hash), results)
        return applied

    def finish(
        self,
        config_hash: str,
        owner: str,
        status: str,
        results: dict[str, float] | None = None,
        error: str | None = None,
        device: str | None = None,
    ) -> bool:
        """Record the end of `owner`'s run: final status, time, error and results. Refused (returns
        False) when the trial is no longer `owner`'s: a driver whose lease expired must not overwrite
        the run that took over."""
        if status not in ENDED:
            raise StoreError(f"Cannot finish trial '{config_hash}' as {status!r}: expected one of {', '.join(ENDED)}.")
        values = {"status": status, "finished": self.now(), "error": error}
        if device is not None:
            values["device"] = device
        stmt = update(Trial).where(Trial.config_hash == config_hash, Trial.owner == owner).values(**values)
        return self.transaction(lambda session: self._apply(session, stmt, config_hash, results), write=True)

    def release(self, owner: str, status: str = "interrupted", *, outage_seconds: float | None = None) -> int:
        """Mark every trial `owner` is running as `status` (on Ctrl-C, or when a sweep ends); returns
        how many. They are claimable again while attempts remain. `outage_seconds`: wait up to that
        long for an unreachable database whatever was waited before (default: the store's outage
        clock, which after an outage longer than its budget tries once)."""
        if status not in ENDED:
            raise StoreError(f"Cannot release trials as {status!r}: expected one of {', '.join(ENDED)}.")
        now = self.now()
        # Rows a try released whose reply was lost match again (same status and time): the count holds.
        released = or_(Trial.status == "running", and_(Trial.status == status, Trial.finished == now))
        stmt = update(Trial).where(Trial.owner == owner, released).values(status=status, finished=now)
        return self.transaction(lambda session: session.execute(stmt).rowcount, write=True, outage_seconds=outage_seconds)


def _owned(config_hashes: Sequence[str], owner: str) -> Update:
    return update(Trial).where(Trial.config_hash.in_(config_hashes), Trial.owner == owner, Trial.status == "running")


def _landed(session: Session, claim: Claim, owner: str, now: datetime) -> bool:
    """Whether `claim`, taken by a try at time `now`, was committed: the trial is ours, running, at
    that attempt number, started then."""
    query = select(Trial.id).where(
        Trial.config_hash == claim.config_hash,
        Trial.owner == owner,
        Trial.status == "running",
        Trial.attempts == claim.attempt,
        Trial.started == now,
    )
    return session.scalar(query) is not None


def _give_up(session: Session, trial_id: int, now: datetime, attempts: int) -> None:
    message = f"Lease expired: the driver running attempt {attempts} stopped heartbeating, and no attempts remain."
    session.execute(update(Trial).where(Trial.id == trial_id).values(status="failed", finished=now, error=message))


def _write_results(session: Session, trial_id: int, results: dict[str, float]) -> None:
    rows = []
    for key, value in results.items():
        stored, kind = encode_float(value)
        rows.append({"trial_id": trial_id, "key": key, "value": stored, "value_kind": kind})
    dialect.upsert(session, Result.__table__, rows, ["trial_id", "key"], ["value", "value_kind"])
