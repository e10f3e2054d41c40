"""Database URLs, engines, the one transaction helper every read and write goes through (retried
through a database outage, see `fptlab.store.outage`), and the translation of driver errors into
`StoreError`s that say which database (password masked) and what to do. Dialect-specific engine
setup lives in `fptlab.store.dialect`.

Passwords stay in the process that was given them. A URL's password is kept in a process-local
table (`url_key`) under a key that means nothing elsewhere (a hash keyed with a random
per-process salt); what leaves the process (a pickled store in Tune's saved state, a message, a
log line) carries the URL without it (`strip_password`) or masked (`mask_url`)."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from fptlab.store import dialect
from fptlab.store.errors import StoreError
from fptlab.store.outage import Outage, outage_budget

T = TypeVar("T")

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
        parsed = make_url(url)
    except ArgumentError:
        head, sep, _ = url.partition("://")
        return f"{head}{sep}***" if sep else url
    if parsed.query.get("password"):  # libpq also takes ?password=...
        parsed = parsed.update_query_dict({"password": "***"})
    return parsed.render_as_string(hide_password=True).replace("password=%2A%2A%2A", "password=***")


def shown_url(url: str) -> str:
    """The URL as the user wrote it, unless it holds a password (then masked): what a message or a
    printed command may show."""
    try:
        has_password = bool(make_url(url).password)
    except ArgumentError:
        has_password = True  # unparsable: mask_url keeps only the scheme
    return mask_url(url) if has_password or "password" in url.lower() else url


def strip_password(url: str) -> str:
    """The URL without its password (in the user part or ?password=): what may be written anywhere.
    PostgreSQL then takes the password from PGPASSWORD or ~/.pgpass, as libpq does."""
    parsed = parse_url(url)
    if parsed.query.get("password"):
        parsed = parsed.difference_update_query(["password"])
    public = URL.create(parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database, parsed.query)
    return public.render_as_string(hide_password=False)


# ---- passwords stay in this process --------------------------------------------------------------
_SALT = secrets.token_bytes(16)  # never leaves the process: keys are meaningless anywhere else
_URLS: dict[str, str] = {}  # key -> full URL, for the URLs with a password this process was given


def url_key(url: str) -> str | None:
    """The key under which `url`'s password is kept in this process (None: it has no password)."""
    if not _passwords(url):
        return None
    key = hashlib.blake2b(url.encode(), key=_SALT, digest_size=12).hexdigest()
    _URLS[key] = url
    return key


def recall_url(public_url: str, key: str | None) -> str:
    """The full URL behind (`public_url`, `key`) from `url_key`: this process's own record; else
    $FPTLAB_DB when it names the same database with the password; else `public_url` as it is."""
    if key is None:
        return public_url
    if key in _URLS:
        return _URLS[key]
    env = os.environ.get(ENV_VAR)
    if env:
        try:
            if strip_password(env) == public_url:
                return env
        except StoreError:
            pass
    return public_url


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
    for password in _passwords(url):
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


def _passwords(url: str) -> list[str]:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return []
    found = [parsed.password, parsed.query.get("password")]
    return [p for p in found if isinstance(p, str) and p]
