"""Database URLs, engines, the one transaction helper every read and write goes through (retried
through a database outage, see `fptlab.store.outage`), and the translation of driver errors into
`StoreError`s that say which database (password masked) and what to do. Dialect-specific engine
setup lives in `fptlab.store.dialect`.

URLs, and how their passwords are kept in the process, are `fptlab.store.urls`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from fptlab.store import dialect
from fptlab.store.errors import StoreError
from fptlab.store.outage import Outage, outage_budget
from fptlab.store.urls import mask_url, parse_url, passwords_in

T = TypeVar("T")

def build_engine(url: str) -> tuple[Engine, Engine]:
    """A read engine and a write engine sharing one pool; the write one is marked so that SQLite
    takes its write lock when a transaction begins (see `dialect.configure_engine`)."""
    parsed = parse_url(url)
    try:
        engine = create_engine(parsed, **dialect.engine_options(parsed))
    except (NoSuchModuleError, ImportError) as e:
        raise StoreError(
            f"Cannot open '{mask_url(url)}': the database driver is not installed ({e}). For PostgreSQL "
            "install the extra: pip install 'fptlab[postgres]'."
        ) from None
    dialect.configure_engine(engine)
    return engine, engine.execution_options(**{dialect.WRITE_OPTION: True})


class Sessions:
    """Creates short-lived ORM sessions: `run(work)` is one transaction, retried through an outage;
    `scope()` is one attempt of one. Both commit or roll back and convert driver errors."""

    def __init__(self, url: str, outage_seconds: float | None = None) -> None:
        self.url = url
        self.masked = mask_url(url)
        read, write = build_engine(url)
        self.engine, self.write_engine = read, write
        self._read = sessionmaker(bind=read, expire_on_commit=False)
        self._write = sessionmaker(bind=write, expire_on_commit=False)
        # SQLite has no server to lose (a busy file is waited for: dialect.SQLITE_BUSY_MS).
        self.has_server = dialect.has_server(read)
        self.outage = Outage(outage_budget(outage_seconds) if self.has_server else 0.0, self.masked)
        # An outage is the loss of a database we reached: until the first connection succeeds, a wrong
        # host or a server that is not up fails at once rather than after the whole budget.
        self.reached = False
        event.listen(read, "connect", self._connected)

    def _connected(self, _dbapi_connection: Any, _record: Any) -> None:
        self.reached = True

    def run(self, work: Callable[[Session], T], write: bool = False, outage_seconds: float | None = None) -> T:
        """`work(session)` as one transaction, committed when it returns. When the connection is lost
        (before or during the commit) the whole transaction runs again once the server answers, so
        `work` must be idempotent or check what an earlier try committed (see `claims`).
        `outage_seconds`: wait up to that long for this call alone, however long the database has
        been unreachable already (e.g. to record how a sweep ended after it gave up on an outage)."""
        outage = self.outage
        if outage_seconds is not None and self.has_server:
            outage = Outage(outage_budget(outage_seconds), self.masked)
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._attempt(write) as session:
                    result = work(session)
            except SQLAlchemyError as e:
                if not (outage.budget > 0 and self.reached and dialect.is_disconnect(e)):
                    raise self.error(e) from None
                outage.failed(attempt, error_detail(e, self.url))
                continue
            outage.succeeded()
            self.outage.succeeded()
            return result

    @contextmanager
    def scope(self, write: bool = False) -> Iterator[Session]:
        """One attempt of one transaction: committed when the block ends, rolled back on any exception.
        Writes pass write=True so that SQLite takes its write lock up front (no lock upgrade can fail
        midway). Not retried: the store's operations use `run`."""
        try:
            with self._attempt(write) as session:
                yield session
        except SQLAlchemyError as e:
            raise self.error(e) from None

    @contextmanager
    def _attempt(self, write: bool) -> Iterator[Session]:
        session = (self._write if write else self._read)()
        try:
            yield session
            session.commit()
        except BaseException:
            _quiet_rollback(session)
            raise
        finally:
            session.close()

    def error(self, exc: BaseException) -> StoreError:
        return StoreError(describe_error(exc, self.url))

    def dispose(self) -> None:
        self.engine.dispose()


def _quiet_rollback(session: Session) -> None:
    try:
        session.rollback()
    except SQLAlchemyError:  # the connection may already be gone; the original error matters
        pass


# ---- error messages -------------------------------------------------------------------------------
_ADVICE = (  # (regex on the driver's message, what to do); the first match wins
    (
        r"database( table)? is locked",
        "Another process held the SQLite write lock too long. SQLite suits one sweep driver per file; "
        "for several drivers or hosts use PostgreSQL (--db postgresql+psycopg://USER@HOST/DBNAME).",
    ),
    (
        r'database "[^"]*" does not exist',
        "The server is up but has no such database: create it (createdb DBNAME) or fix the URL.",
    ),
    (
        r"authentication failed|no password supplied",
        "The server refused the login: check the user and password (in the URL or ~/.pgpass).",
    ),
    (
        r"connection refused|could not connect|connection failed|could not translate host name|timeout expired"
        r"|server closed the connection|no such file or directory",
        "Cannot reach the database server. Start it (e.g. PostgreSQL via docker compose) or point --db / "
        "$FPTLAB_DB at a reachable database.",
    ),
    (
        r"no such table|relation .* does not exist|undefinedtable",
        "The database has no fptlab schema (or an old one). Run: fptlab db upgrade --db {url}",
    ),
    (r"unable to open database file", "SQLite cannot create or open that file: check that its folder exists and is writable."),
)


def error_detail(exc: BaseException, url: str) -> str:
    """The driver's complaint in one line ("OperationalError: ..."), any password in it masked."""
    detail = _driver_message(exc)
    for password in passwords_in(url):
        detail = detail.replace(password, "***")
    return detail


def describe_error(exc: BaseException, url: str) -> str:
    """A one-paragraph message naming the database (password masked), the driver's complaint and a fix."""
    masked = mask_url(url)
    detail = error_detail(exc, url)
    advice = next((tip for pattern, tip in _ADVICE if re.search(pattern, detail, re.IGNORECASE)), None)
    if advice is None:
        advice = "Check that the database is reachable and its schema is current (fptlab db check --db {url})."
    return f"Database error on '{masked}': {detail}. {advice.format(url=masked)}"


def _driver_message(exc: BaseException) -> str:
    orig: Any = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(orig).strip().splitlines() if line.strip()]
    text = " ".join(lines[:2]) if lines else type(orig).__name__
    return f"{type(orig).__name__}: {text}".rstrip(".")
