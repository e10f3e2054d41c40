"""`StoreBase`: what every part of `Store` shares: its URL (never shown with a password), the scoped
session, the clock, and config-hash -> trial-id lookups. The operations are grouped in mixins
(`claims`, `records`, `queries`) assembled into `fptlab.store.db.Store`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from fptlab.store.engine import Sessions, mask_url, resolve_url
from fptlab.store.errors import StoreError
from fptlab.store.models import Trial, utcnow

IN_CHUNK = 500  # hashes per IN (...) clause: well under every backend's bound-parameter limit
T = TypeVar("T")


def chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class StoreBase:
    """Connection to one results database. Cheap to create; connects lazily; pickles as its URL."""

    def __init__(self, url: str | None = None) -> None:
        self.url: str = resolve_url(url)
        self._sessions = Sessions(self.url)
        self._trial_id_cache: dict[str, int] = {}  # a trial's id never changes once inserted

    # ---- identity: the password never leaves through repr/str; pickling keeps the full URL ----
    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.masked_url!r})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # Ray ships the store to workers: rebuild it (engine, pool) from the URL on the other side.
        return (type(self), (self.url,))

    def close(self) -> None:
        """Close pooled connections (a later call reconnects)."""
        self._sessions.dispose()

    # ---- sessions, time, ids --------------------------------------------------------------------
    @contextmanager
    def session(self, write: bool = False) -> Iterator[Session]:
        """The one transaction helper: commit on success, roll back and raise StoreError on failure."""
        try:
            with self._sessions.scope(write=write) as session:
                yield session
        except BaseException:
            self._trial_id_cache.clear()  # ids read in a rolled-back transaction may not exist
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
