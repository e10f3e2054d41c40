"""Reading the store back as plain Python data (dicts, tuples); `fptlab.store.results` turns these
into pandas frames."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from fptlab.registry import did_you_mean
from fptlab.store.base import StoreBase, chunks
from fptlab.store.errors import StoreError
from fptlab.store.models import VALUE_KINDS, Artifact, Experiment, ExperimentTrial, Metric, Result, Trial, decode_float

TRIAL_FIELDS = tuple(c.name for c in Trial.__table__.columns)


class QueryOps(StoreBase):
    def statuses(self, config_hashes: Sequence[str]) -> dict[str, str]:
        """Status of each of `config_hashes` that exists (missing hashes are left out)."""
        query = select(Trial.config_hash, Trial.status)
        return {h: status for h, status in self._rows_for(query, list(config_hashes))}

    def trial_states(self, config_hashes: Sequence[str]) -> dict[str, dict[str, Any]]:
        """For each existing hash, the trial's columns without its config (status, attempts, host,
        device, versions, error, times): what reports need, read in one query per chunk."""
        columns = [getattr(Trial, name) for name in TRIAL_FIELDS if name != "config"]
        rows = self._rows_for(select(*columns), list(config_hashes))
        return {row.config_hash: dict(row._mapping) for row in rows}

    def trials(
        self, status: str | Sequence[str] | None = None, where: dict[str, Any] | None = None, experiment: str | None = None
    ) -> list[dict[str, Any]]:
        """Trials as plain dicts (every column; `config` parsed), filtered by status, by column values
        (`where={"task": "bit_xor", "seed": 0}`) and by experiment name; ordered by id."""
        query = select(Trial).order_by(Trial.id)
        if status is not None:
            query = query.where(Trial.status.in_([status] if isinstance(status, str) else list(status)))
        for column, value in (where or {}).items():
            if column not in TRIAL_FIELDS or column == "config":
                raise StoreError(
                    f"Cannot filter trials on '{column}'. Available: {', '.join(f for f in TRIAL_FIELDS if f != 'config')}."
                )
            query = query.where(getattr(Trial, column) == value)
        def work(session: Session) -> list[dict[str, Any]]:
            selected = query
            if experiment is not None:
                selected = query.join(ExperimentTrial, ExperimentTrial.trial_id == Trial.id).where(
                    ExperimentTrial.experiment_id == self._experiment_id(session, experiment)
                )
            return [_trial_dict(t) for t in session.scalars(selected)]

        return self.transaction(work)

    def results(self, config_hashes: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
        """Final results per trial: {config_hash: {key: value}} (all trials when no hashes given)."""
        query = select(Trial.config_hash, Result.key, Result.value, Result.value_kind).join(Trial, Trial.id == Result.trial_id)
        out: dict[str, dict[str, float]] = {}
        for h, key, value, kind in self._rows_for(query, config_hashes):
            decoded = _decoded(h, "result", key, value, kind)
            if decoded is not None:
                out.setdefault(h, {})[key] = decoded
        return out

    def curves(
        self, config_hashes: Sequence[str] | None = None, keys: Sequence[str] | None = None
    ) -> list[tuple[str, str, int, float]]:
        """Per-step values as (config_hash, key, step, value) rows ordered by trial, key and step."""
        query = select(Trial.config_hash, Metric.key, Metric.step, Metric.value, Metric.value_kind).join(
            Trial, Trial.id == Metric.trial_id
        )
        if keys is not None:
            query = query.where(Metric.key.in_(list(keys)))
        query = query.order_by(Trial.config_hash, Metric.key, Metric.step)
        rows = [(h, key, step, v) for h, key, step, value, kind in self._rows_for(query, config_hashes)
                if isinstance(step, int) and (v := _decoded(h, f"metric at step {step}", key, value, kind)) is not None]
        return sorted(rows, key=lambda r: (r[0], r[1], r[2])) if config_hashes is not None else rows

    def artifacts(self, config_hash: str, kind: str | None = None) -> list[dict[str, Any]]:
        """A trial's artifacts as dicts (meta parsed), oldest first."""
        def work(session: Session) -> list[dict[str, Any]]:
            query = select(Artifact).where(Artifact.trial_id == self._trial_id(session, config_hash)).order_by(Artifact.id)
            if kind is not None:
                query = query.where(Artifact.kind == kind)
            return [
                {
                    "id": a.id,
                    "config_hash": config_hash,
                    "kind": a.kind,
                    "location": a.location,
                    "meta": _json_object(a.meta, f"trial {config_hash}: artifact {a.id}'s meta") or {},
                    "created": a.created,
                }
                for a in session.scalars(query)
            ]

        return self.transaction(work)

    def experiments(self) -> list[dict[str, Any]]:
        """Every experiment with its number of trials."""
        n_trials = func.count(ExperimentTrial.trial_id)
        query = select(Experiment, n_trials).outerjoin(ExperimentTrial).group_by(Experiment.id).order_by(Experiment.id)
        return self.transaction(
            lambda session: [
                {
                    "id": e.id,
                    "name": e.name,
                    "description": e.description,
                    "spec_hash": e.spec_hash,
                    "created": e.created,
                    "trials": n,
                }
                for e, n in session.execute(query)
            ]
        )

    def trial_configs(self) -> dict[str, Any]:
        """{config_hash: stored config (parsed; None when not a JSON object)} of every trial: what a report
        matches a spec's cells against (`fptlab.report.membership`)."""
        rows = self.transaction(lambda session: list(session.execute(select(Trial.config_hash, Trial.config))))
        return {h: _json_object(text, f"trial {h}: its config") for h, text in rows}

    def experiment_hashes(self, name: str) -> set[str]:
        """The config hashes linked to experiment `name` (empty when it was never swept)."""
        query = (select(Trial.config_hash).join(ExperimentTrial, ExperimentTrial.trial_id == Trial.id)
                 .join(Experiment, Experiment.id == ExperimentTrial.experiment_id).where(Experiment.name == name))
        return set(self.transaction(lambda session: list(session.scalars(query))))

    def experiment_spec(self, name: str) -> str | None:
        """The canonical spec text a sweep of experiment `name` registered (None if never swept)."""
        return self.transaction(lambda session: session.scalar(select(Experiment.spec_text).where(Experiment.name == name)))

    # ---- helpers --------------------------------------------------------------------------------
    def _rows_for(self, query: Select[Any], config_hashes: Sequence[str] | None) -> list[Any]:
        """The rows of `query`, of the trials `config_hashes` (all when None), read in one transaction."""

        def work(session: Session) -> list[Any]:
            if config_hashes is None:
                return list(session.execute(query))
            rows: list[Any] = []
            for part in chunks(list(config_hashes)):
                rows.extend(session.execute(query.where(Trial.config_hash.in_(part))))
            return rows

        return self.transaction(work)

    def _experiment_id(self, session: Any, name: str) -> int:
        found = session.scalar(select(Experiment.id).where(Experiment.name == name))
        if found is None:
            names = list(session.scalars(select(Experiment.name).order_by(Experiment.name)))
            hint = did_you_mean(name, names)
            raise StoreError(
                f"Unknown experiment '{name}' in '{self.masked_url}'.{hint} Available: {', '.join(names) or '(none yet)'}."
            )
        return found


def _trial_dict(trial: Trial) -> dict[str, Any]:
    out = {name: getattr(trial, name) for name in TRIAL_FIELDS}
    out["config"] = _json_object(trial.config, f"trial {trial.config_hash}: its config")
    return out


# ---- rows that break the schema's promises ---------------------------------------------------------
# A database is shared and may have been written by something other than fptlab: a row that breaks a
# promise of the schema is left out (or its field set to None) with a warning naming the trial, never
# a KeyError or JSONDecodeError in the middle of a report.
def _warn(message: str) -> None:
    import warnings

    from fptlab.errors import FptlabWarning

    warnings.warn(message, FptlabWarning, stacklevel=3)


def _decoded(config_hash: str, what: str, key: str, value: Any, kind: Any) -> float | None:
    from fptlab.escape import quoted

    if kind not in VALUE_KINDS:
        _warn(f"trial {config_hash}: {what} {quoted(key)} has value_kind {quoted(kind)}, not one of {', '.join(VALUE_KINDS)}; left out.")
        return None
    if kind == "finite" and not isinstance(value, (int, float)):
        _warn(f"trial {config_hash}: {what} {quoted(key)} is {quoted(value)}, not a number; left out.")
        return None
    return decode_float(value, kind)


def _json_object(text: Any, what: str) -> dict[str, Any] | None:
    from fptlab.escape import quoted

    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        value = None
    if not isinstance(value, dict):
        _warn(f"{what} is not a JSON object ({quoted(text)}); left out.")
        return None
    return value
