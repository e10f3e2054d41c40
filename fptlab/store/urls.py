"""Database URLs: which one (`--db`, $FPTLAB_DB, ./fptlab.db), parsed, and shown without the password.

Passwords stay in the process that was given them. A URL's password is kept in a process-local table
(`url_key`) under a key that means nothing elsewhere (a hash keyed with a random per-process salt);
what leaves the process (a pickled store in Tune's saved state, a message, a log line) carries the URL
without it (`strip_password`) or masked (`mask_url`, `shown_url`). Imports nothing of the store but
its error, so every store module may use it.
"""

from __future__ import annotations

import hashlib
import os
import secrets

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

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
    if not passwords_in(url):
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



def passwords_in(url: str) -> list[str]:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return []
    found = [parsed.password, parsed.query.get("password")]
    return [p for p in found if isinstance(p, str) and p]
