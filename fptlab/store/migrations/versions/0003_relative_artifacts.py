"""fptlab 0.4.0: artifact locations relative to the storage folder.

Up to 0.3.0 a sweep stored each artifact's location (attention maps, parameter statistics, a saved
body) as the absolute path the worker wrote, and readers opened whatever path a row named. From 0.4.0
a location is relative to the sweep's `--storage` (`trials/<config hash>/attention.safetensors`), and
readers resolve it inside the storage folder they are given, refusing anything else: a database is
shared, and a row naming `/etc/...` or `../..` must not make a report open it.

This migration rewrites the old absolute locations that lie in their own trial's folder
(`.../trials/<that trial's hash>/...`) to that relative form; any other location is left as it is,
and readers refuse it with a warning naming the trial. Downgrade keeps the relative locations
(the absolute prefix is not known any more): 0.3.0 then resolves them against its working folder.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

from pathlib import PurePosixPath

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def relative_location(location: str, config_hash: str) -> str | None:
    """`trials/<config_hash>/...` cut from an absolute `location` in that trial's own folder, else None."""
    path = PurePosixPath(location)
    if not path.is_absolute():
        return None
    parts = path.parts
    for i in range(len(parts) - 2, 0, -1):
        if parts[i] == "trials" and parts[i + 1] == config_hash and ".." not in parts[i:]:
            return PurePosixPath(*parts[i:]).as_posix()
    return None


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.text(
        "SELECT a.id, a.location, t.config_hash FROM artifacts a JOIN trials t ON t.id = a.trial_id ORDER BY a.id"
    )).fetchall()
    updates = [{"i": i, "l": rel} for i, location, h in rows if (rel := relative_location(str(location), str(h))) is not None]
    if updates:
        connection.execute(sa.text("UPDATE artifacts SET location = :l WHERE id = :i"), updates)


def downgrade() -> None:
    pass  # relative locations stay: see the module docstring
