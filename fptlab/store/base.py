"""`StoreBase`: what every part of `Store` shares: its URL (never shown or written with a password),
the one transaction helper, the clock, and config-hash -> trial-id lookups. The operations are
grouped in mixins (`claims`, `records`, `queries`) assembled into `fptlab.store.db.Store`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from fptlab.store.engine import Sessions
from fptlab.store.errors import StoreError
from fptlab.store.models import Trial, utcnow
from fptlab.store.urls import mask_url, recall_url, resolve_url, strip_password, url_key

IN_CHUNK = 500  # hashes per IN (...) clause: well under every backend's bound-parameter limit
T = TypeVar("T")


def chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class StoreBase:
    """Connection to one results database. Cheap to create; connects lazily; pickles as its URL
    without the password.

    `outage_seconds`: how long a lost database (server restart, network) is waited for, retrying
    with backoff, before an operation raises StoreError; None: $FPTLAB_DB_OUTAGE_SECONDS, else 300;
    0: never retry. See `fptlab.store.outage`."""

    def __init__(self, url: str | None = None, *, outage_seconds: float | None = None) -> None:
        self.url: str = resolve_url(url)
        self._sessions = Sessions(self.url, outage_seconds)
        self._url_key = url_key(self.url)  # this process keeps the password; pickles carry only this key
        self._trial_id_cache: dict[str, int] = {}  # a trial's id never changes once inserted

    # ---- identity: the password never leaves through repr/str or a pickle ----
    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    @property
    def outage_seconds(self) -> float:
        return self._sessions.outage.budget

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.masked_url!r})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Tune saves the searcher and callbacks holding the store (tuner.pkl under --storage): write the
        # URL without its password. Unpickled in this process the store gets it back; elsewhere from
        # $FPTLAB_DB or libpq's PGPASSWORD / ~/.pgpass (workers never open the store: sweep.trainable).
        public = self.url if self._url_key is None else strip_password(self.url)
        return (_unpickle, (type(self), public, self._url_key, self.outage_seconds))

    def close(self) -> None:
        """Close pooled connections (a later call reconnects)."""
        self._sessions.dispose()

    # ---- transactions, time, ids ----------------------------------------------------------------
    def transaction(self, work: Callable[[Session], T], write: bool = False, outage_seconds: float | None = None) -> T:
        """The one transaction helper every operation uses: `work(session)` committed on success,
        rolled back on failure (StoreError), and run again whole while the database is unreachable
        (up to the outage budget; `outage_seconds`: a budget of this call's own): `work` must be
        idempotent, or check what a try whose commit reply was lost has done."""
        tries = 0

        def attempt(session: Session) -> T:
            nonlocal tries
            tries += 1
            if tries > 1:  # ids read (or inserted) by a try that was not committed may not exist
                self._trial_id_cache.clear()
            return work(session)

        try:
            return self._sessions.run(attempt, write=write, outage_seconds=outage_seconds)
        except BaseException:
            self._trial_id_cache.clear()
            raise

    @contextmanager
    def session(self, write: bool = False) -> Iterator[Session]:
        """One attempt of one transaction, for ad-hoc statements (tests, maintenance): commit on
        success, roll back and raise StoreError on failure; not retried through an outage."""
        try:
            with self._sessions.scope(write=write) as session:
                yield session
        except BaseException:
            self._trial_id_cache.clear()
            raise

    def now(self) -> datetime:
        """Naive UTC timestamps for every column (tests may override this clock)."""
        return utcnow()

    def _trial_id(self, session: Session, config_hash: str) -> int:
        ids = self._trial_ids(session, [config_hash])
        if config_hash not in ids:
            raise StoreError(
                f"No trial with config hash '{config_hash}' in '{self.masked_url}'. Add it first "
                "(Store.add_trials, or run its experiment with `fptlab sweep`)."
            )
        return ids[config_hash]

    def _trial_ids(self, session: Session, config_hashes: Iterable[str]) -> dict[str, int]:
        """Ids of the trials that exist among `config_hashes` (cached)."""
        wanted = list(dict.fromkeys(config_hashes))
        missing = [h for h in wanted if h not in self._trial_id_cache]
        for part in chunks(missing):
            rows = session.execute(select(Trial.config_hash, Trial.id).where(Trial.config_hash.in_(part)))
            self._trial_id_cache.update({h: i for h, i in rows})
        return {h: self._trial_id_cache[h] for h in wanted if h in self._trial_id_cache}


def _unpickle(cls: type[StoreBase], public_url: str, key: str | None, outage_seconds: float) -> StoreBase:
    return cls(recall_url(public_url, key), outage_seconds=outage_seconds)
