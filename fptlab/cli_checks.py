"""Command-line values checked before anything is written: database URLs, output and input paths, and
`fptlab trials` filters. Each check raises FptlabError naming the flag, the value, what was expected
and the fix; none creates a file or opens a connection."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Any, Literal

from fptlab.errors import FptlabError
from fptlab.escape import quoted
from fptlab.files import kind_of, not_a_file, pseudo_filesystem

DbUse = Literal["write", "read", "read-optional"]
INT_RANGE = (-(2**31), 2**31 - 1)  # the trials table's integer columns, on every backend


# ---- databases ---------------------------------------------------------------------------------------
def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL; None for other backends. In-memory SQLite is refused here."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:") or parsed.query.get("mode") == "memory":
        raise FptlabError(
            f"--db {_shown(url)} is an in-memory SQLite database: it starts empty and is gone when the command ends, so "
            "nothing could be read from it or kept in it. Point --db at a file, e.g. --db sqlite:///fptlab.db."
        )
    return Path(database)


def _shown(url: str) -> str:
    from fptlab.store.urls import shown_url

    return shown_url(url)


def check_db(url: str, use: DbUse) -> bool:
    """Check the database URL for `use` without connecting; True when there is a database to open
    (False: an SQLite file that does not exist yet, or is empty: opening it would create or stamp it).
    "write": a sweep or `db upgrade` creates the SQLite file, so its folder must exist; "read": the
    database must exist; "read-optional": one that does not exist yet is fine."""
    path = sqlite_path(url)
    if path is None:
        return True
    url = _shown(url)
    kind = kind_of(path)
    if kind == "folder":
        raise FptlabError(f"--db {url} names a folder, not a database file. Name a file in it, e.g. sqlite:///{path / 'fptlab.db'}.")
    if kind not in ("file", "missing"):
        raise FptlabError(f"--db {url}: {path} {not_a_file(path, kind)}, so it cannot be an SQLite database. Point --db at a "
                          "database file.")
    if kind == "file" and path.stat().st_size > 0:
        return True
    if use == "write":
        folder = path.absolute().parent
        if not folder.is_dir():
            problem = "is a file, not a folder" if folder.exists() else "does not exist"
            raise FptlabError(
                f"--db {url}: {folder} {problem}, so the database cannot be created there. Create the folder "
                f"(mkdir -p {folder}) or point --db elsewhere."
            )
        return path.exists()
    if use == "read-optional":
        return False
    what = "is an empty file, not an fptlab database" if path.exists() else "does not exist"
    raise FptlabError(
        f"No results database at {path}: the file {what}. Run a sweep first (fptlab sweep SPEC), or point --db / "
        "$FPTLAB_DB at an existing database."
    )


# ---- paths -------------------------------------------------------------------------------------------
def output_file(flag: str, path: Path, *, create_parents: bool = False) -> None:
    """`path` can be written as a file: not a folder, and its folder exists (or, with `create_parents`,
    can be created: its nearest existing ancestor is a folder) and is writable."""
    kind = kind_of(path)
    if kind == "folder":
        raise FptlabError(f"{flag} {path} is a folder. Give a file name, e.g. {flag} {path / ('out' + (path.suffix or '.csv'))}.")
    if kind not in ("file", "missing"):
        raise FptlabError(f"{flag} {path} {not_a_file(path, kind)}: it would be replaced by the output. Give a file path.")
    folder = path.absolute().parent
    pseudo = pseudo_filesystem(folder) if folder.exists() else None
    if pseudo is not None:
        raise FptlabError(f"{flag} {path}: {folder} is on a '{pseudo}' file system, which the kernel provides (it is not "
                          "storage): no file can be written there. Choose a path on a disk.")
    if not folder.is_dir():
        if folder.exists():
            raise FptlabError(f"{flag} {path}: {folder} is a file, not a folder. Choose another path.")
        if not create_parents:
            raise FptlabError(f"{flag} {path}: the folder {folder} does not exist. Create it (mkdir -p {folder}) or choose another path.")
        existing = folder
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            raise FptlabError(f"{flag} {path}: {existing} is a file, so the folder {folder} cannot be created. Choose another path.")
        folder = existing
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FptlabError(f"{flag} {path}: the folder {folder} is not writable by this user. Choose another path.")


def writable_folder(flag: str, path: Path) -> None:
    """`path` is a folder this process can write, or can be created as one (its nearest existing
    ancestor is a writable folder). Creates nothing."""
    if path.exists() and not path.is_dir():
        raise FptlabError(f"{flag} {path} is a file, not a folder. Give a folder (it is created if missing).")
    here = path.absolute()
    while not here.exists():
        here = here.parent
    if not here.is_dir():
        raise FptlabError(f"{flag} {path}: {here} is a file, so the folder cannot be created there. Choose another path.")
    if not os.access(here, os.W_OK | os.X_OK):
        raise FptlabError(f"{flag} {path}: the folder {here} is not writable by this user. Choose a folder you can write.")


def existing_folder_or_absent(flag: str, path: Path) -> None:
    """A folder that need not exist yet (it is created on use), but is not a file."""
    if path.exists() and not path.is_dir():
        raise FptlabError(f"{flag} {path} is a file, not a folder. Give a folder.")


def input_folder(flag: str, path: Path) -> None:
    """An existing folder (read from, never created)."""
    if not path.exists():
        raise FptlabError(f"{flag} {path}: no such folder. Give an existing folder.")
    if not path.is_dir():
        raise FptlabError(f"{flag} {path} is a file, not a folder. Give a folder.")


def spec_file(path: Path) -> None:
    """A sweep spec argument: an existing regular file (the spec loader says what is wrong inside it)."""
    kind = kind_of(path)
    if kind == "folder":
        raise FptlabError(f"{path} is a folder, not a sweep spec. Give a spec file, e.g. {path / 'smoke.toml'}.")
    if kind == "missing":
        raise FptlabError(f"{path}: spec file not found. Check the path (specs live in experiments/, e.g. experiments/smoke.toml).")
    if kind != "file":
        raise FptlabError(f"{path}: spec {not_a_file(path, kind)}. Give a TOML spec file, e.g. experiments/smoke.toml.")


def write_atomically(path: Path, write: Any) -> None:
    """`write(tmp_path)` then rename onto `path`: a reader never sees half a file, and a failed write
    leaves neither a partial file nor a temporary one behind. OSError -> FptlabError naming the path."""
    tmp = path.with_name(f".tmp-{path.name}")  # same suffixes: pandas infers compression (.csv.gz) from them
    try:
        write(tmp)
        tmp.replace(path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        fix = "Free some space there, or choose another path." if e.errno == errno.ENOSPC else "Choose another path."
        raise FptlabError(f"Cannot write {path}: {e.strerror or e}. {fix}") from None


# ---- fptlab trials filters ---------------------------------------------------------------------------
def trial_statuses(values: list[str]) -> list[str]:
    """--status values, each one of the store's statuses (did-you-mean otherwise)."""
    from fptlab.registry import unknown_name_message
    from fptlab.store.models import STATUSES

    for value in values:
        if value not in STATUSES:
            raise FptlabError(unknown_name_message("trial status", value, list(STATUSES)))
    return values


def trial_filters(texts: list[str]) -> dict[str, Any]:
    """--where KEY=VALUE filters on the trials table's columns, each value of its column's type;
    names of tasks, backbones, inits and statuses checked against what exists."""
    from fptlab.registry import did_you_mean

    columns = _filter_columns()
    out: dict[str, Any] = {}
    for text in texts:
        key, sep, value = (part.strip() for part in text.partition("="))
        if not sep or not key:
            raise FptlabError(f"Bad --where {quoted(text)}: expected KEY=VALUE, e.g. --where task=bit_xor or --where seed=0.")
        if key not in columns:
            raise FptlabError(
                f"Bad --where {quoted(text)}: cannot filter trials on '{key}'.{did_you_mean(key, list(columns))} "
                f"Filter on: {', '.join(columns)}."
            )
        if key in out:
            raise FptlabError(f"--where {key} is given twice ({out[key]!r} and {value!r}); a trial has one {key}. Keep one.")
        out[key] = _filter_value(key, value, columns[key], text)
    return out


def _filter_columns() -> dict[str, type]:
    """Filterable columns of the trials table and their Python types (times and the config are not)."""
    from fptlab.store.models import Trial

    out = {}
    for column in Trial.__table__.columns:
        kind = column.type.python_type
        if column.name != "config" and kind in (int, str):
            out[column.name] = kind
    return out


def _filter_value(key: str, value: str, kind: type, text: str) -> Any:
    from fptlab.registry import named_registry

    if value == "":
        raise FptlabError(f"Bad --where {quoted(text)}: the value is empty. Expected KEY=VALUE, e.g. --where {key}=...")
    if kind is int:
        try:
            number = int(value)
        except ValueError:
            raise FptlabError(f"Bad --where {quoted(text)}: '{key}' is a whole number, got {quoted(value)}. E.g. --where {key}=0.") from None
        if not INT_RANGE[0] <= number <= INT_RANGE[1]:
            raise FptlabError(f"Bad --where {quoted(text)}: '{key}' is stored as a 32-bit integer ({INT_RANGE[0]:,} to "
                              f"{INT_RANGE[1]:,}), so no trial has {key} = {quoted(number)}.")
        return number
    try:
        if key == "status":
            trial_statuses([value])
        elif (registry := named_registry(key)) is not None:
            registry.get(value)  # an unknown name: did-you-mean and the list
    except FptlabError as e:
        raise FptlabError(f"Bad --where {quoted(text)}: {e}") from None
    return value
