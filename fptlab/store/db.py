"""`Store`: the results database, the single source of truth of a sweep.

    store = Store("postgresql+psycopg://fpt@db/fptlab")   # or None: $FPTLAB_DB, else sqlite:///fptlab.db
    store.check()                                          # reachable and at schema head, or StoreError
    exp = store.upsert_experiment("table2", "Table 2", spec_text, spec_hash)
    store.add_trials(exp, configs)                         # RunConfigs (resolved)
    while (h := store.next_claim(hashes, owner, host, lease_seconds=300, max_attempts=3)):
        ... train with StoreSink(store, h, owner) ...

Every method runs one short transaction through `transaction()` (retried whole while the server is
unreachable, up to the outage budget: `fptlab.store.outage`); the operations live in mixins by
theme: `claims` (claim / heartbeat / finish / release), `records` (metrics, artifacts) and `queries`
(reads). Knows nothing of torch or Ray; pickles as its URL without the password.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from fptlab.store import dialect, schema
from fptlab.store.base import chunks
from fptlab.store.claims import ClaimOps
from fptlab.store.errors import StoreError
from fptlab.store.models import RETRIED, TRIAL_FILTER_COLUMNS, Experiment, ExperimentTrial, Trial
from fptlab.store.queries import QueryOps
from fptlab.store.records import RecordOps


class Store(ClaimOps, RecordOps, QueryOps):
    """The results database at `url` (None: $FPTLAB_DB, else sqlite:///fptlab.db)."""

    # ---- schema ---------------------------------------------------------------------------------
    def upgrade(self, revision: str = "head") -> None:
        """Migrate the schema to `revision` (what `fptlab db upgrade` runs)."""
        schema.upgrade(self._sessions.write_engine, self.url, revision)

    def check(self) -> None:
        """Raise StoreError unless the database is reachable and its schema is at head."""
        schema.check(self._sessions.engine, self.url)

    def ensure_schema(self, create_if_empty: bool = True) -> None:
        """`check()`, except that a database without any fptlab table is first created at head. A
        database at another revision is never migrated here: the error says to run `fptlab db upgrade`."""
        schema.check(self._sessions.engine, self.url, create_if_empty=create_if_empty, write_engine=self._sessions.write_engine)

    def is_new(self) -> bool:
        """Whether there is no database here yet: no SQLite file (or an empty one: connecting would create
        or stamp it), or a database with no fptlab table (nor one named like fptlab's). Creates nothing."""
        path = self.sqlite_file()
        if path is not None and (not path.exists() or path.stat().st_size == 0):
            return True
        try:
            with self._sessions.engine.connect() as connection:
                return not schema.has_fptlab_tables(connection)
        except SQLAlchemyError as e:
            raise self._sessions.error(e) from None

    def sqlite_file(self) -> Path | None:
        """The file of an SQLite database (None for a server)."""
        from sqlalchemy.engine import make_url

        parsed = make_url(self.url)
        return Path(parsed.database) if parsed.get_backend_name() == "sqlite" and parsed.database else None

    @classmethod
    def open_existing(cls, url: str | None = None, **kwargs: Any) -> Store | None:
        """The fptlab database at `url` if there is one, checked to be reachable and at the current schema
        (StoreError: another revision, another application's tables); None when there is none yet.
        What read-only commands open: nothing is created or migrated."""
        store = cls(url, **kwargs)
        if store.is_new():
            return None
        store.check()
        return store

    def revision(self) -> str | None:
        """The schema revision the database is stamped with (None: never migrated)."""
        try:
            with self._sessions.engine.connect() as connection:
                return schema.current_revision(connection)
        except SQLAlchemyError as e:
            raise self._sessions.error(e) from None

    # ---- experiments and trials -----------------------------------------------------------------
    def upsert_experiment(self, name: str, description: str, spec_text: str, spec_hash: str) -> int:
        """Create the experiment `name`, or update its description and spec (a spec may grow) keeping
        its id. Returns the id."""
        row = {"name": name, "description": description, "spec_text": spec_text, "spec_hash": spec_hash, "created": self.now()}

        def work(session: Session) -> int:
            dialect.upsert(session, Experiment.__table__, [row], ["name"], ["description", "spec_text", "spec_hash"])
            return int(session.scalar(select(Experiment.id).where(Experiment.name == name)))

        return self.transaction(work, write=True)

    def add_trials(self, experiment_id: int, configs: Sequence[Any]) -> None:
        """Insert the trials of `configs` that do not exist yet as queued (existing ones are left as they
        are) and link all of them to the experiment. A config is a resolved `RunConfig` (duck-typed:
        `.hash`, `.record_json()` and the filter columns task, backbone, init, seed). Idempotent,
        batched, and safe when several processes add the same configs at once."""
        # Sorted, so that concurrent inserters lock rows in the same order and cannot deadlock.
        rows = sorted((_trial_row(c, self.now()) for c in configs), key=lambda r: r["config_hash"])

        def work(session: Session) -> None:
            if session.get(Experiment, experiment_id) is None:
                raise StoreError(
                    f"No experiment with id {experiment_id} in '{self.masked_url}'. Create it with upsert_experiment."
                )
            for part in chunks(rows):
                dialect.insert_ignore(session, Trial.__table__, part, ["config_hash"])
            ids = self._trial_ids(session, [r["config_hash"] for r in rows])
            links = [{"experiment_id": experiment_id, "trial_id": i} for i in sorted(ids.values())]
            dialect.insert_ignore(session, ExperimentTrial.__table__, links, ["experiment_id", "trial_id"])

        self.transaction(work, write=True)

    def requeue(self, config_hashes: Sequence[str], statuses: Sequence[str] = RETRIED) -> int:
        """Put trials in `statuses` back in the queue with their attempts reset (`fptlab sweep --retry-failed`)."""
        def work(session: Session) -> int:
            n = 0
            for part in chunks(list(config_hashes)):
                stmt = update(Trial).where(Trial.config_hash.in_(part), Trial.status.in_(list(statuses)))
                n += session.execute(stmt.values(status="queued", attempts=0, owner=None, error=None)).rowcount
            return n

        # Idempotent; only the count can come out low if a try committed and its reply was lost.
        return self.transaction(work, write=True)


def _trial_row(config: Any, now: Any) -> dict[str, Any]:
    config_hash, config_json = config.hash, config.record_json()
    try:
        json.loads(config_json)  # a malformed config must fail here, not when a worker reads it back
    except ValueError as e:
        raise StoreError(f"The config of trial '{config_hash}' is not JSON ({e}); record_json() must give JSON.") from None
    return {
        "config_hash": config_hash,
        "config": config_json,
        "status": "queued",
        "attempts": 0,
        "created": now,
        **{c: getattr(config, c) for c in TRIAL_FILTER_COLUMNS},
    }
