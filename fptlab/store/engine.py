"""Database URLs, engines, the one scoped-session helper every read and write goes through, and the
translation of driver errors into `StoreError`s that say which database (password masked) and what
to do. Dialect-specific engine setup lives in `fptlab.store.dialect`."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from fptlab.store import dialect
from fptlab.store.errors import StoreError

DEFAULT_URL = "sqlite:///fptlab.db"
ENV_VAR = "FPTLAB_DB"


def resolve_url(url: str | URL | None) -> str:
    """`url`, else $FPTLAB_DB, else a `fptlab.db` SQLite file in the working directory."""
    if url is None:
        url = os.environ.get(ENV_VAR) or DEFAULT_URL
    return url.render_as_string(hide_password=False) if isinstance(url, URL) else str(url)


def parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError:
        raise StoreError(
            f"'{mask_url(url)}' is not a database URL. Expected e.g. sqlite:///fptlab.db or "
            "postgresql+psycopg://USER@HOST/DBNAME (set --db or $FPTLAB_DB)."
        ) from None


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***; a string that does not parse is masked after '//'."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        head, sep, _ = url.partition("://")
        return f"{head}{sep}***" if sep else url


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
    """Creates short-lived ORM sessions; `scope()` commits or rolls back and converts driver errors."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.masked = mask_url(url)
        read, write = build_engine(url)
        self.engine, self.write_engine = read, write
        self._read = sessionmaker(bind=read, expire_on_commit=False)
        self._write = sessionmaker(bind=write, expire_on_commit=False)

    @contextmanager
    def scope(self, write: bool = False) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any exception. Writes pass
        write=True so that SQLite takes its write lock up front (no lock upgrade can fail midway)."""
        session = (self._write if write else self._read)()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as e:
            _quiet_rollback(session)
            raise self.error(e) from None
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


def describe_error(exc: BaseException, url: str) -> str:
    """A one-paragraph message naming the database (password masked), the driver's complaint and a fix."""
    masked = mask_url(url)
    detail = _driver_message(exc)
    password = _password(url)
    if password:
        detail = detail.replace(password, "***")
    advice = next((tip for pattern, tip in _ADVICE if re.search(pattern, detail, re.IGNORECASE)), None)
    if advice is None:
        advice = "Check that the database is reachable and its schema is current (fptlab db check --db {url})."
    return f"Database error on '{masked}': {detail}. {advice.format(url=masked)}"


def _driver_message(exc: BaseException) -> str:
    orig: Any = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(orig).strip().splitlines() if line.strip()]
    text = " ".join(lines[:2]) if lines else type(orig).__name__
    return f"{type(orig).__name__}: {text}".rstrip(".")


def _password(url: str) -> str | None:
    try:
        return make_url(url).password
    except ArgumentError:
        return None
