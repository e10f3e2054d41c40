"""Ray processes a killed sweep driver leaves behind, and the next sweep ending them
(`fptlab.sweep.cleanup`): on fake sessions with real processes (fast), and for real: a sweep's
driver killed with SIGKILL, Ray's two agents frozen first so that they can never exit by themselves
(unfrozen they outlive the driver by about a minute), then the same command again (slow)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fptlab.store import Store
from fptlab.sweep import cleanup
from tests.chaos_suite import chaos

pytestmark = pytest.mark.skipif(not cleanup.supported(), reason="the cleanup reads /proc (Linux)")

# A stand-in for a Ray daemon: a program under `.../site-packages/ray/` that keeps a file of its
# session folder open ($LOG: not on its command line, as Ray's workers and agents) and waits.
DAEMON = "import os, time\nlog = open(os.environ['LOG'], 'a')\nprint('up', flush=True)\ntime.sleep(600)\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "ray"


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator:
    started: list[subprocess.Popen] = []
    program = tmp_path / "venv" / "site-packages" / "ray" / "fake_daemon.py"
    program.parent.mkdir(parents=True)
    program.write_text(DAEMON)
    plain = tmp_path / "tail_like.py"  # a user's own program reading a session's log (not Ray's)
    plain.write_text(DAEMON)

    def _spawn(session: Path, ray: bool = True) -> subprocess.Popen:
        (session / "logs").mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen([sys.executable, str(program if ray else plain)], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "LOG": str(session / "logs" / "x.log")})
        assert proc.stdout.readline() == "up\n"  # its file is open
        started.append(proc)
        return proc

    yield _spawn
    for proc in started:
        proc.kill()
        proc.wait()


def dead_driver() -> tuple[int, int]:
    """(pid, start ticks) of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    start = cleanup.proc_stat(proc.pid)[1]
    proc.kill()
    proc.wait()
    return proc.pid, start


def record(root: Path, session: Path, pid: int, start: int, host: str | None = None) -> Path:
    folder = root / cleanup.FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{session.name}-{pid}.json"
    path.write_text(json.dumps({"session_dir": str(session), "pid": pid, "start": start, "boot_id": cleanup.boot_id(),
                                "host": host or socket.gethostname()}))
    return path


def running(proc: subprocess.Popen) -> bool:
    return proc.poll() is None


def test_a_dead_drivers_ray_processes_are_killed_and_its_record_removed(root, spawn):
    session = root / "session_2026-01-01_00-00-00_000000_1"
    daemon = spawn(session)
    path = record(root, session, *dead_driver())
    (reaped,) = cleanup.reap_dead_sessions(root)
    assert daemon.wait(10) == -signal.SIGKILL
    assert reaped.killed == (f"{daemon.pid} fake_daemon.py",) and reaped.session_dir == str(session)
    assert not path.exists()
    assert "stopped 1 Ray process(es) left behind by an earlier sweep" in reaped.describe()
    assert cleanup.reap_dead_sessions(root) == []  # nothing more to do


def test_a_live_drivers_session_is_never_touched(root, spawn):
    session = root / "session_live"
    daemon = spawn(session)
    path = record(root, session, os.getpid(), cleanup.proc_stat(os.getpid())[1])
    assert cleanup.reap_dead_sessions(root) == []
    assert running(daemon) and path.exists()


def test_a_reused_pid_does_not_keep_a_dead_drivers_session(root, spawn):
    session = root / "session_reused"
    daemon = spawn(session)
    record(root, session, os.getpid(), cleanup.proc_stat(os.getpid())[1] - 1)  # this pid, but another process's start
    assert [r.driver_pid for r in cleanup.reap_dead_sessions(root)] == [os.getpid()]
    assert daemon.wait(10) == -signal.SIGKILL


def test_sessions_not_recorded_by_a_sweep_are_never_touched(root, spawn):
    """A cluster started with `ray start` (its session's pid is the exited CLI's) has no record."""
    daemon = spawn(root / "session_ray_start_1234")
    assert cleanup.reap_dead_sessions(root) == []
    assert running(daemon)


def test_only_ray_programs_of_the_session_are_killed(root, spawn):
    """A user's program reading the dead session's log, and a Ray daemon of another session, live on."""
    dead, other = root / "session_dead", root / "session_other"
    victim, reader, bystander = spawn(dead), spawn(dead, ray=False), spawn(other)
    record(root, dead, *dead_driver())
    (reaped,) = cleanup.reap_dead_sessions(root)
    assert [k.split()[0] for k in reaped.killed] == [str(victim.pid)]
    assert victim.wait(10) == -signal.SIGKILL
    assert running(reader) and running(bystander)


def test_a_record_from_another_host_is_left_alone(root, spawn):
    session = root / "session_elsewhere"
    daemon = spawn(session)
    path = record(root, session, *dead_driver(), host="another-host.example")
    assert cleanup.reap_dead_sessions(root) == []
    assert running(daemon) and path.exists()


def test_record_and_forget(root, tmp_path):
    session = root / "session_mine"
    path = cleanup.record_session(session, root=root)
    (found,) = cleanup.recorded_drivers(root)
    assert found[0] == path and found[1].pid == os.getpid() and not found[1].gone()
    cleanup.forget_session(path)
    assert cleanup.recorded_drivers(root) == []
    (root / cleanup.FOLDER / "junk.json").write_text("{not json")
    assert cleanup.recorded_drivers(root) == []  # an unreadable record is skipped


def test_ray_temp_root_follows_ray_tmpdir(monkeypatch, tmp_path):
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    assert cleanup.ray_temp_root() == tmp_path / "ray"


# ---- for real ------------------------------------------------------------------------------------------
SPEC = chaos.SPEC.format(name="leftovers", steps=300, eval_every=20, lrs=[1e-3])  # one cell


@pytest.mark.slow
def test_the_next_sweep_ends_what_a_killed_driver_left(tmp_path, monkeypatch):
    ray_tmp = Path(tempfile.mkdtemp(prefix="flo", dir="/tmp"))  # our own Ray temp folder (socket paths stay short)
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    url = f"sqlite:///{tmp_path / 'fptlab.db'}"
    env = {**os.environ, "FPTLAB_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "RAY_TMPDIR": str(ray_tmp)}
    cmd = [sys.executable, "-m", "fptlab.cli", "sweep", str(spec), "--db", url, "--storage", str(tmp_path / "runs"),
           "--num-cpus", "1", "--no-progress"]
    records = ray_tmp / "ray" / cleanup.FOLDER
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not _checkpointed(url):
            assert driver.poll() is None, f"the sweep exited ({driver.returncode}) before its trial checkpointed"
            assert time.monotonic() < deadline, "timed out waiting for the trial's first checkpoint"
            time.sleep(0.3)
        (path,) = records.glob("*.json")  # the driver recorded its embedded Ray
        assert json.loads(path.read_text())["pid"] == driver.pid
        tree = chaos.process_tree(driver.pid)
        agents = [pid for pid, (_start, title) in tree.items() if title.startswith("ray::") and title.endswith("Agent")]
        assert len(agents) == 2, tree  # ray::DashboardAgent, ray::RuntimeEnvAgent
        for pid in agents:  # stuck (as they are, for a minute, reporting to the dead GCS): they never exit by themselves
            os.kill(pid, signal.SIGSTOP)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(30)
        left = chaos.still_alive(tree)
        assert set(agents) <= set(left)

        again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
        assert chaos.still_alive(tree) == {}, f"left by the killed driver and still running: {chaos.still_alive(tree)}"
        warning = next(line for line in again.stderr.splitlines() if "left behind by an earlier sweep" in line)
        assert f"driver (pid {driver.pid}) was killed" in warning
        assert "ray::DashboardAgent" in warning and "ray::RuntimeEnvAgent" in warning
        assert "Traceback" not in again.stdout + again.stderr
        assert list(records.glob("*.json")) == []  # the dead session's record, and the rerun's own, are gone
        store = Store(url)
        try:
            (trial,) = store.trials()
            assert trial["status"] == "completed"
            assert store.results([trial["config_hash"]])[trial["config_hash"]]["resumed_from"] >= 20
        finally:
            store.close()
    finally:
        ours = [*chaos.process_tree(driver.pid), *cleanup.session_processes(str(ray_tmp))]  # in our own Ray folder only
        for pid in ours:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _checkpointed(url: str) -> bool:
    """The trial is running and has recorded an evaluation (so it has a checkpoint to resume from)."""
    if not Path(url.removeprefix("sqlite:///")).exists():
        return False
    store = Store(url)
    try:
        if store.revision() is None:
            return False
        trials = store.trials()
        return any(t["status"] == "running" and store.count_metrics(t["config_hash"], "test_accuracy") >= 1 for t in trials)
    except Exception:  # noqa: BLE001 - the driver is creating the schema
        return False
    finally:
        store.close()
