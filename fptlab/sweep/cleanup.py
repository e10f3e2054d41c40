"""Ray processes that outlive a killed sweep driver, and how the next sweep on the host ends them.

An embedded Ray (`fptlab sweep` without --address) lives and dies with its driver. After a `kill -9`
of the driver (Ray 2.60, Linux, measured): the kernel ends the driver's own children at once (Ray
starts gcs_server, the raylet and its Python daemons with PR_SET_PDEATHSIG); the workers end within
about 3 s of their raylet; but the raylet's two agents (`ray::DashboardAgent`, `ray::RuntimeEnvAgent`)
linger about 60 s, each waiting out a 60 s timeout to report the raylet's death to the GCS that is
gone too, and an agent that cannot run (stopped, stuck in the kernel) stays until it is killed.

So each driver that starts an embedded Ray records it: one small JSON file per session in
`<Ray's temp folder>/fptlab-sessions/` naming the session folder and the driver (pid, start time,
boot id, host). Before it starts Ray, a sweep reads those files and, for each whose driver is gone,
kills that session's Ray processes: processes of this user that run a Ray program (their title is
`ray::...`, or a program of the installed ray package) and whose command line or open files lie in
the session folder. A session without such a file (a cluster started with `ray start`, a Ray some
other program embedded) and a session whose driver still runs are never touched; a file whose
session has no process left is removed.

Linux only (/proc); elsewhere nothing is recorded or killed. Ray's temp folder is the one an
embedded Ray uses: `$RAY_TMPDIR/ray`, else `$TMPDIR/ray`, else `/tmp/ray` (as Ray picks it), so a
sweep finds what earlier sweeps with the same environment left.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

FOLDER = "fptlab-sessions"
PROC = Path("/proc")
# A path of a program of the ray package (gcs_server, raylet, the dashboard, monitor and log monitor
# scripts), as found in a command line: `.../site-packages/ray/...`.
_RAY_PROGRAM = re.compile(r"[/\\](?:site|dist)-packages[/\\]ray[/\\]")


@dataclass(frozen=True)
class Driver:
    """The process that started an embedded Ray session, as one of the files above records it."""

    session_dir: str
    pid: int
    start: int  # the process's start time, in clock ticks since boot (/proc/<pid>/stat): guards against pid reuse
    boot_id: str
    host: str

    def gone(self) -> bool:
        """True when this driver's process no longer runs. A driver of another host is never gone
        from here: its session is not ours to judge."""
        if self.host != socket.gethostname():
            return False
        if self.boot_id and self.boot_id != boot_id():
            return True
        state = proc_stat(self.pid)
        return state is None or state[0] in "ZX" or state[1] != self.start


@dataclass(frozen=True)
class Reaped:
    """What the cleanup ended for one dead driver's session."""

    driver_pid: int
    session_dir: str
    killed: tuple[str, ...]  # "pid title" of each process killed

    def describe(self) -> str:
        names = sorted({k.split(" ", 1)[1] for k in self.killed})
        return (f"stopped {len(self.killed)} Ray process(es) left behind by an earlier sweep whose driver (pid "
                f"{self.driver_pid}) was killed: {', '.join(names)}")


def supported() -> bool:
    return sys.platform.startswith("linux") and PROC.is_dir()


def ray_temp_root() -> Path:
    """The folder an embedded Ray puts its sessions in (Ray's own default, without importing ray)."""
    base = os.environ.get("RAY_TMPDIR") or (os.environ.get("TMPDIR") if sys.platform.startswith("linux") else None) or "/tmp"
    return Path(base) / "ray"


def boot_id() -> str:
    try:
        return (PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in ticks) of a live process, or None."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[19])


def record_session(session_dir: str | Path, root: Path | None = None) -> Path | None:
    """Note that this process (a sweep driver) started the embedded Ray session in `session_dir`, so
    that a later sweep can end what the session leaves behind if this process is killed. Returns
    the file written (None where unsupported or the folder is not writable)."""
    me = proc_stat(os.getpid()) if supported() else None
    if me is None:
        return None
    folder = (root or ray_temp_root()) / FOLDER
    record = Driver(str(session_dir), os.getpid(), me[1], boot_id(), socket.gethostname())
    path = folder / f"{Path(session_dir).name}-{os.getpid()}.json"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.write_text(json.dumps(record.__dict__))
        tmp.replace(path)
    except OSError:
        return None
    return path


def forget_session(path: Path | None) -> None:
    """Remove a session record (its driver ended Ray itself)."""
    if path is not None:
        try:
            path.unlink()
        except OSError:
            pass


def recorded_drivers(root: Path | None = None) -> list[tuple[Path, Driver]]:
    """Every session record under `root` (Ray's temp folder); unreadable files are skipped."""
    folder = (root or ray_temp_root()) / FOLDER
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            data = json.loads(path.read_text())
            out.append((path, Driver(str(data["session_dir"]), int(data["pid"]), int(data["start"]), str(data["boot_id"]),
                                     str(data["host"]))))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def _argv(pid: int) -> list[str]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def is_ray_program(argv: list[str]) -> bool:
    """A Ray process: a worker or agent (`ray::<title>`) or a program of the ray package."""
    if not argv:
        return False
    if argv[0].startswith("ray::"):
        return True
    return any(_RAY_PROGRAM.search(a) for a in argv[:3])


def _uses(pid: int, argv: list[str], session_dir: str) -> bool:
    """The process names the session folder on its command line or has a file in it open."""
    inside = session_dir.rstrip(os.sep) + os.sep
    if any(inside in a or a == session_dir for a in argv):
        return True
    try:
        fds = list((PROC / str(pid) / "fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd).startswith(inside):
                return True
        except OSError:
            continue
    return False


def session_processes(session_dir: str) -> dict[int, str]:
    """{pid: title} of this user's live Ray processes that belong to the session in `session_dir`."""
    found: dict[int, str] = {}
    if not supported():
        return found
    uid, me = os.getuid(), os.getpid()
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        try:
            if entry.stat().st_uid != uid:
                continue
        except OSError:
            continue
        argv = _argv(pid)
        if not is_ray_program(argv):
            continue
        state = proc_stat(pid)
        if state is None or state[0] in "ZX":
            continue
        if _uses(pid, argv, session_dir):
            found[pid] = argv[0].strip() if argv[0].startswith("ray::") else " ".join(Path(a).name for a in argv[:3] if _RAY_PROGRAM.search(a))[:60]
    return found


def _wait_gone(pids: dict[int, int], timeout: float) -> bool:
    """Wait until none of {pid: start ticks} runs (a zombie counts as gone); True if so."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p, start in pids.items() if (s := proc_stat(p)) is not None and s[0] not in "ZX" and s[1] == start]
        if not left:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def reap_dead_sessions(root: Path | None = None, timeout: float = 5.0) -> list[Reaped]:
    """Kill (SIGKILL) the Ray processes left by recorded sessions whose driver is gone, and remove
    the records of sessions with nothing left. What was killed, per session."""
    if not supported():
        return []
    out = []
    for path, driver in recorded_drivers(root):
        if not driver.gone():
            continue
        found = session_processes(driver.session_dir)
        started = {pid: s[1] for pid in found if (s := proc_stat(pid)) is not None}
        killed = []
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(f"{pid} {found[pid]}")
            except (ProcessLookupError, PermissionError):
                continue
        if _wait_gone(started, timeout):
            forget_session(path)
        if killed:
            out.append(Reaped(driver.pid, driver.session_dir, tuple(killed)))
    return out
