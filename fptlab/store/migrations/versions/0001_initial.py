"""Initial results schema: experiments, trials and their link, per-step metrics, final results,
artifacts.

Revision ID: 0001
Revises:
Create Date: 2026-05-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STATUSES = "'queued', 'running', 'completed', 'failed', 'diverged', 'interrupted'"
KINDS = "'finite', 'nan', 'inf', '-inf'"


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("spec_text", sa.Text, nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
        sa.UniqueConstraint("name", name=op.f("uq_experiments_name")),
    )
    _create_trials()
    op.create_table(
        "experiment_trials",
        sa.Column("experiment_id", sa.Integer, nullable=False),
        sa.Column("trial_id", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", "trial_id", name=op.f("pk_experiment_trials")),
        sa.ForeignKeyConstraint(
            ["experiment_id"], ["experiments.id"], ondelete="CASCADE", name=op.f("fk_experiment_trials_experiment_id_experiments")
        ),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["trials.id"], ondelete="CASCADE", name=op.f("fk_experiment_trials_trial_id_trials")
        ),
    )
    op.create_index(op.f("ix_experiment_trials_trial_id"), "experiment_trials", ["trial_id"])
    for table, keys in (("metrics", ("key", "step")), ("results", ("key",))):
        _create_values(table, keys)
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("trial_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("meta", sa.Text, nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifacts")),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"], ondelete="CASCADE", name=op.f("fk_artifacts_trial_id_trials")),
    )
    op.create_index(op.f("ix_artifacts_trial_id"), "artifacts", ["trial_id"])


def _create_trials() -> None:
    op.create_table(
        "trials",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("task", sa.String(64)),
        sa.Column("backbone", sa.String(64)),
        sa.Column("init", sa.String(32)),
        sa.Column("seed", sa.Integer),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("owner", sa.String(128)),
        sa.Column("host", sa.String(255)),
        sa.Column("device", sa.String(64)),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("started", sa.DateTime),
        sa.Column("finished", sa.DateTime),
        sa.Column("heartbeat", sa.DateTime),
        sa.Column("error", sa.Text),
        sa.Column("fptlab_version", sa.String(32)),
        sa.Column("data_fingerprint", sa.Text),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trials")),
        sa.UniqueConstraint("config_hash", name=op.f("uq_trials_config_hash")),
        sa.CheckConstraint(f"status IN ({STATUSES})", name=op.f("ck_trials_status")),
    )
    op.create_index(op.f("ix_trials_status"), "trials", ["status"])
    op.create_index(op.f("ix_trials_owner_status"), "trials", ["owner", "status"])
    op.create_index(op.f("ix_trials_task_backbone_init"), "trials", ["task", "backbone", "init"])


def _create_values(table: str, keys: tuple[str, ...]) -> None:
    """metrics (trial_id, key, step) and results (trial_id, key): a float plus its kind."""
    op.create_table(
        table,
        sa.Column("trial_id", sa.Integer, nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        *[sa.Column("step", sa.Integer, nullable=False) for k in keys if k == "step"],
        sa.Column("value", sa.Float),
        sa.Column("value_kind", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("trial_id", *keys, name=op.f(f"pk_{table}")),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"], ondelete="CASCADE", name=op.f(f"fk_{table}_trial_id_trials")),
        sa.CheckConstraint(f"value_kind IN ({KINDS})", name=op.f(f"ck_{table}_value_kind")),
    )


def downgrade() -> None:
    for table in ("artifacts", "results", "metrics", "experiment_trials", "trials", "experiments"):
        op.drop_table(table)
