"""Store tests run on SQLite (a fresh file per test) and on PostgreSQL (a fresh schema per test, via
the connection's search_path). PostgreSQL comes from $FPTLAB_TEST_PG_URL, else the local server
over its Unix socket; when it is unreachable its tests are skipped, except under CI (then they fail)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from fptlab.store import Store

DEFAULT_PG_URL = "postgresql+psycopg:///fptlab_test"


def pg_base_url() -> str:
    return os.environ.get("FPTLAB_TEST_PG_URL") or DEFAULT_PG_URL


@lru_cache(maxsize=1)
def pg_unreachable_reason() -> str | None:
    url = pg_base_url()
    try:
        engine = create_engine(url)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as e:  # noqa: BLE001 - any failure means "no server to test against"
        masked = make_url(url).render_as_string(hide_password=True)
        return f"PostgreSQL at {masked} is unreachable ({type(e).__name__}); set FPTLAB_TEST_PG_URL to test it"
    return None


def require_pg() -> None:
    reason = pg_unreachable_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}. CI must run the PostgreSQL store tests.")
    pytest.skip(reason)


def _pg_schema_url(schema: str) -> str:
    url = make_url(pg_base_url())
    options = url.query.get("options", "")
    options = f"{options} -csearch_path={schema}".strip()
    return url.update_query_dict({"options": options}).render_as_string(hide_password=False)


def _pg_admin(sql: str) -> None:
    engine = create_engine(pg_base_url())
    with engine.begin() as connection:
        connection.execute(text(sql))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """The URL of a fresh, empty database of each dialect."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fptlab.db'}"
        return
    with fresh_pg_schema() as url:
        yield url


@contextmanager
def fresh_pg_schema() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL schema (skipped when no server is reachable), dropped after."""
    require_pg()
    schema = f"fpt_test_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE SCHEMA "{schema}"')
    try:
        yield _pg_schema_url(schema)
    finally:
        _pg_admin(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def make_store(db_url: str) -> Iterator[Callable[[], Store]]:
    """Opens more Store objects (own engine and connections) on the test's database; all closed after."""
    opened: list[Store] = []

    def make() -> Store:
        opened.append(Store(db_url))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: Callable[[], Store]) -> Store:
    """A Store on a fresh database migrated to head."""
    s = make_store()
    s.upgrade()
    return s
