"""Migrations, schema checks and connection errors."""

from __future__ import annotations

import pickle
import threading

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import make_url

from fptlab.store import Store, StoreError, schema
from fptlab.store.models import VERSION_TABLE, Base

SECRET = "s3cret-pw"


def test_upgrade_creates_exactly_the_models(store: Store) -> None:
    with store._sessions.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "version_table": VERSION_TABLE})
        assert compare_metadata(context, Base.metadata) == []
    assert store.revision() == schema.head_revision()
    store.check()
    store.upgrade()  # already at head: a no-op


def test_check_on_empty_database_says_how_to_upgrade(make_store) -> None:
    store = make_store()
    with pytest.raises(StoreError, match="no fptlab schema yet. Run: fptlab db upgrade --db "):
        store.check()


def test_ensure_schema_creates_only_an_empty_database(make_store) -> None:
    store = make_store()
    with pytest.raises(StoreError):
        store.ensure_schema(create_if_empty=False)
    store.ensure_schema(create_if_empty=True)
    store.check()


def test_older_revision_is_refused_not_migrated(store: Store) -> None:
    with store._sessions.write_engine.begin() as connection:  # a database an older fptlab (0.1.0) wrote
        command.downgrade(schema.alembic_config(connection), "0001")
    for call in (store.check, store.ensure_schema):
        with pytest.raises(StoreError, match=rf"revision 0001, but this fptlab needs {schema.head_revision()}\. Run: fptlab db upgrade --db "):
            call()
    assert store.revision() == "0001"


def test_tables_without_revision_are_not_auto_migrated(store: Store) -> None:
    with store._sessions.write_engine.begin() as connection:
        command.stamp(schema.alembic_config(connection), "base")
    with pytest.raises(StoreError, match="fptlab tables but no schema revision"):
        store.ensure_schema(create_if_empty=True)


def test_unknown_revision_says_upgrade_fptlab(store: Store) -> None:
    with store.session(write=True) as session:
        session.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'zz99'"))
    with pytest.raises(StoreError, match="written by a newer fptlab"):
        store.check()


def test_downgrade_then_upgrade(store: Store) -> None:
    with store._sessions.write_engine.begin() as connection:
        command.downgrade(schema.alembic_config(connection), "base")
    assert store.revision() is None
    store.upgrade()
    store.check()


def test_operations_without_schema_say_to_upgrade(make_store) -> None:
    store = make_store()
    with pytest.raises(StoreError, match="fptlab db upgrade --db"):
        store.statuses(["abc"])


@pytest.mark.postgres
def test_unreachable_postgres_masks_password() -> None:
    pytest.importorskip("psycopg")
    url = f"postgresql+psycopg://fpt:{SECRET}@127.0.0.1:1/fptlab?connect_timeout=3"
    store = Store(url)
    for text_ in (repr(store), str(store), store.masked_url):
        assert SECRET not in text_ and "***" in text_
    with pytest.raises(StoreError) as info:
        store.check()
    message = str(info.value)
    assert SECRET not in message
    assert "postgresql+psycopg://fpt:***@127.0.0.1:1/fptlab" in message
    assert "Start it" in message and "FPTLAB_DB" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no driver traceback to leak it
    clone = pickle.loads(pickle.dumps(store))
    assert clone.url == url and SECRET not in repr(clone)


def test_unopenable_sqlite_file(tmp_path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'missing-folder' / 'x.db'}")
    with pytest.raises(StoreError, match="unable to open database file.*folder exists"):
        store.check()


def test_bad_urls() -> None:
    with pytest.raises(StoreError, match="is not a database URL"):
        Store("not a url")
    with pytest.raises(StoreError, match="runs on sqlite or postgresql"):
        Store("mysql://u:pw@h/db")


def test_default_url_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("FPTLAB_DB", f"sqlite:///{tmp_path / 'env.db'}")
    assert Store().url.endswith("env.db")
    monkeypatch.delenv("FPTLAB_DB")
    assert Store().url == "sqlite:///fptlab.db"


def test_sqlite_pragmas(tmp_path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'p.db'}")
    with store.session() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert session.execute(text("PRAGMA busy_timeout")).scalar() >= 1000


def test_upgrade_from_unknown_revision_is_a_store_error(store: Store) -> None:
    with store.session(write=True) as session:
        session.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'zz99'"))
    with pytest.raises(StoreError, match="Cannot upgrade .* to head"):
        store.upgrade()


def test_concurrent_sweeps_create_an_empty_database_once(make_store) -> None:
    stores = [make_store() for _ in range(4)]
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def run(s: Store) -> None:
        start.wait()
        try:
            s.ensure_schema(create_if_empty=True)
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    stores[0].check()


@pytest.mark.postgres
def test_missing_postgres_database_says_create_it() -> None:
    from tests.store.conftest import pg_base_url, require_pg

    require_pg()
    url = make_url(pg_base_url()).set(database="fptlab_no_such_db").render_as_string(hide_password=False)
    with pytest.raises(StoreError, match="no such database: create it"):
        Store(url).check()
