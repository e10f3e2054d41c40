"""Writing what a run produces: per-step metrics (batched, idempotent) and artifact locations."""

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
        with self.session(write=True) as session:
            trial_id = self._trial_id(session, config_hash)
            if owner is not None and not self._owns(session, trial_id, owner):
                return False
            records = {}  # the last value of a (key, step) repeated within one batch wins
            for step, key, value in rows:
                stored, kind = encode_float(value)
                records[key, int(step)] = {
                    "trial_id": trial_id,
                    "key": key,
                    "step": int(step),
                    "value": stored,
                    "value_kind": kind,
                }
            dialect.upsert_metrics(session, Metric.__table__, trial_id, list(records.values()))
        return True

    def _owns(self, session: Session, trial_id: int, owner: str) -> bool:
        query = select(Trial.id).where(Trial.id == trial_id, Trial.owner == owner)
        return session.scalar(dialect.share_lock(session, query)) is not None

    def count_metrics(self, config_hash: str, key: str | None = None) -> int:
        """How many metric rows a trial has (of one `key`, if given)."""
        with self.session() as session:
            query = select(func.count()).select_from(Metric).where(Metric.trial_id == self._trial_id(session, config_hash))
            if key is not None:
                query = query.where(Metric.key == key)
            return int(session.scalar(query) or 0)

    def add_artifact(self, config_hash: str, kind: str, location: str, meta: dict[str, Any] | None = None) -> int:
        """Record where a file of this trial lives (kind: checkpoint, figure, log, ...); returns its id."""
        with self.session(write=True) as session:
            artifact = Artifact(
                trial_id=self._trial_id(session, config_hash),
                kind=kind,
                location=str(location),
                meta=json.dumps(meta or {}, sort_keys=True, default=str),
                created=self.now(),
            )
            session.add(artifact)
            session.flush()
            return artifact.id
