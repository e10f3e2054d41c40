"""Everything that differs between SQLite and PostgreSQL, in one place: engine options, SQLite's
pragmas and write-lock-on-begin, `INSERT ... ON CONFLICT` upserts, and row locking for claims.

SQLite (the zero-setup default) runs in WAL mode so readers never block the writer, waits up to
`SQLITE_BUSY_MS` for a lock instead of failing at once, and enforces foreign keys. Write
transactions start with `BEGIN IMMEDIATE`: the file's write lock is taken before the first read,
so a read-then-write transaction (a claim) is serialised against every other writer and can never
fail half-way with "database is locked" while upgrading a read lock. PostgreSQL locks rows instead:
claims select with `FOR UPDATE SKIP LOCKED`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Select, Table, event, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from fptlab.store.errors import DatabaseFileGone, StoreError

SUPPORTED = ("sqlite", "postgresql")
WRITE_OPTION = "fptlab_write"  # execution option marking the write engine's connections
SQLITE_BUSY_MS = 30_000
SCHEMA_LOCK_KEY = 0x66707463  # "fptc": the PostgreSQL advisory lock taken while migrating
# libpq connection settings unless the URL sets them: give up on a connect after 10 s, and notice a
# dead server or network within about a minute instead of TCP's default of many minutes (an outage
# is then retried, see `fptlab.store.outage`, rather than hanging the sweep).
PG_CONNECT_ARGS = {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                   "keepalives_count": 3, "tcp_user_timeout": 60_000}
# SQLSTATEs meaning "the connection is gone or the server is not accepting it now": connection
# exceptions (class 08), the server shutting down (admin, crash) or still starting up.
PG_OUTAGE_STATES = ("08", "57P01", "57P02", "57P03")
# A refused connection that no retry fixes: the server is there and said no.
_NOT_AN_OUTAGE = re.compile(r"authentication failed|no password supplied|does not exist|permission denied", re.IGNORECASE)


def engine_options(url: URL) -> dict[str, Any]:
    """Keyword arguments for `create_engine`, per backend."""
    backend = url.get_backend_name()
    if backend not in SUPPORTED:
        raise StoreError(
            f"Unsupported database '{url.render_as_string(hide_password=True)}': fptlab's store runs on "
            f"{' or '.join(SUPPORTED)}. Use sqlite:///fptlab.db or postgresql+psycopg://USER@HOST/DBNAME."
        )
    if backend == "postgresql":
        connect_args = {k: v for k, v in PG_CONNECT_ARGS.items() if k not in url.query}
        return {"pool_pre_ping": True, "connect_args": connect_args}  # a sweep outlives idle connections the server may drop
    return {}


def has_server(engine: Engine) -> bool:
    """Whether the database is a server that can go away (PostgreSQL), not a local file (SQLite)."""
    return engine.dialect.name != "sqlite"


def is_disconnect(exc: Exception) -> bool:
    """True when `exc` says the connection to a PostgreSQL server is lost or cannot be made now
    (server down, restarting, network gone): worth retrying. False for everything else, including
    a server that refuses the login or has no such database."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:  # SQLAlchemy recognised a dropped connection
        return True
    orig = exc.orig
    if not isinstance(exc, (OperationalError, InterfaceError)) or type(orig).__module__.split(".")[0] != "psycopg":
        return False
    state = getattr(orig, "sqlstate", None)
    if state is not None:
        return state.startswith(PG_OUTAGE_STATES)
    return not _NOT_AN_OUTAGE.search(str(orig))  # libpq's own errors (connect failed, socket closed)


def configure_engine(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    elif engine.dialect.name == "postgresql":
        # insert=True: before SQLAlchemy's own first-connect setup, which is what a SQL_ASCII database breaks.
        event.listen(engine, "connect", _require_utf8(engine.url), insert=True)


def _require_utf8(url: URL) -> Any:
    """A connect hook refusing a PostgreSQL database whose encoding is not UTF8. fptlab stores text as
    UTF-8; a SQL_ASCII database (what `initdb` gives a cluster with the C or POSIX locale) hands text
    back as bytes, which failed deep inside Alembic with a TypeError. The encoding is one of the
    parameters the server reports when a connection starts: no query is sent."""

    def check(dbapi_connection: Any, _record: Any) -> None:
        status = getattr(getattr(dbapi_connection, "info", None), "parameter_status", None)  # psycopg 3
        encoding = status("server_encoding") if status else None
        if encoding is None or encoding.upper() in ("UTF8", "UTF-8"):
            return
        dbapi_connection.close()
        from fptlab.store.urls import mask_url

        name = url.database or "DBNAME"
        raise StoreError(
            f"The database '{mask_url(url.render_as_string(hide_password=False))}' uses the encoding {encoding}, but "
            f"fptlab stores text as UTF-8 and needs a UTF8 database ({encoding} is what a server initialised with the "
            f"C or POSIX locale gives new databases). Create one as UTF8: createdb -E UTF8 -T template0 {name} (SQL: "
            f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0), then point --db at it."
        )

    return check


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # sqlite3 must not emit BEGIN itself: _sqlite_begin does
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
    if not _foreign(cursor):  # WAL is written into the file: never into another application's database
        _enable_wal(cursor)
    cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough under WAL, much faster
    cursor.execute("PRAGMA foreign_keys = ON")
    path = next((row[2] for row in cursor.execute("PRAGMA database_list") if row[1] == "main"), "")
    cursor.close()
    if path:  # a file (not :memory:): remember which one, see _check_same_file
        st = os.stat(path)
        _record.info[_FILE_KEY] = (path, st.st_dev, st.st_ino)


_FILE_KEY = "fptlab_sqlite_file"


def _check_same_file(connection: Any) -> None:
    """Refuse to begin a transaction on a connection whose SQLite file is no longer the one at its
    path: deleted (SQLite would write on into the unlinked file, and a sweep would report success
    while everything it recorded vanishes when it exits) or replaced (restored from a backup, another
    database moved there). One stat per transaction."""
    known = connection.info.get(_FILE_KEY)
    if known is None:
        return
    path, dev, ino = known
    try:
        st = os.stat(path)
        now = "replaced by another file" if (st.st_dev, st.st_ino) != (dev, ino) else None
    except FileNotFoundError:
        now = "deleted"
    except OSError:
        return  # unreadable for a moment (permissions, NFS): SQLite reports what matters itself
    if now is not None:
        raise DatabaseFileGone(
            f"The SQLite database '{path}' was {now} while this process had it open. What was recorded in it since is "
            "gone with it, so nothing more is written. Restore the file (or point --db at a new one) and run the same "
            "command again: finished trials in the restored file are skipped, the rest run again."
        )


def _foreign(cursor: Any) -> bool:
    """Whether the file holds tables named like fptlab's but no fptlab version table (another
    application's database: `fptlab.store.schema.foreign_tables` refuses it; nothing may change it)."""
    from fptlab.store.models import VERSION_TABLE, Base

    names = {row[0] for row in cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return VERSION_TABLE not in names and bool(names & set(Base.metadata.tables))


def _enable_wal(cursor: Any, tries: int = 100) -> None:
    """Switch a file to WAL (persistent, so only its first connection really switches). The switch
    needs the file to itself and fails at once, busy_timeout or not, while another connection opens
    the same new file: retry briefly, and stop as soon as someone else has switched it."""
    import sqlite3

    for attempt in range(tries):
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() in ("wal", "memory"):
                return
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or attempt == tries - 1:
                raise
            time.sleep(0.02)


def _sqlite_begin(connection: Any) -> None:
    _check_same_file(connection)
    write = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def lock_schema(connection: Connection) -> None:
    """Serialise schema migrations: two sweeps starting on an empty database must not both create it.
    PostgreSQL: a transaction-scoped advisory lock. SQLite: the write transaction already holds the
    file's write lock."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})


# ---- statements -----------------------------------------------------------------------------------
def _insert(session: Session, table: Table) -> Any:
    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # engine_options refuses other backends; this guards a hand-built session
        raise StoreError(f"Unsupported database dialect '{name}'; use sqlite or postgresql.")
    return insert(table)


def insert_ignore(session: Session, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert `rows` in one executemany, skipping rows whose `keys` already exist (concurrency-safe)."""
    if rows:
        session.execute(_insert(session, table).on_conflict_do_nothing(index_elements=list(keys)), list(rows))


def upsert(session: Session, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str], update: Sequence[str]) -> None:
    """Insert `rows` in one executemany; where `keys` exist, overwrite the `update` columns."""
    if not rows:
        return
    stmt = _insert(session, table)
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in update})
    session.execute(stmt, list(rows))


_PG_METRICS_UPSERT = text(
    "INSERT INTO metrics (trial_id, key, step, value, value_kind) "
    "SELECT :trial_id, u.key, u.step, u.value, u.kind "
    "FROM unnest(CAST(:keys AS text[]), CAST(:steps AS integer[]), CAST(:vals AS double precision[]), "
    "CAST(:kinds AS text[])) AS u(key, step, value, kind) "
    "ON CONFLICT (trial_id, key, step) DO UPDATE SET value = excluded.value, value_kind = excluded.value_kind"
)


def upsert_metrics(session: Session, table: Table, trial_id: int, rows: Sequence[dict[str, Any]]) -> None:
    """Upsert one trial's metric rows (already unique per key and step). PostgreSQL: one statement
    over five arrays (psycopg's executemany sends one INSERT per row, ~2x slower); SQLite: executemany."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        upsert(session, table, rows, ["trial_id", "key", "step"], ["value", "value_kind"])
        return
    columns = {name: [r[col] for r in rows] for name, col in (("keys", "key"), ("steps", "step"), ("vals", "value"), ("kinds", "value_kind"))}
    session.execute(_PG_METRICS_UPSERT, {"trial_id": trial_id, **columns})


def lock_rows(session: Session, stmt: Select[Any]) -> Select[Any]:
    """Make a claim's SELECT lock what it reads until commit. PostgreSQL: row locks, skipping rows
    another driver is claiming right now (it will take them; we move on to the next). SQLite: nothing
    to add, the transaction already holds the file's write lock (BEGIN IMMEDIATE)."""
    if session.get_bind().dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=True)
    return stmt


def share_lock(session: Session, stmt: Select[Any]) -> Select[Any]:
    """Keep the rows read unchanged until commit (an ownership check before writing). PostgreSQL:
    FOR SHARE, so a concurrent claim skips the row. SQLite: the write lock is already held."""
    if session.get_bind().dialect.name == "postgresql":
        return stmt.with_for_update(read=True)
    return stmt
