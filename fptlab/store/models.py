"""The results schema as SQLAlchemy 2 typed ORM classes. Migrations in `migrations/versions` create
exactly this (a test compares the two on every dialect).

experiments --< experiment_trials >-- trials --< metrics   (per-step curves, long form)
                                               --< results   (final values, one per key)
                                               --< artifacts (checkpoints, figures, logs: locations)

A trial is one configuration, keyed by `RunConfig.hash`; experiments share trials, so two paper
tables needing the same cell reuse one run. Floats are stored with an explicit kind
(finite|nan|inf|-inf) because SQLite cannot hold NaN in a REAL column and JSON has no NaN at all.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from sqlalchemy import CheckConstraint, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

VERSION_TABLE = "fptlab_alembic_version"  # our own, so a database shared with other Alembic users is fine
# A trial's status, one meaning each. DONE: finished for good (a sweep skips it, a report counts it).
# RETRIED: ended without a result, so a sweep claims it again. ENDED: what a run can end as.
# PRUNED: stopped at a rung by a tuned comparison's successive halving (`fptlab.sweep.halving`): done,
# its curve kept, no final accuracy.
PRUNED = "pruned"
STATUSES = ("queued", "running", "completed", "failed", "diverged", "interrupted", PRUNED)
DONE = ("completed", "diverged", PRUNED)
RETRIED = ("failed", "interrupted")
ENDED = DONE + RETRIED
VALUE_KINDS = ("finite", "nan", "inf", "-inf")
VERSIONED = ("fptlab", "torch", "transformers")  # packages whose version each trial records (<name>_version)

NAMING = {  # deterministic constraint names: Alembic's batch mode on SQLite needs them
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Naive UTC: the same on SQLite (no time zones) and PostgreSQL (`timestamp without time zone`)."""
    return datetime.now(UTC).replace(tzinfo=None)


def encode_float(value: float) -> tuple[float | None, str]:
    """(column value, kind): non-finite values are stored as NULL plus their kind."""
    value = float(value)
    if math.isfinite(value):
        return value, "finite"
    if math.isnan(value):
        return None, "nan"
    return None, "inf" if value > 0 else "-inf"


def decode_float(value: float | None, kind: str) -> float:
    if kind == "finite":
        return float(value)  # type: ignore[arg-type]
    return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}[kind]


def _kind_check() -> CheckConstraint:
    kinds = ", ".join(f"'{k}'" for k in VALUE_KINDS)
    return CheckConstraint(f"value_kind IN ({kinds})", name="value_kind")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Experiment(Base):
    """A named grid (one TOML spec). Re-running a grown spec updates its text and hash in place."""

    __tablename__ = "experiments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    spec_text: Mapped[str] = mapped_column(Text)
    spec_hash: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Trial(Base):
    """One configuration and the state of its (latest) run."""

    __tablename__ = "trials"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    config_hash: Mapped[str] = mapped_column(String(64), unique=True)
    config: Mapped[str] = mapped_column(Text)  # RunConfig.record_json(): the full resolved config
    task: Mapped[str | None] = mapped_column(String(64))
    backbone: Mapped[str | None] = mapped_column(String(64))
    init: Mapped[str | None] = mapped_column(String(32))
    seed: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str | None] = mapped_column(String(128))  # id of the driver holding the claim
    host: Mapped[str | None] = mapped_column(String(255))
    device: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started: Mapped[datetime | None] = mapped_column(DateTime)
    finished: Mapped[datetime | None] = mapped_column(DateTime)
    heartbeat: Mapped[datetime | None] = mapped_column(DateTime)
    error: Mapped[str | None] = mapped_column(Text)
    fptlab_version: Mapped[str | None] = mapped_column(String(32))
    data_fingerprint: Mapped[str | None] = mapped_column(Text)
    torch_version: Mapped[str | None] = mapped_column(String(64))
    transformers_version: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        CheckConstraint("status IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")", name="status"),
        Index(None, "status"),
        Index(None, "owner", "status"),
        Index(None, "task", "backbone", "init"),
    )


class ExperimentTrial(Base):
    __tablename__ = "experiment_trials"
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True)

    __table_args__ = (Index(None, "trial_id"),)


class Metric(Base):
    """One value of a per-step curve. The primary key (trial_id, key, step) is the unique constraint
    that makes re-logging a step after a resume an update, and the composite index curve reads use."""

    __tablename__ = "metrics"
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)
    value_kind: Mapped[str] = mapped_column(String(8), default="finite")

    __table_args__ = (_kind_check(),)


class Result(Base):
    """A final value of a trial's latest run (test_accuracy, trainable_params, wall_seconds, ...)."""

    __tablename__ = "results"
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)
    value_kind: Mapped[str] = mapped_column(String(8), default="finite")

    __table_args__ = (_kind_check(),)


class Artifact(Base):
    """Where a file belonging to a trial lives (checkpoint, figure, log); the store keeps no blobs."""

    __tablename__ = "artifacts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    location: Mapped[str] = mapped_column(Text)
    meta: Mapped[str] = mapped_column(Text, default="{}")  # JSON object
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


TRIAL_FILTER_COLUMNS = ("task", "backbone", "init", "seed")
