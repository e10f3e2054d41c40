"""Writing what a run produces: per-step metrics (batched, idempotent) and artifact locations (a
retried insert first looks for the row a try whose reply was lost may have committed)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fptlab.store import dialect
from fptlab.store.base import StoreBase
from fptlab.store.models import Artifact, Metric, Trial, encode_float


class RecordOps(StoreBase):
    def log_metrics(self, config_hash: str, rows: Sequence[tuple[int, str, float]], owner: str | None = None) -> bool:
        """Store (step, key, value) rows of one trial in one batched statement. Re-logging a step (a
        resumed run) overwrites it, so no duplicates appear. NaN and ±inf are kept exactly. With
        `owner`, nothing is written (returns False) unless `owner` still runs the trial."""
        if not rows:
            return True
        encoded = {}  # the last value of a (key, step) repeated within one batch wins
        for step, key, value in rows:
            encoded[key, int(step)] = encode_float(value)

        def work(session: Session) -> bool:
            trial_id = self._trial_id(session, config_hash)
            if owner is not None and not self._owns(session, trial_id, owner):
                return False
            records = [
                {"trial_id": trial_id, "key": key, "step": step, "value": stored, "value_kind": kind}
                for (key, step), (stored, kind) in encoded.items()
            ]
            dialect.upsert_metrics(session, Metric.__table__, trial_id, records)
            return True

        return self.transaction(work, write=True)

    def _owns(self, session: Session, trial_id: int, owner: str) -> bool:
        query = select(Trial.id).where(Trial.id == trial_id, Trial.owner == owner)
        return session.scalar(dialect.share_lock(session, query)) is not None

    def count_metrics(self, config_hash: str, key: str | None = None) -> int:
        """How many metric rows a trial has (of one `key`, if given)."""
        def work(session: Session) -> int:
            query = select(func.count()).select_from(Metric).where(Metric.trial_id == self._trial_id(session, config_hash))
            if key is not None:
                query = query.where(Metric.key == key)
            return int(session.scalar(query) or 0)

        return self.transaction(work)

    def add_artifact(self, config_hash: str, kind: str, location: str, meta: dict[str, Any] | None = None) -> int:
        """Record where a file of this trial lives (kind: checkpoint, figure, log, ...); returns its id."""
        values = {"kind": kind, "location": str(location), "meta": json.dumps(meta or {}, sort_keys=True, default=str)}
        values["created"] = self.now()  # the same in every try: it tells a lost try's row from older ones
        tries = 0

        def work(session: Session) -> int:
            nonlocal tries
            tries += 1
            trial_id = self._trial_id(session, config_hash)
            if tries > 1:
                query = select(Artifact.id).filter_by(trial_id=trial_id, **values).order_by(Artifact.id.desc())
                if (landed := session.scalars(query).first()) is not None:
                    return landed
            artifact = Artifact(trial_id=trial_id, **values)
            session.add(artifact)
            session.flush()
            return artifact.id

        return self.transaction(work, write=True)
