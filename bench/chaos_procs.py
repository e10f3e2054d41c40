"""The chaos suite's processes (bench/chaos.py): finding and killing Ray processes, a Ray cluster of
several nodes on this host, one `fptlab sweep` driver, and `Lab`, a fault's workspace.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other chaos_* modules, however this file is loaded

from chaos_audit import CHECKPOINT, Audit, Size, Snapshot, audit, snapshot, try_snapshot

from fptlab.sweep.cleanup import proc_stat


# ---- processes ---------------------------------------------------------------------------------------
def group_members(pgid: int) -> list[int]:
    """Live processes in process group `pgid` (Linux /proc)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def ray_workers(ray_tmp: Path) -> list[int]:
    """Pids of the Ray workers running a trial of ours (Ray passes our own RAY_TMPDIR on to them)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().startswith(b"ray::ImplicitFunc"):
                environ = (cmdline.parent / "environ").read_bytes().split(b"\0")
                if f"RAY_TMPDIR={ray_tmp}".encode() in environ:
                    found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return sorted(found)


def process_tree(root: int) -> dict[int, tuple[int, str]]:
    """{pid: (start time in ticks, title)} of `root` and every live process descended from it (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if (known := _identity(pid)) is not None:
            out[pid] = known
        todo += children.get(pid, [])
    return out


def _identity(pid: int) -> tuple[int, str] | None:
    """(start ticks, title) of a live (not zombie) process, or None."""
    state = proc_stat(pid)
    if state is None or state[0] in "ZX":
        return None
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace").strip()
    except OSError:
        return None
    return state[1], title


def still_alive(processes: dict[int, tuple[int, str]]) -> dict[int, tuple[int, str]]:
    """Those of `processes` (as `process_tree` lists them) that still run: same pid, same start time."""
    return {pid: known for pid, known in processes.items() if (now := _identity(pid)) is not None and now[0] == known[0]}


def kill_ray_processes_in(folder: Path) -> int:
    """SIGKILL this user's Ray processes that use `folder` (a Ray temp folder of ours: command line or
    open files in it); how many. Never touches a Ray of anyone else's temp folder."""
    from fptlab.sweep.cleanup import session_processes

    found = session_processes(str(folder))
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return len(found)


def report_pids(storage: Path, config_hash: str) -> list[int]:
    """The worker pid of each report of one cell, in order, from Tune's result.json files."""
    pids = []
    for path in sorted((storage / "tune").glob("*/*/result.json")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("config", {}).get("config_hash") == config_hash and "pid" in record:
                pids.append(int(record["pid"]))
    return pids


class LocalCluster:
    """A multi-node Ray cluster on this host (`ray.cluster_utils.Cluster`) in our own Ray temp folder:
    a head node with no CPU (no trial runs there; sweep drivers connect to it) and worker nodes of
    1 CPU each, added and killed at will. `close` shuts it down and kills whatever is left in the folder."""

    def __init__(self, ray_tmp: Path) -> None:
        self.ray_tmp = ray_tmp
        self.cluster: Any = None
        self._saved: str | None = None

    def start(self) -> LocalCluster:
        from ray.cluster_utils import Cluster

        self._saved = os.environ.get("RAY_TMPDIR")
        os.environ["RAY_TMPDIR"] = str(self.ray_tmp)  # Ray reads it when the nodes start
        # shutdown_at_exit=False: no exit hooks, no reaper, and this process's group is left as it is.
        self.cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0}, shutdown_at_exit=False)
        return self

    @property
    def address(self) -> str:
        return self.cluster.address

    def add_node(self) -> Any:
        return self.cluster.add_node(num_cpus=1)

    def trial_workers(self, node: Any) -> list[int]:
        """Pids of the Ray workers running a trial (`ray::ImplicitFunc...`) on `node`: its raylet's children."""
        raylet = node.all_processes["raylet"][0].process.pid
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == raylet and \
                        (stat.parent / "cmdline").read_bytes().startswith(b"ray::ImplicitFunc"):
                    found.append(int(stat.parent.name))
            except (OSError, IndexError, ValueError):
                continue
        return sorted(found)

    def freeze_trials(self, node: Any) -> list[int]:
        """SIGSTOP the trial workers of `node`, so its trials stay where they are until the node is killed."""
        workers = self.trial_workers(node)
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        return workers

    def kill_node(self, node: Any, workers: Iterable[int] = ()) -> None:
        """The node dies at once: its Ray processes are SIGKILLed, then its (frozen) trial `workers`."""
        self.cluster.remove_node(node, allow_graceful=False)
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        try:
            if self.cluster is not None:
                self.cluster.shutdown()
        except Exception:  # noqa: BLE001 - a node already gone; what is left is killed below
            pass
        finally:
            kill_ray_processes_in(self.ray_tmp)
            if self._saved is None:
                os.environ.pop("RAY_TMPDIR", None)
            else:
                os.environ["RAY_TMPDIR"] = self._saved


class Driver:
    """One `fptlab sweep` process, in its own process group (Ray's daemons join it)."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.log = log
        self.started = time.monotonic()
        with open(log, "w") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float) -> int | None:
        """The exit status, or None if it is still running after `timeout` seconds."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def reap(self) -> None:
        """SIGKILL whatever is left of this driver's process group."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass


def tail(text: str, lines: int = 2) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:])[:300]


# ---- a fault's workspace -------------------------------------------------------------------------------
SPEC = """[experiment]
name = "chaos-{name}"

[defaults]
task = "bit_xor"
backbone = "bert-tiny"
init = "random"
steps = {steps}
eval_every = {eval_every}
checkpoint_every = {eval_every}
batch_size = 4

[defaults.bit_xor]
n_bits = 3
test_size = 16

[grid]
lr = {lrs}
seed = [0]
"""


class Lab:
    """A fresh database, spec, --storage and Ray temp folder for one fault; everything it started is
    killed and everything it made is removed on the way out (--keep keeps the folder)."""

    keep = False

    def __init__(self, backend: Any, size: Size, name: str) -> None:
        from fptlab.plan import resolve_config
        from fptlab.sweep import load_spec

        self.backend, self.size, self.name = backend, size, name
        self.dir = Path(tempfile.mkdtemp(prefix=f"chaos-{name}-"))
        self.ray_tmp = Path(tempfile.mkdtemp(prefix="fcr", dir="/tmp"))  # Ray's socket paths must stay short
        self.storage = self.dir / "runs"
        self.spec = self.dir / "spec.toml"
        lrs = [round(1e-3 * 0.5**i, 8) for i in range(size.cells)]
        self.spec.write_text(SPEC.format(name=name, steps=size.steps, eval_every=size.eval_every, lrs=lrs))
        self.hashes = [resolve_config(c.config).hash for c in load_spec(self.spec).cells]
        self.urls: list[str] = []
        self.url = self.new_db()
        self.drivers: list[Driver] = []
        self.cleanups: list[Callable[[], None]] = []

    def new_db(self) -> str:
        self.urls.append(self.backend.new_db(self.dir))
        return self.urls[-1]

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: Any) -> None:
        for driver in self.drivers:
            driver.reap()
        for cleanup in reversed(self.cleanups):
            cleanup()
        kill_ray_processes_in(self.ray_tmp)  # e.g. a frozen agent a fault left behind
        for url in self.urls:
            self.backend.drop(url)
        shutil.rmtree(self.ray_tmp, ignore_errors=True)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print(f"  (kept {self.dir})", file=sys.stderr)

    def start(self, *extra: str, url: str | None = None, env: dict[str, str] | None = None, cpus: int = 2,
              address: str | None = None) -> Driver:
        """A sweep on embedded Ray with `cpus` CPUs, or joining the cluster at `address`."""
        ray_args = ["--address", address] if address else ["--num-cpus", str(cpus)]
        cmd = [sys.executable, "-m", "fptlab.cli", "sweep", str(self.spec), "--db", url or self.url,
               "--storage", str(self.storage), *ray_args, "--no-progress", *extra]
        full_env = {k: v for k, v in os.environ.items() if k != "FPTLAB_DB"}
        full_env.update(FPTLAB_OFFLINE="1", HF_HUB_OFFLINE="1", RAY_TMPDIR=str(self.ray_tmp), **(env or {}))
        driver = Driver(cmd, full_env, self.dir, self.dir / f"driver-{len(self.drivers)}.log")
        self.drivers.append(driver)
        return driver

    def run(self, *extra: str, url: str | None = None, env: dict[str, str] | None = None, timeout: float = 600) -> tuple[int | None, str]:
        """Run a sweep to its end: (exit status or None on timeout, its output)."""
        driver = self.start(*extra, url=url, env=env)
        code = driver.wait(timeout)
        driver.reap()
        return code, driver.output

    def snapshot(self, url: str | None = None) -> Snapshot:
        return snapshot(url or self.url)

    def wait_for(self, predicate: Callable[[Snapshot], Any], timeout: float, what: str, driver: Driver | None = None,
                 url: str | None = None) -> Any:
        """Poll the database until `predicate(snapshot)` is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            snap = try_snapshot(url or self.url)
            if snap is not None and (found := predicate(snap)):
                return found
            if driver is not None and driver.proc.poll() is not None:
                raise RuntimeError(f"the driver exited ({driver.proc.returncode}) before {what}: {tail(driver.output)}")
            time.sleep(0.3)
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")

    def mid_trial(self, driver: Driver, timeout: float = 300) -> list[str]:
        """Wait until a trial is running past its second evaluation (a checkpoint exists, its rows are
        recorded) with evaluations still to come; the running trials' hashes."""
        n_evals = len(self.size.eval_steps())

        def ready(snap: Snapshot) -> list[str]:
            running = snap.running()
            return running if any(2 <= snap.evals(h) < n_evals - 1 for h in running) else []

        return self.wait_for(ready, timeout, "a trial running past its second evaluation", driver)

    def audit(self, url: str | None = None, snapshots: Iterable[Snapshot] = (), exclude_tune: Iterable[Path] = ()) -> Audit:
        return audit(url or self.url, self.hashes, self.size, self.storage, snapshots, exclude_tune)

    def checkpoints(self, config_hash: str) -> list[tuple[int, Path]]:
        """(step, file) of the cell's checkpoint files, newest step first."""
        folder = self.storage / "trials" / config_hash
        found = [(int(m["step"]), p) for p in folder.glob("checkpoint-*") if (m := CHECKPOINT.match(p.name))]
        return sorted(found, reverse=True)

    def aside(self, label: str) -> list[Path]:
        return sorted((self.storage / "trials").glob(f"*/*.{label}-*"))
