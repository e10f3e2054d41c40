"""Schema versions through Alembic, driven programmatically (no alembic.ini): upgrade to head, read
the current revision, and refuse to work on a database whose schema is not the one this fptlab
expects. Only a database with no fptlab tables at all may be created silently (`ensure_schema`);
an existing one is never migrated behind the user's back."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.exc import SQLAlchemyError

from fptlab.store import dialect
from fptlab.store.engine import describe_error
from fptlab.store.errors import StoreError
from fptlab.store.models import VERSION_TABLE, Base
from fptlab.store.urls import mask_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic Config for fptlab's migrations. Pass a live `connection` (what `upgrade` does) or a
    `url` (for `alembic.command.revision(cfg, autogenerate=True, ...)` when writing a migration)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest migration shipped with this fptlab."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "fptlab ships at least one migration"
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is stamped with, or None when it has never been migrated."""
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def has_fptlab_tables(connection: Connection) -> bool:
    names = set(inspect(connection).get_table_names())
    return VERSION_TABLE in names or bool(names & set(Base.metadata.tables))


def foreign_tables(connection: Connection) -> list[str]:
    """Tables named like fptlab's in a database that has no fptlab version table: another application's
    (its own `trials`, say). Empty for an fptlab database and for one that shares no table name."""
    names = set(inspect(connection).get_table_names())
    return [] if VERSION_TABLE in names else sorted(names & set(Base.metadata.tables))


def not_fptlab(url: str, tables: list[str]) -> StoreError:
    return StoreError(
        f"The database '{mask_url(url)}' is not an fptlab database: it has tables named {', '.join(tables)} but no "
        f"{VERSION_TABLE} table, so they belong to another application. fptlab changed nothing in it. Point --db at an "
        "fptlab database, or at a new file or database for fptlab's results."
    )


def upgrade(write_engine: Engine, url: str, revision: str = "head") -> None:
    """Migrate the database to `revision` (default: head) in one transaction."""
    from alembic import command
    from alembic.util import CommandError

    try:
        with write_engine.begin() as connection:
            foreign = foreign_tables(connection)
            if foreign:
                raise not_fptlab(url, foreign)
            dialect.lock_schema(connection)  # a concurrent upgrade waits here, then finds head: no-op
            command.upgrade(alembic_config(connection), revision)
    except SQLAlchemyError as e:
        raise StoreError(describe_error(e, url)) from None
    except CommandError as e:
        raise StoreError(
            f"Cannot upgrade '{mask_url(url)}' to {revision}: {e}. Is this fptlab older than the database?"
        ) from None


def check(engine: Engine, url: str, create_if_empty: bool = False, write_engine: Engine | None = None) -> None:
    """Raise StoreError unless the database is reachable and at head. With `create_if_empty`, a
    database holding no fptlab tables is first created at head (on `write_engine`)."""
    try:
        with engine.connect() as connection:
            foreign = foreign_tables(connection)
            empty = not has_fptlab_tables(connection)
            revision = None if empty or foreign else current_revision(connection)
    except SQLAlchemyError as e:
        raise StoreError(describe_error(e, url)) from None
    if foreign:
        raise not_fptlab(url, foreign)
    if empty and create_if_empty:
        upgrade(write_engine or engine, url)
        return
    _require_head(revision, empty, url)


def _require_head(revision: str | None, empty: bool, url: str) -> None:
    head, masked = head_revision(), mask_url(url)
    fix = f"Run: fptlab db upgrade --db {masked}"
    if revision == head:
        return
    if empty:
        raise StoreError(f"The database '{masked}' has no fptlab schema yet. {fix}")
    if revision is None:
        raise StoreError(f"The database '{masked}' has fptlab tables but no schema revision (expected {head}). {fix}")
    from alembic.script import ScriptDirectory

    known = {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if revision not in known:
        raise StoreError(
            f"The database '{masked}' is at schema revision {revision}, which this fptlab does not know: it was "
            f"written by a newer fptlab. Upgrade fptlab (this one expects {head})."
        )
    raise StoreError(f"The database '{masked}' is at schema revision {revision}, but this fptlab needs {head}. {fix}")
