"""fptlab 0.4.0: the trial status `pruned`.

A tuned comparison (`[tune]` with `halving`) stops the trials of an arm that fall behind at a rung;
they are recorded `pruned`: finished for good (a sweep never runs them again), their curves kept, no
final accuracy. The status CHECK constraint of `trials` gains the value. Existing rows are unchanged.

Downgrade restores the old constraint, and refuses (naming them) while any trial is `pruned`: 0.3.0
has no such status and would fail on reading them; delete those trials or re-run them first.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BEFORE = ("queued", "running", "completed", "failed", "diverged", "interrupted")  # frozen here: 0.3.0's set
AFTER = (*BEFORE, "pruned")


def _check(statuses: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")"


def _replace(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    connection = op.get_bind()
    if connection.dialect.name != "sqlite":
        with op.batch_alter_table("trials") as batch:  # PostgreSQL: ALTER TABLE ... DROP / ADD CONSTRAINT
            batch.drop_constraint(op.f("ck_trials_status"), type_="check")
            batch.create_check_constraint(op.f("ck_trials_status"), _check(new))
        return
    # SQLite cannot alter a constraint: batch mode would copy `trials` and drop the old table, and with
    # foreign keys on (every fptlab connection) dropping it deletes every trial's results, metrics and
    # links by cascade. Widening (or, with no row outside it, narrowing) a CHECK changes no stored row,
    # so this is SQLite's documented in-place edit of the schema text
    # (https://www.sqlite.org/lang_altertable.html#otheralter), inside the migration's transaction.
    before, after = f"CHECK ({_check(old)})", f"CHECK ({_check(new)})"
    (sql,) = connection.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'trials'")).one()
    if sql.count(before) != 1:
        raise RuntimeError(f"The trials table's status constraint is not the expected {before}; nothing was changed.")
    (version,) = connection.execute(sa.text("PRAGMA schema_version")).one()
    connection.execute(sa.text("PRAGMA writable_schema = ON"))
    try:
        connection.execute(sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = 'trials'"),
                           {"sql": sql.replace(before, after)})
        connection.execute(sa.text(f"PRAGMA schema_version = {int(version) + 1}"))
    finally:
        connection.execute(sa.text("PRAGMA writable_schema = OFF"))


def upgrade() -> None:
    _replace(BEFORE, AFTER)


def downgrade() -> None:
    rows = op.get_bind().execute(sa.text("SELECT config_hash FROM trials WHERE status = 'pruned' ORDER BY id")).fetchall()
    if rows:
        listed = ", ".join(str(r[0]) for r in rows[:10]) + (" ..." if len(rows) > 10 else "")
        raise RuntimeError(f"{len(rows)} trial(s) are 'pruned', a status fptlab 0.3.0 does not know: {listed}. "
                           "Delete them (or keep this fptlab) before downgrading.")
    _replace(AFTER, BEFORE)
