"""Alembic environment for fptlab's results schema. `fptlab.store.schema` runs it with a live
connection in `config.attributes["connection"]`; a URL in `sqlalchemy.url` works too (autogenerate
while writing a new migration; `--sql` offline scripts)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from fptlab.store.models import VERSION_TABLE, Base

OPTIONS = {
    "target_metadata": Base.metadata,
    "version_table": VERSION_TABLE,
    "render_as_batch": True,  # SQLite cannot ALTER most things: Alembic copies the table instead
    "compare_type": True,
}


def run_offline() -> None:
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), literal_binds=True, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.begin() as connection:
        _run(connection)
    engine.dispose()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
