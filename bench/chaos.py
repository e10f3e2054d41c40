"""Chaos suite: faults a long sweep meets in the wild, run against a real database (SQLite and
PostgreSQL), real embedded Ray and the real CLI, each measured by what the database holds afterwards.

Every fault drives `fptlab sweep` in a subprocess on a small spec (bert-tiny, random init, bit_xor;
a few cells of a few hundred steps, evaluating and checkpointing often), breaks something, lets the
user's obvious recovery run (usually: the same command again), and reports one row:

  survived    yes / NO / skipped (why). "yes" means the fault's own criterion (its docstring) held
              AND rows lost == 0 AND duplicates == 0.
  rows lost   expected (trial, key, step) metric rows missing from the database after recovery, over
              every cell of the spec whatever its status: a trial has train_loss, train_accuracy and
              grad_norm at each step 1..N and test_loss, test_accuracy at each evaluation (every
              eval_every-th step and N). A cell with no trial row loses all of its rows; a trial
              `completed` with a partial curve is counted here and named in the detail.
  duplicates  (a) (trial, key, step) keys recorded with two or more different values anywhere they
              were recorded: database snapshots taken during the fault, the final database, and every
              row a worker reported (Tune's result.json files under --storage, every attempt and every
              driver, as far as Tune flushed them before a kill; a resumed or restarted run must re-log identical values, training is bit-for-bit
              deterministic on one machine), plus (b) rows no correct run records (a step outside
              1..N, an evaluation key at a step that is not an evaluation). The metrics table's primary
              key (trial, key, step) makes an exact repeat impossible, so these are the duplicates
              that can exist.

Faults (PG = PostgreSQL only; SQ = SQLite only):
  kill-9                 the driver is killed with SIGKILL mid-trial; the same command is run again
  sigint                 Ctrl-C mid-sweep; run again
  sigterm                SIGTERM mid-sweep (a scheduler's preemption, `docker stop`); run again
  pg-outage          PG  the server is stopped for ~4 s mid-sweep; the default outage budget rides it out
  pg-outage-budget   PG  stopped past a 2 s budget: a clear non-zero exit; once it is back, run again
  truncated-checkpoint   kill -9, the newest checkpoint the resume would use is cut in half, run again
  hostile-pickle         a pickle that would create a marker file is planted as checkpoints (before the
                         first run as the legacy checkpoint.pt; after a kill -9 over the newest one)
  new-db-old-storage     a second, new --db with the first sweep's --storage
  two-drivers        PG  two drivers start at once on one database and spec
  full-disk              --storage on a tiny tmpfs: a clear "no space left"; room is made; run again
  worker-kill-9          the Ray worker process running a trial is killed; Tune retries it
  node-kill              a two-node Ray cluster on this host (--address): the node running a trial is
                         killed after a second node joined; Tune retries the trial there, from its checkpoint
  driver-kill-leftovers SQ kill -9 of the driver, Ray's agents frozen first (they linger ~1 min anyway);
                         the rerun must end every Ray process the killed driver left behind
  db-deleted         SQ  the SQLite file is deleted mid-sweep: the driver must stop with a clear error
  stalled-driver     PG  the driver is frozen (SIGSTOP) past its lease, a second driver takes its cells
                         over, the first is thawed: its stale worker must not break the curves
  db-locked              another client holds an exclusive lock on the tables for ~6 s mid-sweep

    FPTLAB_OFFLINE=1 python bench/chaos.py                          # everything, both backends
    python bench/chaos.py --backends sqlite --only kill-9 full-disk --quick

PostgreSQL comes from $FPTLAB_TEST_PG_URL (else the local server over its Unix socket); each fault gets
a fresh schema, dropped afterwards. The pg-outage faults really stop the local cluster with
`pg_ctlcluster` (root only, and only when $FPTLAB_TEST_PG_URL is set) for under 10 s and always start
it again. The last line printed is a JSON object with every row; the exit status is 1 if any fault
was not survived.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("FPTLAB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TRAIN_KEYS = ("train_loss", "train_accuracy", "grad_norm")  # logged at every step
EVAL_KEYS = ("test_loss", "test_accuracy")  # logged at every evaluation
CHECKPOINT = re.compile(r"^checkpoint-(?P<tag>[0-9a-f]{8})-a(?P<attempt>\d+)-s(?P<step>\d+)\.pt$")
PG_DEFAULT_URL = "postgresql+psycopg:///fptlab_test"


class Skip(Exception):
    """A prerequisite of the fault is missing here: reported as skipped, never as survived."""


# ---- sizes -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Size:
    steps: int
    eval_every: int
    cells: int = 2  # lr values, one seed

    def eval_steps(self) -> list[int]:
        return [s for s in range(1, self.steps + 1) if s % self.eval_every == 0 or s == self.steps]

    def expected(self) -> set[tuple[str, int]]:
        """The (key, step) rows a completed trial of this size records."""
        rows = {(k, s) for s in range(1, self.steps + 1) for k in TRAIN_KEYS}
        return rows | {(k, s) for s in self.eval_steps() for k in EVAL_KEYS}


@dataclass(frozen=True)
class Plan:
    long: Size  # a trial that is still running when the fault hits
    short: Size  # whole sweeps where timing does not matter
    many: Size  # several cells, for two drivers sharing them


FULL = Plan(long=Size(400, 25), short=Size(60, 20), many=Size(40, 20, cells=6))
QUICK = Plan(long=Size(200, 20, cells=1), short=Size(20, 10, cells=1), many=Size(20, 10, cells=4))


# ---- backends --------------------------------------------------------------------------------------
class SQLite:
    name = "sqlite"

    def unavailable(self) -> str | None:
        return None

    def new_db(self, where: Path) -> str:
        return f"sqlite:///{where / f'fptlab-{uuid.uuid4().hex[:6]}.db'}"

    def drop(self, url: str) -> None:
        pass


class Postgres:
    name = "postgres"

    def __init__(self) -> None:
        self.base = os.environ.get("FPTLAB_TEST_PG_URL") or PG_DEFAULT_URL
        self._reason: str | None = None
        self._checked = False

    def _admin(self, sql: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.base)
        try:
            with engine.begin() as connection:
                connection.execute(text(sql))
        finally:
            engine.dispose()

    def unavailable(self) -> str | None:
        if not self._checked:
            self._checked = True
            try:
                self._admin("SELECT 1")
            except Exception as e:  # noqa: BLE001 - any failure means no server to test against
                self._reason = f"PostgreSQL unreachable ({type(e).__name__}); set FPTLAB_TEST_PG_URL"
        return self._reason

    def new_db(self, where: Path) -> str:
        from sqlalchemy.engine import make_url

        schema = f"fpt_chaos_{uuid.uuid4().hex[:10]}"
        self._admin(f'CREATE SCHEMA "{schema}"')
        url = make_url(self.base)
        options = f"{url.query.get('options', '')} -csearch_path={schema}".strip()
        return url.update_query_dict({"options": options}).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        schema = re.search(r"search_path%3D(\w+)|search_path=(\w+)", url)
        if schema:
            try:
                self._admin(f'DROP SCHEMA IF EXISTS "{schema.group(1) or schema.group(2)}" CASCADE')
            except Exception:  # noqa: BLE001 - best effort; the server may be down after a failed fault
                pass


BACKENDS: dict[str, Any] = {"sqlite": SQLite(), "postgres": Postgres()}


# ---- database reads ----------------------------------------------------------------------------------
@dataclass
class Snapshot:
    """What one database holds: trials by config hash, metric values by (hash, key, step), results."""

    trials: dict[str, dict] = field(default_factory=dict)
    values: dict[tuple[str, str, int], float] = field(default_factory=dict)
    results: dict[str, dict] = field(default_factory=dict)

    def evals(self, config_hash: str) -> int:
        return sum(1 for (h, k, _s) in self.values if h == config_hash and k == "test_accuracy")

    def recorded_through(self, config_hash: str) -> int:
        steps, through = {s for (h, k, s) in self.values if h == config_hash and k == "train_loss"}, 0
        while through + 1 in steps:
            through += 1
        return through

    def running(self) -> list[str]:
        return [h for h, t in self.trials.items() if t["status"] == "running"]


def snapshot(url: str) -> Snapshot:
    """Read the database; an empty Snapshot when it does not exist yet (an SQLite file is never created here)."""
    from fptlab.store import Store

    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return Snapshot()
    store = Store(url, outage_seconds=0)
    try:
        if store.revision() is None:
            return Snapshot()
        trials = {t["config_hash"]: t for t in store.trials()}
        values = {(h, k, s): v for h, k, s, v in store.curves()}
        return Snapshot(trials, values, store.results())
    finally:
        store.close()


def try_snapshot(url: str) -> Snapshot | None:
    try:
        return snapshot(url)
    except Exception:  # noqa: BLE001 - the driver is creating the schema, or the server is down
        return None


def reported_rows(storage: Path, exclude: Iterable[Path] = ()) -> Iterator[tuple[str, str, int, float]]:
    """Every (hash, key, step, value) a worker reported, from Tune's result.json files under `storage`."""
    from fptlab.sinks import decode_float

    skip = {Path(p) for p in exclude}
    for path in sorted((storage / "tune").glob("*/*/result.json")):
        if path.parent.parent in skip:
            continue
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
                config_hash = record["config"]["config_hash"]
                for step, key, value in record.get("fpt_rows") or ():
                    yield config_hash, key, int(step), float(decode_float(value))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a kill, or not a report of ours


# ---- the audit ---------------------------------------------------------------------------------------
@dataclass
class Audit:
    lost: int
    duplicates: int
    notes: list[str]
    final: Snapshot

    def all_completed(self, hashes: Iterable[str]) -> bool:
        return all(self.final.trials.get(h, {}).get("status") == "completed" for h in hashes)

    @property
    def clean(self) -> bool:
        return self.lost == 0 and self.duplicates == 0


def audit(url: str, hashes: list[str], size: Size, storage: Path, snapshots: Iterable[Snapshot] = (),
          exclude_tune: Iterable[Path] = ()) -> Audit:
    """Rows lost and duplicates (see the module docstring) of the cells `hashes` of one spec."""
    final = snapshot(url)
    expected, lost, extra, notes = size.expected(), 0, 0, []
    for h in hashes:
        present = {(k, s) for (t, k, s) in final.values if t == h}
        missing = len(expected - present)
        lost += missing
        extra += len(present - expected)
        status = final.trials.get(h, {}).get("status", "absent")
        if missing and status == "completed":
            notes.append(f"{h} completed with {len(expected) - missing}/{len(expected)} rows")
    seen: dict[tuple[str, str, int], set[str]] = {}
    sources = [final.values, *(s.values for s in snapshots)]
    for values in sources:
        for key, value in values.items():
            seen.setdefault(key, set()).add(repr(float(value)))
    for h, k, s, v in reported_rows(storage, exclude_tune):
        if h in hashes:
            seen.setdefault((h, k, s), set()).add(repr(v))
    divergent = sorted(key for key, vals in seen.items() if key[0] in hashes and len(vals) > 1)
    if divergent:
        notes.append(f"{len(divergent)} rows with 2+ values, e.g. {divergent[0]}: {sorted(seen[divergent[0]])[:2]}")
    if extra:
        notes.append(f"{extra} rows outside the expected steps")
    return Audit(lost, len(divergent) + extra, notes, final)


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
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace").strip()
    except (OSError, IndexError):
        return None
    return None if fields[0] in "ZX" else (int(fields[19]), title)


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


@dataclass
class Verdict:
    ok: bool
    lost: int | None
    duplicates: int | None
    detail: str


def verdict(checks: dict[str, bool], result: Audit | None, *details: str) -> Verdict:
    """Survived iff every named check holds and the audit (if any) is clean; failed checks lead the detail."""
    failed = [name for name, ok in checks.items() if not ok]
    notes = ([f"FAILED: {', '.join(failed)}"] if failed else []) + [d for d in details if d]
    if result is not None:
        notes += result.notes
    ok = not failed and (result is None or result.clean)
    return Verdict(ok, result.lost if result else None, result.duplicates if result else None, "; ".join(notes))


def progress(at_fault: Snapshot, final: Snapshot, hashes: Iterable[str]) -> str:
    """How far the database had each trial when the fault hit, and where its resume started."""
    hashes = list(hashes)
    return (f"recorded through step {', '.join(str(at_fault.recorded_through(h)) for h in hashes)} at the fault, "
            + resumed_from(final, hashes))


def resumed_from(snap: Snapshot, hashes: Iterable[str]) -> str:
    steps = [snap.results.get(h, {}).get("resumed_from") for h in hashes]
    return "resumed from step " + ", ".join("?" if s is None else str(int(s)) for s in steps)


# ---- the faults --------------------------------------------------------------------------------------
FAULTS: dict[str, tuple[Callable[[Any, Plan], Verdict], tuple[str, ...]]] = {}


def fault(name: str, backends: tuple[str, ...] = ("sqlite", "postgres")) -> Callable:
    def register(fn: Callable[[Any, Plan], Verdict]) -> Callable[[Any, Plan], Verdict]:
        FAULTS[name] = (fn, backends)
        return fn

    return register


def _signal_then_rerun(backend: Any, plan: Plan, name: str, sig: int) -> Verdict:
    with Lab(backend, plan.long, name) as lab:
        driver = lab.start()
        hit = lab.mid_trial(driver)
        at_fault = lab.snapshot()
        driver.signal(sig)
        code = driver.wait(90)
        orphans = len(group_members(driver.pid))
        after = lab.snapshot()
        left_running = after.running()
        if sig != signal.SIGKILL:
            driver.reap()  # a driver that did not stop is not what is measured next
        again, out = lab.run()
        result = lab.audit(snapshots=[after])
        checks = {"rerun exit 0": again == 0, "all cells completed": result.all_completed(lab.hashes)}
        if sig != signal.SIGKILL:
            checks[f"driver exits within 90 s of {signal.Signals(sig).name}"] = code is not None
            checks["no trial left running"] = not left_running
        stopped = f"exit {code}" if code is not None else "still running after 90 s"
        return verdict(checks, result, f"{signal.Signals(sig).name} with {len(hit)} running: {stopped}, "
                       f"{len(left_running)} left running, {orphans} processes of its group outlived it",
                       f"rerun exit {again}, {progress(at_fault, result.final, hit)}", tail(out) if again else "")


@fault("kill-9")
def kill_9(backend: Any, plan: Plan) -> Verdict:
    """SIGKILL of the driver mid-trial, then the same command: every cell completes, each step once.
    Ray processes the killed driver left keep running while the second sweep runs, as they would."""
    return _signal_then_rerun(backend, plan, "kill-9", signal.SIGKILL)


@fault("sigint")
def sigint(backend: Any, plan: Plan) -> Verdict:
    """Ctrl-C mid-sweep: the driver stops within 90 s leaving no trial `running`; a rerun completes."""
    return _signal_then_rerun(backend, plan, "sigint", signal.SIGINT)


@fault("sigterm")
def sigterm(backend: Any, plan: Plan) -> Verdict:
    """SIGTERM (how schedulers and `docker stop` end a job): as Ctrl-C."""
    return _signal_then_rerun(backend, plan, "sigterm", signal.SIGTERM)


def _kill_and_tamper(lab: Lab, tamper: Callable[[Path], None]) -> tuple[list[str], list[Path], Snapshot]:
    """kill -9 mid-trial and clear the driver's group; then `tamper` with the newest checkpoint the
    resume would use (step <= the steps the database recorded) of each killed trial."""
    driver = lab.start()
    hit = lab.mid_trial(driver)
    driver.signal(signal.SIGKILL)
    driver.wait(30)
    driver.reap()  # no orphan worker may write checkpoints while the files are altered
    before = lab.snapshot()
    touched = []
    for h in hit:
        usable = [(s, p) for s, p in lab.checkpoints(h) if s <= before.recorded_through(h)]
        if usable:
            tamper(usable[0][1])
            touched.append(usable[0][1])
    return hit, touched, before


@fault("truncated-checkpoint")
def truncated_checkpoint(backend: Any, plan: Plan) -> Verdict:
    """kill -9, the newest usable checkpoint of each killed trial cut to half its bytes, run again:
    the cut file is set aside (.corrupt-*), the trial resumes from an older one or step 0, completes."""
    with Lab(backend, plan.long, "truncated-checkpoint") as lab:
        def cut(path: Path) -> None:
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])

        hit, cut_files, before = _kill_and_tamper(lab, cut)
        again, out = lab.run()
        result = lab.audit(snapshots=[before])
        corrupt = lab.aside("corrupt")
        checks = {"a checkpoint was cut": bool(cut_files), "rerun exit 0": again == 0,
                  "all cells completed": result.all_completed(lab.hashes), "cut files set aside": len(corrupt) >= len(cut_files)}
        cut_steps = ", ".join(CHECKPOINT.match(p.name)["step"] for p in cut_files)
        return verdict(checks, result, f"cut step {cut_steps}; {len(corrupt)} set aside; {resumed_from(result.final, hit)}",
                       tail(out) if again else "")


class _Planted:
    """Pickles as a call to os.system: loading it with plain pickle would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def _hostile_payload(marker: Path) -> dict:
    return {"config_hash": "x", "step": 1, "trainable": {}, "optimizer": {}, "torch_rng": None, "loop": _Planted(marker)}


@fault("hostile-pickle")
def hostile_pickle(backend: Any, plan: Plan) -> Verdict:
    """A crafted pickle that would `touch` a marker file is planted as every cell's legacy
    checkpoint.pt before the first sweep; in full mode the sweep is also killed -9 mid-trial and the
    newest usable checkpoint is overwritten with a crafted torch file before the rerun. The marker
    never appears, every planted file is refused (.refused-*), every cell completes with its curve."""
    size = plan.short if plan is QUICK else plan.long
    with Lab(backend, size, "hostile-pickle") as lab:
        marker = lab.dir / "PWNED"
        for h in lab.hashes:
            (lab.storage / "trials" / h).mkdir(parents=True, exist_ok=True)
            (lab.storage / "trials" / h / "checkpoint.pt").write_bytes(pickle.dumps(_hostile_payload(marker), protocol=2))
        planted, snaps, runs = len(lab.hashes), [], []
        if plan is QUICK:
            runs.append(lab.run())
        else:
            import torch

            _hit, swapped, before = _kill_and_tamper(lab, lambda p: torch.save(_hostile_payload(marker), p))
            planted += len(swapped)
            snaps.append(before)
            runs.append(lab.run())
        result = lab.audit(snapshots=snaps)
        refused = lab.aside("refused")
        checks = {"marker never created": not marker.exists(), "sweeps exit 0": all(code == 0 for code, _ in runs),
                  "all cells completed": result.all_completed(lab.hashes), "every planted file refused": len(refused) >= planted}
        return verdict(checks, result, f"{planted} planted, {len(refused)} refused, {len(lab.aside('untrusted'))} set aside as untrusted",
                       resumed_from(result.final, lab.hashes), *(tail(out) for code, out in runs if code))


@fault("new-db-old-storage")
def new_db_old_storage(backend: Any, plan: Plan) -> Verdict:
    """A complete sweep, then the same spec and --storage with a new, empty --db: every cell trains
    again and records its full curve in the new database (none `completed` from an old checkpoint)."""
    with Lab(backend, plan.short, "new-db-old-storage") as lab:
        first, out1 = lab.run()
        old_tune = list((lab.storage / "tune").glob("*"))
        new_url = lab.new_db()
        second, out2 = lab.run(url=new_url)
        result = lab.audit(url=new_url, exclude_tune=old_tune)
        checks = {"first sweep exit 0": first == 0, "second sweep exit 0": second == 0,
                  "all cells completed in the new db": result.all_completed(lab.hashes)}
        return verdict(checks, result, resumed_from(result.final, lab.hashes), tail(out1) if first else "", tail(out2) if second else "")


# ---- PostgreSQL server faults -------------------------------------------------------------------------
def stoppable_cluster() -> tuple[str, str]:
    if not os.environ.get("FPTLAB_TEST_PG_URL"):
        raise Skip("set FPTLAB_TEST_PG_URL: this fault stops and restarts the local PostgreSQL server")
    if shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        raise Skip("stopping PostgreSQL needs pg_ctlcluster and root")
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout if shutil.which("pg_lsclusters") else ""
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[3] == "online":
            return fields[0], fields[1]
    raise Skip("no online PostgreSQL cluster in pg_lsclusters")


@contextmanager
def server_down(cluster: tuple[str, str]) -> Iterator[Callable[[], float]]:
    """Stop the cluster; the yielded function starts it again and returns how long it was down. It is
    started again on the way out whatever happens: other people use it."""
    down_at, up = [time.monotonic()], [None]

    def start() -> float:
        if up[0] is None:
            subprocess.run(["pg_ctlcluster", *cluster, "start"], capture_output=True, timeout=60)
            up[0] = time.monotonic()
            for _ in range(60):
                if subprocess.run(["pg_isready", "-q"]).returncode == 0:
                    break
                time.sleep(0.25)
        return up[0] - down_at[0]

    try:
        subprocess.run(["pg_ctlcluster", "-m", "fast", *cluster, "stop"], check=True, capture_output=True, timeout=60)
        down_at[0] = time.monotonic()
        yield start
    finally:
        start()


@fault("pg-outage", backends=("postgres",))
def pg_outage(backend: Any, plan: Plan) -> Verdict:
    """The server is stopped for ~4 s mid-sweep with the default outage budget: the sweep finishes
    with exit 0 and nothing lost."""
    cluster = stoppable_cluster()
    with Lab(backend, plan.long, "pg-outage") as lab:
        driver = lab.start()
        hit = lab.mid_trial(driver)
        with server_down(cluster) as start:
            time.sleep(4)
            down = start()
        code = driver.wait(600)
        result = lab.audit()
        noticed = "Lost the database" in driver.output
        checks = {"sweep exit 0": code == 0, "all cells completed": result.all_completed(lab.hashes)}
        return verdict(checks, result, f"down {down:.1f} s with {len(hit)} running; outage logged: {'yes' if noticed else 'no'}",
                       tail(driver.output) if code else "")


@fault("pg-outage-budget", backends=("postgres",))
def pg_outage_budget(backend: Any, plan: Plan) -> Verdict:
    """Down longer than FPTLAB_DB_OUTAGE_SECONDS=2: the sweep exits non-zero with a clear message (it
    names the outage, no traceback); with the server back, the same command finishes, nothing lost."""
    cluster = stoppable_cluster()
    with Lab(backend, plan.long, "pg-outage-budget") as lab:
        driver = lab.start(env={"FPTLAB_DB_OUTAGE_SECONDS": "2"})
        lab.mid_trial(driver)
        with server_down(cluster) as start:
            code = driver.wait(7)
            down = start()
        code = driver.wait(180) if code is None else code
        driver.reap()
        text = driver.output
        left = lab.snapshot().running()
        again, out = lab.run()
        result = lab.audit()
        checks = {"first sweep exits non-zero": code not in (0, None), "message names the outage": "unreachable for" in text,
                  "no traceback": "Traceback" not in text, "rerun exit 0": again == 0, "all cells completed": result.all_completed(lab.hashes)}
        message = next((line.strip() for line in text.splitlines() if "unreachable for" in line), tail(text, 1))
        return verdict(checks, result, f"down {down:.1f} s: exit {code}, {len(left)} left running: {message[:260]}",
                       f"rerun exit {again}", tail(out) if again else "")


@fault("two-drivers", backends=("postgres",))
def two_drivers(backend: Any, plan: Plan) -> Verdict:
    """Two drivers start together on one database and spec (one CPU each): both exit 0, every cell
    runs exactly once (attempts == 1), nothing lost."""
    with Lab(backend, plan.many, "two-drivers") as lab:
        drivers = [lab.start(cpus=1), lab.start(cpus=1)]
        codes = [d.wait(600) for d in drivers]
        result = lab.audit()
        attempts = sorted(t.get("attempts") for t in result.final.trials.values())
        split = {}
        for d in drivers:
            split[d.pid] = sum(1 for t in result.final.trials.values() if str(t.get("owner", "")).split(":")[1:2] == [str(d.pid)])
        checks = {"both exit 0": codes == [0, 0], "all cells completed": result.all_completed(lab.hashes),
                  "each cell run once": attempts == [1] * len(lab.hashes)}
        return verdict(checks, result, f"exits {codes}; attempts {attempts}; cells per driver {sorted(split.values())}",
                       *(tail(d.output) for d, c in zip(drivers, codes) if c != 0))


@fault("stalled-driver", backends=("postgres",))
def stalled_driver(backend: Any, plan: Plan) -> Verdict:
    """Driver A is frozen (SIGSTOP) mid-trial while its Ray workers keep training; once A's lease has
    lapsed, driver B starts with that lease (the shortest allowed) and takes A's trials over; then A is thawed.
    A's late reports must be dropped and A must stop those trials: B exits 0, every cell completes,
    nothing lost, no step with two values."""
    from fptlab.sweep import executor

    lease = getattr(executor, "HEARTBEAT_SECONDS", 30.0) + 5
    with Lab(backend, plan.long, "stalled-driver") as lab:
        a = lab.start()
        hit = lab.mid_trial(a)
        a.signal(signal.SIGSTOP)
        try:
            time.sleep(lease + 1)  # A's last heartbeat came before the freeze: its lease has lapsed now
            b = lab.start("--lease", f"{lease:g}")
            taken = lab.wait_for(lambda s: s if all(s.trials[h]["attempts"] >= 2 for h in hit) else None, 240,
                                 "driver B to take the stalled trials over", b)
        finally:
            a.signal(signal.SIGCONT)
        codes = [a.wait(600), b.wait(600)]
        result = lab.audit(snapshots=[taken])
        checks = {"driver B exit 0": codes[1] == 0, "all cells completed": result.all_completed(lab.hashes)}
        return verdict(checks, result, f"A froze with {len(hit)} running, B took them over; exits A {codes[0]}, B {codes[1]}",
                       f"attempts {sorted(t['attempts'] for t in result.final.trials.values())}",
                       tail(a.output) if codes[0] else "", tail(b.output) if codes[1] else "")


# ---- storage and process faults -------------------------------------------------------------------------
@fault("full-disk")
def full_disk(backend: Any, plan: Plan) -> Verdict:
    """--storage on a tmpfs too small for the checkpoints: the sweep fails with "no space left on"
    (no traceback) and leaves no .tmp file; after the tmpfs is grown (room made), the same command
    with --retry-failed completes every cell, nothing lost."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        raise Skip("mounting a tmpfs needs root and mount")
    with Lab(backend, plan.short, "full-disk") as lab:
        lab.storage.mkdir(parents=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(lab.storage)], capture_output=True, text=True)
        if done.returncode != 0:
            raise Skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        lab.cleanups.append(lambda: subprocess.run(["umount", "-l", str(lab.storage)], capture_output=True))
        first, out = lab.run()
        trials = lab.snapshot().trials.values()
        errors = " ".join(str(t.get("error") or "") for t in trials)
        statuses = ", ".join(sorted(str(t["status"]) for t in trials))
        temporary = [p.name for p in lab.storage.rglob("*") if ".tmp" in p.name]
        subprocess.run(["mount", "-o", "remount,size=64m", str(lab.storage)], check=True, capture_output=True)
        again, out2 = lab.run("--retry-failed")
        result = lab.audit()
        said = "no space left on" in out + errors
        message = next((m for m in (out + "\n" + errors).splitlines() if "no space left on" in m), tail(out, 1))
        checks = {"first sweep exits non-zero": first not in (0, None), "says 'no space left on'": said,
                  "no traceback": "Traceback" not in out, "no .tmp file left": not temporary,
                  "rerun exit 0": again == 0, "all cells completed": result.all_completed(lab.hashes)}
        return verdict(checks, result, f"exit {first} ({statuses}), last line {tail(out, 1)!r}: {message.strip()[:160]}",
                       f"{out.count('Traceback')} tracebacks", f"tmp files {temporary[:3]}" if temporary else "",
                       f"rerun exit {again}", tail(out2) if again else "")


@fault("worker-kill-9")
def worker_kill_9(backend: Any, plan: Plan) -> Verdict:
    """SIGKILL of a Ray worker process training a trial (`ray::ImplicitFunc.train`): Tune
    retries the trial (--retries 1), which resumes from its checkpoint; exit 0, nothing lost."""
    with Lab(backend, plan.long, "worker-kill-9") as lab:
        driver = lab.start()
        hit = lab.mid_trial(driver)
        workers = ray_workers(lab.ray_tmp)
        if not workers:
            raise RuntimeError("no Ray worker process of this sweep found")
        pid = workers[0]
        os.kill(pid, signal.SIGKILL)
        code = driver.wait(600)
        result = lab.audit()
        checks = {"sweep exit 0": code == 0, "all cells completed": result.all_completed(lab.hashes)}
        return verdict(checks, result, f"killed worker {pid}; exit {code}; {resumed_from(result.final, hit)}",
                       f"attempts {sorted(t['attempts'] for t in result.final.trials.values())}", tail(driver.output) if code else "")


MAX_OUTPUT_LINES = 15  # a sweep of a few cells through one dead node: the summary and a line or two from Ray


def quiet_output(text: str) -> tuple[bool, str]:
    """Whether a sweep's output is free of Ray's flood (no traceback, no raylet log dump, a few lines)."""
    lines = [line for line in text.splitlines() if line.strip()]
    dumps = sum("[state-dump]" in line for line in lines)
    ok = "Traceback" not in text and not dumps and len(lines) <= MAX_OUTPUT_LINES
    return ok, f"{len(lines)} lines of output, {text.count('Traceback')} tracebacks, {dumps} raylet log lines"


@fault("node-kill")
def node_kill(backend: Any, plan: Plan) -> Verdict:
    """A Ray cluster of two nodes on this host: a head with no CPU, which the sweep joins with --address,
    and one 1-CPU worker node. Mid-trial (the trial's worker frozen first, so it is caught mid-way) a
    second worker node joins and the first is killed (SIGKILL of all its processes). Tune retries the
    trial (--retries 1) on the second node, resuming from its checkpoint on the shared --storage: exit
    0, every cell completed, the killed trial's reports after the kill come from a worker of the second
    node, the output is not flooded (no traceback, no raylet log dump, at most 15 lines), nothing lost."""
    with Lab(backend, plan.long, "node-kill") as lab:
        cluster = LocalCluster(lab.ray_tmp)
        lab.cleanups.append(cluster.close)
        cluster.start()
        first = cluster.add_node()
        driver = lab.start(address=cluster.address)
        lab.mid_trial(driver)
        frozen = cluster.freeze_trials(first)
        at_kill = lab.snapshot()
        hit = [h for h in at_kill.running() if at_kill.evals(h) >= 1]  # (a claimed cell may wait, PENDING, for a CPU)
        second = cluster.add_node()
        cluster.kill_node(first, frozen)
        on_second: set[int] = set()
        while (code := driver.wait(0.2)) is None:
            on_second.update(cluster.trial_workers(second))
            if time.monotonic() - driver.started > 600:
                break
        result = lab.audit(snapshots=[at_kill])
        moved = {h: [p for p in dict.fromkeys(report_pids(lab.storage, h)) if p not in frozen] for h in hit}
        quiet, noise = quiet_output(driver.output)
        checks = {"one trial worker frozen on the killed node": len(frozen) == len(hit) >= 1, "sweep exit 0": code == 0,
                  "all cells completed": result.all_completed(lab.hashes),
                  "retried on the second node": all(len(p) == 1 and p[0] in on_second for p in moved.values()),
                  "resumed from a checkpoint": all((result.final.results.get(h, {}).get("resumed_from") or 0) > 0 for h in hit),
                  "output not flooded": quiet}
        return verdict(checks, result, f"killed the node running {len(hit)} trial(s); exit {code}; {progress(at_kill, result.final, hit)}",
                       f"attempts {sorted(t['attempts'] for t in result.final.trials.values())}", noise,
                       tail(driver.output) if code else "")


@fault("driver-kill-leftovers", backends=("sqlite",))
def driver_kill_leftovers(backend: Any, plan: Plan) -> Verdict:
    """kill -9 of the driver (embedded Ray) mid-trial. Ray's two agents outlive it by about a minute
    (they try to tell the dead GCS that the raylet died); here they are frozen first, so they stay
    until killed whatever the timing. The same command again must end every Ray process the killed
    driver left before it starts Ray, and say so; then exit 0, every cell completed, nothing lost."""
    with Lab(backend, plan.long, "driver-kill-leftovers") as lab:
        driver = lab.start()
        lab.mid_trial(driver)
        tree = process_tree(driver.pid)
        frozen = [pid for pid, (_start, title) in tree.items() if title.startswith("ray::") and title.endswith("Agent")]
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        driver.signal(signal.SIGKILL)
        driver.wait(30)
        left = still_alive(tree)
        again, out = lab.run()
        after = still_alive(tree)
        result = lab.audit()
        said = "left behind by an earlier sweep" in out
        checks = {"the frozen agents outlived the driver": bool(frozen) and all(pid in left for pid in frozen),
                  "rerun ended all it left": not after, "rerun says so": said, "rerun exit 0": again == 0,
                  "all cells completed": result.all_completed(lab.hashes)}
        names = sorted({title for _start, title in left.values()})
        return verdict(checks, result, f"{len(left)} processes outlived the driver ({', '.join(names)}); {len(after)} left after the rerun",
                       next((line.strip() for line in out.splitlines() if "left behind by an earlier sweep" in line), ""),
                       resumed_from(result.final, lab.hashes), tail(out) if again else "")


@fault("db-deleted", backends=("sqlite",))
def db_deleted(backend: Any, plan: Plan) -> Verdict:
    """The SQLite file (and its -wal/-shm/-journal) is deleted mid-sweep. Nothing can save those
    rows; what is measured is that the driver notices: it exits non-zero within 10 minutes with a
    message naming the database and no traceback, rather than finishing `successfully` into a file
    that no longer exists. Rows lost / duplicates do not apply (-)."""
    with Lab(backend, plan.long, "db-deleted") as lab:
        driver = lab.start()
        lab.mid_trial(driver)
        path = Path(lab.url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        code = driver.wait(600)
        text = driver.output
        recreated = path.exists()
        said = "it reported success: what it recorded after the deletion went into the unlinked file" if code == 0 else tail(text)
        checks = {"driver exits": code is not None, "exits non-zero": code not in (0, None),
                  "message names the database": path.name in text or "database" in text.lower(), "no traceback": "Traceback" not in text}
        return verdict(checks, None, f"exit {code}; file {'re-created' if recreated else 'not re-created'}: {said}")


@fault("db-locked")
def db_locked(backend: Any, plan: Plan) -> Verdict:
    """Another client holds an exclusive lock on the database (SQLite: BEGIN EXCLUSIVE; PostgreSQL:
    LOCK TABLE trials, metrics IN ACCESS EXCLUSIVE MODE) for 6 s mid-sweep: the driver waits, the
    sweep exits 0, nothing lost."""
    with Lab(backend, plan.long, "db-locked") as lab:
        driver = lab.start()
        lab.mid_trial(driver)
        held = _hold_lock(lab.url, 6.0)
        code = driver.wait(600)
        result = lab.audit()
        checks = {"sweep exit 0": code == 0, "all cells completed": result.all_completed(lab.hashes)}
        return verdict(checks, result, f"lock held {held:.1f} s; exit {code}", tail(driver.output) if code else "")


def _hold_lock(url: str, seconds: float) -> float:
    if url.startswith("sqlite:///"):
        connection = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=60, isolation_level=None)
        try:
            connection.execute("BEGIN EXCLUSIVE")
            began = time.monotonic()
            time.sleep(seconds)
            connection.execute("ROLLBACK")
            return time.monotonic() - began
        finally:
            connection.close()
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("LOCK TABLE trials, metrics IN ACCESS EXCLUSIVE MODE"))
            began = time.monotonic()
            time.sleep(seconds)
            return time.monotonic() - began
    finally:
        engine.dispose()


# ---- running and reporting -------------------------------------------------------------------------------
@dataclass
class Row:
    fault: str
    backend: str
    survived: str  # "yes", "NO", or "skipped (why)"
    rows_lost: int | None
    duplicates: int | None
    detail: str
    seconds: float


def run_fault(name: str, backend_name: str, plan: Plan = FULL) -> Row:
    """Run one fault against one backend; never raises (a harness error is a NO with its reason)."""
    fn, _ = FAULTS[name]
    backend = BACKENDS[backend_name]
    began = time.monotonic()
    try:
        if (reason := backend.unavailable()) is not None:
            raise Skip(reason)
        v = fn(backend, plan)
        survived, lost, dups, detail = ("yes" if v.ok else "NO"), v.lost, v.duplicates, v.detail
    except Skip as e:
        survived, lost, dups, detail = f"skipped ({e})", None, None, ""
    except Exception as e:  # noqa: BLE001 - reported in the table
        survived, lost, dups = "NO", None, None
        detail = f"{type(e).__name__}: {e} [{traceback.extract_tb(e.__traceback__)[-1].lineno}]"
    return Row(name, backend_name, survived, lost, dups, detail, round(time.monotonic() - began, 1))


def table(rows: list[Row]) -> str:
    head = ("fault", "backend", "survived?", "rows lost", "duplicates", "seconds", "detail")
    cells = [head] + [(r.fault, r.backend, r.survived if len(r.survived) < 50 else r.survived[:47] + "...",
                       "-" if r.rows_lost is None else str(r.rows_lost), "-" if r.duplicates is None else str(r.duplicates),
                       f"{r.seconds:.0f}", r.detail) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head) - 1)]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(head) - 1)) + "  " + c[-1] for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 6)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--only", nargs="+", choices=sorted(FAULTS), metavar="NAME", help=f"faults to run: {', '.join(FAULTS)}")
    parser.add_argument("--quick", action="store_true", help="smaller sweeps (what CI runs)")
    parser.add_argument("--keep", action="store_true", help="keep each fault's folder (spec, logs, storage) for inspection")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if unknown := [b for b in backends if b not in BACKENDS]:
        parser.error(f"unknown backend(s) {unknown}; choose from {sorted(BACKENDS)}")
    Lab.keep = args.keep
    plan = QUICK if args.quick else FULL
    rows = []
    for name in args.only or FAULTS:
        for backend in backends:
            if backend in FAULTS[name][1]:
                print(f"[{time.strftime('%H:%M:%S')}] {name} on {backend} ...", file=sys.stderr, flush=True)
                rows.append(run_fault(name, backend, plan))
                print(f"    {rows[-1].survived}  {rows[-1].detail}", file=sys.stderr, flush=True)
    print(table(rows))
    counts = {k: sum(1 for r in rows if r.survived.startswith(p)) for k, p in (("survived", "yes"), ("not_survived", "NO"), ("skipped", "skipped"))}
    print(json.dumps({"chaos": [asdict(r) for r in rows], "quick": args.quick, **counts}))
    return 1 if counts["not_survived"] else 0


if __name__ == "__main__":
    sys.exit(main())
