"""A PostgreSQL database that is not UTF8 is refused up front with a message naming the database, its
encoding and how to create it as UTF8. A SQL_ASCII database (what a server initialised with the C
locale gives new databases) used to fail deep inside the first connection with
"TypeError: cannot use a string pattern on a bytes-like object"."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from fptlab.cli import app
from fptlab.store import Store, StoreError
from fptlab.store.urls import mask_url
from tests.store.conftest import pg_base_url, require_pg

pytestmark = pytest.mark.postgres


def _admin(sql: str) -> None:
    engine = create_engine(pg_base_url(), isolation_level="AUTOCOMMIT")  # CREATE DATABASE cannot run in a transaction
    with engine.connect() as connection:
        connection.execute(text(sql))
    engine.dispose()


@pytest.fixture
def sql_ascii_url() -> Iterator[str]:
    """The URL of a new SQL_ASCII database on the test server, dropped after."""
    require_pg()
    name = f"fptlab_test_ascii_{uuid.uuid4().hex[:10]}"
    _admin(f"CREATE DATABASE \"{name}\" ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    try:
        yield make_url(pg_base_url()).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}"')


def _says_encoding_and_fix(message: str, url: str) -> None:
    name = make_url(url).database
    assert f"'{mask_url(url)}'" in message
    assert "SQL_ASCII" in message
    assert f"createdb -E UTF8 -T template0 {name}" in message
    password = make_url(url).password
    assert not password or password not in message


def test_upgrade_refuses_a_sql_ascii_database(sql_ascii_url: str) -> None:
    store = Store(sql_ascii_url)
    try:
        with pytest.raises(StoreError) as error:
            store.upgrade()
        _says_encoding_and_fix(str(error.value), sql_ascii_url)
        with pytest.raises(StoreError, match="SQL_ASCII"):  # every later connection too, and no outage retries
            store.check()
    finally:
        store.close()
    # Nothing was created in it (asked through psycopg itself: SQLAlchemy cannot open this database).
    import psycopg

    libpq_url = make_url(sql_ascii_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq_url) as connection:
        tables = connection.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert tables == (0,)


def test_cli_db_upgrade_prints_the_error_without_a_traceback(sql_ascii_url: str) -> None:
    result = CliRunner().invoke(app, ["db", "upgrade", "--db", sql_ascii_url])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "TypeError" not in result.output
    _says_encoding_and_fix(" ".join(result.output.split()), sql_ascii_url)


def test_a_utf8_database_is_accepted() -> None:
    require_pg()
    store = Store(pg_base_url())
    try:
        assert store.revision() is None or isinstance(store.revision(), str)  # connects: no StoreError
    finally:
        store.close()
