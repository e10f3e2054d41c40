"""Migration 0005: the status `pruned` becomes storable; rows stay as they were; downgrade refuses while a
trial is pruned and restores the old constraint once none is."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from fptlab.store import Store, schema


def _insert(engine, i: int, status: str) -> None:
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO trials (id, config_hash, config, task, backbone, init, seed, status, attempts, created) "
                                "VALUES (:i, :h, '{}', 'bit_xor', 'gpt2', 'random', 0, :s, 1, '2026-01-01')"),
                           {"i": i, "h": f"hash{i:04d}", "s": status})


def test_pruned_is_refused_before_and_stored_after(db_url: str) -> None:
    store = Store(db_url)
    store.upgrade("0004")
    engine = create_engine(db_url)
    _insert(engine, 1, "completed")
    with pytest.raises(IntegrityError):
        _insert(engine, 2, "pruned")
    store.upgrade()
    _insert(engine, 2, "pruned")
    with pytest.raises(IntegrityError):
        _insert(engine, 3, "halved")  # still a checked set
    states = Store(db_url).trial_states(["hash0001", "hash0002"])
    assert {h: s["status"] for h, s in states.items()} == {"hash0001": "completed", "hash0002": "pruned"}
    engine.dispose()


def test_downgrade_refuses_while_a_trial_is_pruned(db_url: str) -> None:
    store = Store(db_url)
    store.upgrade()
    engine = create_engine(db_url)
    _insert(engine, 1, "pruned")
    with pytest.raises(RuntimeError, match="1 trial.*'pruned'.*hash0001"):
        _downgrade(store, "0004")
    assert Store(db_url).trial_states(["hash0001"])["hash0001"]["status"] == "pruned"  # nothing changed
    with engine.begin() as connection:
        connection.execute(text("UPDATE trials SET status = 'completed'"))
    _downgrade(store, "0004")
    with pytest.raises(IntegrityError):
        _insert(engine, 2, "pruned")
    engine.dispose()


def _downgrade(store: Store, revision: str) -> None:
    from alembic import command

    with store._sessions.write_engine.begin() as connection:
        command.downgrade(schema.alembic_config(connection), revision)
