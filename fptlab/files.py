"""Files a user names (a sweep spec and its base, a run config, a SQLite database, a weights file):
what a path is, said plainly when it is not what was expected, and the one TOML reader.

A path that exists but is not a regular file (/dev/zero, a FIFO, a socket, a symlink loop) is named
for what it is: never called "not found", never read (a FIFO or /dev/zero would be read forever).
"""

from __future__ import annotations

import errno
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from fptlab.errors import ConfigError

BOM = b"\xef\xbb\xbf"


def kind_of(path: str | Path) -> str:
    """"missing", "file", "folder", "symlink loop", "broken symlink", "FIFO (named pipe)", "character
    device", "block device", "socket", or "unreadable (<reason>)"."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symlink loop"
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return "broken symlink" if os.path.islink(path) else "missing"
        return f"unreadable ({e.strerror or e})"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def not_a_file(path: str | Path, kind: str | None = None) -> str | None:
    """Why `path` cannot be read as a file ("not found", "is a FIFO (named pipe), not a regular file"), or None
    when it is a regular file (or a symlink to one)."""
    kind = kind or kind_of(path)
    if kind == "file":
        return None
    if kind == "missing":
        return "not found"
    if kind in ("symlink loop", "broken symlink"):
        return f"is a {kind}, not a file"
    if kind.startswith("unreadable"):
        return f"is {kind}"
    return f"is a {kind}, not a regular file"


def read_text(path: str | Path, what: str) -> str:
    """The text of a UTF-8 file the user named as `what` ("spec file", "config file"); ConfigError
    naming the path when it is not a regular file, starts with a byte-order mark, or is not UTF-8."""
    problem = not_a_file(path)
    if problem is not None:
        raise ConfigError(f"{path}: {what} {problem}.")
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the {what}: {e.strerror or e}.") from None
    if data.startswith(BOM):
        raise ConfigError(f"{path}: the {what} starts with a UTF-8 byte-order mark (bytes EF BB BF), which TOML does not "
                          "allow. Save it as UTF-8 without BOM.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: cannot read the {what}: it is not UTF-8 text (byte {e.start} is 0x{data[e.start]:02x}).") from None


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """The tables of a TOML file the user named (see `read_text` for what is refused)."""
    text = read_text(path, what)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: the {what} is not valid TOML: {e}.") from None


# Kernel-provided file systems: paths there exist but are not storage (nothing can be created there).
PSEUDO_FILESYSTEMS = frozenset({"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs",
                                "securityfs", "configfs", "fusectl", "pstore", "bpf", "efivarfs", "mqueue", "hugetlbfs"})


def pseudo_filesystem(path: str | Path) -> str | None:
    """The type of the kernel file system `path` lies on (proc, sysfs, ...), else None (also where the
    mount table cannot be read: not Linux)."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, kind = "", None
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, kind = mount, parts[2]
    return kind if kind in PSEUDO_FILESYSTEMS else None


class OutsideError(ConfigError):
    """A location read from a database or a file that would lead outside the folder it must stay in."""


class NotThere(OutsideError):
    """A confined location that is well-formed but has nothing at it (storage not mounted here)."""


def confined(root: str | Path, location: str, *, want: str = "file") -> Path:
    """`root/location`, for a `location` read from untrusted storage (an artifact row of a shared
    database): relative, without `..`, resolving (symlinks followed) inside `root`, and a regular file
    (`want="file"`) or a folder (`want="folder"`). Anything else raises OutsideError saying why; the
    path is never opened."""
    from pathlib import PurePath

    rel = PurePath(location)
    if rel.is_absolute() or location.startswith(("/", "\\")) or (len(location) > 1 and location[1] == ":"):
        raise OutsideError(f"location {location!r} is absolute; artifact locations are relative to the storage folder")
    if ".." in rel.parts:
        raise OutsideError(f"location {location!r} climbs out of the storage folder ('..')")
    base = Path(root).resolve()
    candidate = base / rel
    kind = kind_of(candidate)
    if kind == "missing":
        raise NotThere(f"{candidate} is not there (is the sweep's --storage {root} mounted here?)")
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError) as e:
        raise OutsideError(f"{candidate} cannot be resolved ({e})") from None
    if not real.is_relative_to(base):
        raise OutsideError(f"{candidate} leads outside the storage folder {base} (to {real})")
    if kind != want:
        raise OutsideError(f"{candidate} {not_a_file(candidate, kind) if want == 'file' else f'is a {kind}, not a folder'}")
    return real
