"""A SQLite file deleted or replaced under an open store is refused, not written on (issue 8, chaos
"db-deleted"): SQLite would keep writing into the unlinked file and a sweep would end `successfully`
with everything it recorded gone."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fptlab.store import DatabaseFileGone, Store, StoreError


def _store(path: Path) -> Store:
    store = Store(f"sqlite:///{path}")
    store.ensure_schema(create_if_empty=True)
    store.upsert_experiment("e", "", "[grid]", "spec-hash")
    return store


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def test_a_deleted_file_is_refused_naming_it_and_not_recreated(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    store = _store(path)
    _remove(path)
    with pytest.raises(DatabaseFileGone, match=r"'.*results\.db' was deleted while this process had it open"):
        store.upsert_experiment("f", "", "[grid]", "other")
    with pytest.raises(DatabaseFileGone):  # reads too: what they would show is gone
        store.trials()
    assert not path.exists()
    assert isinstance(DatabaseFileGone("x"), StoreError)  # the CLI's clean-error path handles it
    store.close()


def test_a_replaced_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    store = _store(path)
    other = tmp_path / "backup.db"
    _store(other).close()
    os.replace(other, path)  # e.g. a backup restored over the live file
    with pytest.raises(DatabaseFileGone, match="replaced by another file"):
        store.upsert_experiment("f", "", "[grid]", "other")
    store.close()


def test_a_renamed_then_restored_file_is_the_same_file(tmp_path: Path) -> None:
    """Moving the file away and back (same inode) is not a replacement: writes go on."""
    path = tmp_path / "results.db"
    store = _store(path)
    shutil.move(path, tmp_path / "moved.db")
    shutil.move(tmp_path / "moved.db", path)
    store.upsert_experiment("f", "", "[grid]", "other")
    assert {"e", "f"} <= {row["name"] for row in store.experiments()}
    store.close()


def test_a_new_store_on_a_restored_path_works(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    _store(path).close()
    _remove(path)
    fresh = _store(path)
    assert [row["name"] for row in fresh.experiments()] == ["e"]
    fresh.close()
