"""Where data and weights come from: the cache directory, offline registry packages, downloads.

Users with internet get the official archives (downloaded once into the cache) and hub weights;
machines without it use assets that ship inside registry packages (README: "Offline assets").
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fptlab.errors import DataNotFoundError


def data_dir() -> Path:
    """`$FPTLAB_DATA`, else `~/.cache/fptlab/data`. Official datasets are looked for / cached here."""
    env = os.environ.get("FPTLAB_DATA")
    # Absolute, so a Ray worker whose working directory differs finds the same folder.
    return Path(env).expanduser().absolute() if env else Path.home() / ".cache" / "fptlab" / "data"


def package_dir(module: str) -> Path | None:
    """Directory of an installed package, found without importing it (some pull heavy deps)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(module: str, relative: str) -> Path | None:
    base = package_dir(module)
    if base is None:
        return None
    path = base / relative
    return path if path.exists() else None


def offline_disabled() -> bool:
    """True when downloads must not be attempted (`FPTLAB_OFFLINE=1` or `HF_HUB_OFFLINE=1`)."""
    return any(os.environ.get(v, "") not in ("", "0") for v in ("FPTLAB_OFFLINE", "HF_HUB_OFFLINE"))


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path`.lock across processes (trials of one sweep fetching the same data)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as handle:  # hidden, left in place (harmless)
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def download(url: str, dest: Path, *, sha256: str | None = None, what: str, how_to_get: str) -> Path:
    """Download `url` to `dest` (atomically) unless present. On failure: one clear DataNotFoundError.
    Processes downloading the same file take turns: the first fetches it, the others find it there."""
    if dest.exists():
        return dest
    if offline_disabled():
        raise DataNotFoundError(f"{what} is not at {dest} and downloads are disabled (offline mode). {how_to_get}")
    with file_lock(dest):
        if dest.exists():
            return dest
        tmp = dest.with_name(f"{dest.name}.{os.getpid()}.part")
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise DataNotFoundError(f"{what} is not at {dest} and downloading {url} failed ({e}). {how_to_get}") from None
        if sha256 is not None:
            digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
            if digest != sha256:
                tmp.unlink(missing_ok=True)
                raise DataNotFoundError(f"{what}: download from {url} has sha256 {digest}, expected {sha256}. {how_to_get}")
        tmp.replace(dest)
    return dest
