"""Results-store throughput: batched metric ingest (SQLite and PostgreSQL) and the per-trial overhead of a sweep.

1. Ingest. Per backend a fresh database (SQLite: a temporary file; PostgreSQL: a fresh schema `bench_<random>`
   selected through the connection's search_path, as tests/store/conftest.py isolates its tests, dropped
   afterwards) is migrated to head; an experiment and one trial per measurement are added and claimed through
   the Store API (`upsert_experiment`, `add_trials`, `claim`). Then `Store.log_metrics(config_hash, rows)` is
   timed with the rows a training run produces (train_loss / train_accuracy / grad_norm every step,
   test_accuracy every 10th; about 1% NaN / ±inf, checked to come back exactly), in batches of 200, 1000 and
   5000 rows per call. Each measurement writes `--rows` new rows into its own trial; batch sizes are rotated
   over `--repeats` rounds and the figure is the median rows/s. Paths timed:
     driver  `log_metrics(hash, rows)`, as the sweep driver's StoreCallback calls it;
     sink    `log_metrics(hash, rows, owner=...)`, as StoreSink calls it (adds one ownership check per call);
   and, for reference (`--no-floor` skips them), outside the store:
     floor   the store's own INSERT .. ON CONFLICT sent through the bare DB-API driver (executemany, one
             commit per batch): the best the store can do without changing its SQL;
     unnest  (PostgreSQL) one INSERT .. SELECT FROM unnest(<5 arrays>) .. ON CONFLICT per batch;
     engine  one INSERT .. SELECT of `--rows` rows generated inside the database: the engine's own ceiling
             for this upsert on this machine (no client, driver or Python).
   A backend short of the target is profiled (cProfile of a few calls of the largest batch; `--profile
   always|never` to force) and its time split by layer (fptlab / SQLAlchemy / driver / stdlib).

2. Sweep overhead. `--trials` short bit_xor trials (random-init `bert-tiny`, 30 steps, evaluation every
   10, 64 test examples, seeds 0..n-1) built in memory with `spec_from_dict` and run by `run_sweep` on an
   embedded Ray (num_cpus=2, cpus_per_trial=1) into a temporary SQLite store. The script wraps, without
   changing what they do, a few driver-side hooks to timestamp events: `init_ray` (Ray start-up), each claim
   (ClaimingSearcher.suggest), Tune's trial start and every report reaching the driver (StoreCallback), and
   `ray.shutdown`. A trial's own training time is the `wall_seconds` result it stores (its training loop,
   after data and model set-up). Per-trial start overhead = (trial phase × concurrency − Σ wall_seconds) / n,
   the trial phase running from Ray being up to the last trial's finish report (Ray's shut-down is shown
   separately, and the same figure over the whole sweep after Ray is up beside it). The slot-seconds are
   then split into one-off costs (Tune set-up, a new worker actor per slot) and the steady-state cost of a
   trial on a reused actor, which gives the sweep size from which the mean meets the target. A fresh
   interpreter doing what a new worker does (imports, train() set-up) is timed alone for reference.

Targets: >= 100k rows/s batched ingest per backend; per-trial start overhead <= 3 s after Ray is up.
The machine's load average is printed: on a busy machine every figure is low and noisy.

    FPTLAB_OFFLINE=1 HF_HUB_OFFLINE=1 python bench/store_ingest.py                      # a few minutes
    python bench/store_ingest.py --backends sqlite --rows 20000 --repeats 2 --skip-sweep   # quick
The last line of output is a JSON object with every figure.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import pstats
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("FPTLAB_OFFLINE", "1")  # the sweep trains random-init tiny bodies: never reach the hub
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from fptlab.config import config_from_dict  # noqa: E402
from fptlab.store import Store, mask_url, new_owner_id  # noqa: E402
from fptlab.store.models import encode_float  # noqa: E402

TARGET_ROWS_PER_S = 100_000
TARGET_START_OVERHEAD_S = 3.0
DEFAULT_PG_URL = "postgresql+psycopg:///fptlab_test"  # the local server tests/store/conftest.py uses
EVAL_EVERY = 10
MODES = ("driver", "sink")
UPSERT_SQL = (
    "INSERT INTO metrics (trial_id, key, step, value, value_kind) VALUES ({p}, {p}, {p}, {p}, {p}) "
    "ON CONFLICT (trial_id, key, step) DO UPDATE SET value = excluded.value, value_kind = excluded.value_kind"
)
UNNEST_SQL = (  # PostgreSQL: a whole batch as one statement with five array parameters
    "INSERT INTO metrics (trial_id, key, step, value, value_kind) "
    "SELECT %s, u.k, u.s, u.v, u.vk FROM unnest(%s::text[], %s::int[], %s::float8[], %s::text[]) AS u(k, s, v, vk) "
    "ON CONFLICT (trial_id, key, step) DO UPDATE SET value = excluded.value, value_kind = excluded.value_kind"
)
_CEILING_TAIL = (
    "ON CONFLICT (trial_id, key, step) DO UPDATE SET value = excluded.value, value_kind = excluded.value_kind"
)
CEILING_SQL = {  # the same upsert of n rows generated by the database itself
    "sqlite": "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :n) "
    "INSERT INTO metrics (trial_id, key, step, value, value_kind) "
    "SELECT :t, 'k' || (n % 4), n, n * 0.5, 'finite' FROM g WHERE true " + _CEILING_TAIL,
    "postgresql": "INSERT INTO metrics (trial_id, key, step, value, value_kind) "
    "SELECT :t, 'k' || (n % 4), n, n * 0.5, 'finite' FROM generate_series(1, :n) AS n " + _CEILING_TAIL,
}


# ---- workload ----------------------------------------------------------------------------------------------
def training_rows(n: int, seed: int = 0) -> list[tuple[int, str, float]]:
    """`n` (step, key, value) rows as a training run logs them, about 1% of them NaN or ±inf."""
    rng = random.Random(seed)
    rows: list[tuple[int, str, float]] = []
    step = 0
    while len(rows) < n:
        step += 1
        loss = 2.0 / math.sqrt(step) + rng.random() * 0.1
        rows.append((step, "train_loss", math.nan if rng.random() < 0.01 else loss))
        rows.append((step, "train_accuracy", min(1.0, 0.5 + step * 1e-4)))
        rows.append((step, "grad_norm", rng.choice((math.inf, -math.inf)) if rng.random() < 0.02 else rng.random() * 3))
        if step % EVAL_EVERY == 0:
            rows.append((step, "test_accuracy", math.nan if rng.random() < 0.01 else rng.random()))
    return rows[:n]


def batches(rows: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


# ---- databases -----------------------------------------------------------------------------------------------
@contextmanager
def sqlite_database() -> Iterator[str]:
    folder = tempfile.mkdtemp(prefix="fptlab-bench-")
    try:
        yield f"sqlite:///{os.path.join(folder, 'ingest.db')}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def pg_unreachable(base_url: str) -> str | None:
    try:
        engine = create_engine(base_url)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as e:  # noqa: BLE001 - any failure means "no server to measure"
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return f"PostgreSQL at {mask_url(base_url)} is unreachable ({type(e).__name__}: {first[:160]})"
    return None


def _pg_admin(base_url: str, sql: str) -> None:
    engine = create_engine(base_url)
    with engine.begin() as connection:
        connection.execute(text(sql))
    engine.dispose()


@contextmanager
def postgres_database(base_url: str) -> Iterator[str]:
    """A fresh schema on the server, selected via search_path in the URL; dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    _pg_admin(base_url, f'CREATE SCHEMA "{schema}"')
    try:
        url = make_url(base_url)
        options = f"{url.query.get('options', '')} -csearch_path={schema}".strip()
        yield url.update_query_dict({"options": options}).render_as_string(hide_password=False)
    finally:
        _pg_admin(base_url, f'DROP SCHEMA "{schema}" CASCADE')


# ---- 1. ingest -------------------------------------------------------------------------------------------------
class Floor:
    """The same rows through the bare DB-API connection, one transaction per batch: `floor` sends the store's
    own upsert as an executemany; `unnest` (PostgreSQL) sends one INSERT .. SELECT FROM unnest(arrays)."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        self.connection = self.engine.raw_connection()
        self.sqlite = self.engine.dialect.name == "sqlite"
        self.sql = UPSERT_SQL.format(p="?" if self.sqlite else "%s")
        if self.sqlite:  # what the store's connections set (dialect._sqlite_connect); WAL is already on the file
            cursor = self.connection.cursor()
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.close()
            self.connection.commit()

    def log(self, trial_id: int, rows: Sequence[tuple[int, str, float]]) -> None:
        params = [(trial_id, key, int(step), *encode_float(value)) for step, key, value in rows]
        cursor = self.connection.cursor()
        cursor.executemany(self.sql, params)
        cursor.close()
        self.connection.commit()

    def log_unnest(self, trial_id: int, rows: Sequence[tuple[int, str, float]]) -> None:
        keys, steps, values, kinds = [], [], [], []
        for step, key, value in rows:
            stored, kind = encode_float(value)
            keys.append(key)
            steps.append(int(step))
            values.append(stored)
            kinds.append(kind)
        cursor = self.connection.cursor()
        cursor.execute(UNNEST_SQL, (trial_id, keys, steps, values, kinds))
        cursor.close()
        self.connection.commit()

    def close(self) -> None:
        self.connection.close()
        self.engine.dispose()


def engine_ceiling(url: str, trial_id: int, n: int) -> float:
    """rows/s of ONE upsert of `n` rows generated inside the database: no client, no driver, no Python."""
    engine = create_engine(url)
    sql = CEILING_SQL["sqlite" if engine.dialect.name == "sqlite" else "postgresql"]
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        connection.commit()
        t = time.perf_counter()
        with connection.begin():
            connection.execute(text(sql), {"t": trial_id, "n": n})
        seconds = time.perf_counter() - t
    engine.dispose()
    return n / seconds


def trial_ids(url: str, hashes: Sequence[str]) -> dict[str, int]:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT config_hash, id FROM trials"))
        found = {h: i for h, i in rows if h in set(hashes)}
    engine.dispose()
    return found


def ingest_backend(name: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    rows = training_rows(args.rows, seed=1)
    warm_rows = training_rows(2000, seed=2)
    sizes = args.batch_sizes
    bare = (["floor"] + (["unnest"] if name == "postgres" else [])) if args.floor else []
    modes = args.modes + bare
    store = Store(url)
    t = time.perf_counter()
    store.upgrade()
    setup: dict[str, Any] = {"migrate_s": time.perf_counter() - t}
    # One trial per measurement (so that every timed call inserts new rows), plus warm-up, profile and ceiling trials.
    slots: list[Any] = [(m, b, r) for r in range(args.repeats) for b in sizes for m in modes]
    slots += [("engine", 0, r) for r in range(args.repeats)] if args.floor else []
    # Real run configs, one per slot; a random seed offset keeps every benchmark run's trials new.
    base = uuid.uuid4().int % 10**9
    configs = {slot: config_from_dict({"task": "bit_xor", "backbone": "gpt2-tiny", "init": "random", "seed": base + i})
               for i, slot in enumerate([*slots, "warmup", *(("profile", b) for b in sizes)])}
    hashes = {slot: cfg.hash for slot, cfg in configs.items()}
    t = time.perf_counter()
    experiment = store.upsert_experiment(f"bench-ingest-{uuid.uuid4().hex[:6]}", "store_ingest benchmark", "{}", "0" * 16)
    store.add_trials(experiment, list(configs.values()))
    owner, host = new_owner_id(), socket.gethostname()
    for h in hashes.values():
        if store.claim(h, owner, host, lease_seconds=3600, max_attempts=1) is None:
            raise RuntimeError(f"could not claim trial {h}")
    setup["trials"] = len(hashes)
    setup["setup_s"] = time.perf_counter() - t
    ids = trial_ids(url, list(hashes.values()))
    floor = Floor(url) if bare else None

    # Warm-up: connections, pool, trial-id cache, page cache. Also checks that NaN/±inf come back exactly.
    store.log_metrics(hashes["warmup"], warm_rows)
    back = {(step, key): value for _, key, step, value in store.curves([hashes["warmup"]])}
    for step, key, value in warm_rows:
        got = back[step, key]
        if not (got == value or (math.isnan(got) and math.isnan(value))):
            raise RuntimeError(f"{name}: ({step}, {key}) came back as {got!r}, logged {value!r}")
    if floor is not None:
        floor.log(ids[hashes["warmup"]], warm_rows[:500])
        if "unnest" in bare:
            floor.log_unnest(ids[hashes["warmup"]], warm_rows[500:1000])

    samples: dict[tuple[str, int], list[float]] = {(m, b): [] for m in modes for b in sizes}
    ceiling: list[float] = []
    for r in range(args.repeats):
        order = sizes[r % len(sizes):] + sizes[: r % len(sizes)]  # rotate so that drift lands on every size alike
        for b in order:
            for m in modes:
                h = hashes[(m, b, r)]
                t = time.perf_counter()
                if m == "floor":
                    for part in batches(rows, b):
                        floor.log(ids[h], part)  # type: ignore[union-attr]
                elif m == "unnest":
                    for part in batches(rows, b):
                        floor.log_unnest(ids[h], part)  # type: ignore[union-attr]
                else:
                    who = owner if m == "sink" else None
                    for part in batches(rows, b):
                        if not store.log_metrics(h, part, owner=who):
                            raise RuntimeError(f"{name}: log_metrics refused trial {h}")
                samples[(m, b)].append(len(rows) / (time.perf_counter() - t))
        if args.floor:
            ceiling.append(engine_ceiling(url, ids[hashes[("engine", 0, r)]], len(rows)))
        line = "  ".join(f"{m}/{b} {samples[(m, b)][-1]:,.0f}" for b in sizes for m in modes)
        print(f"  [{name}] round {r + 1}/{args.repeats} rows/s: {line}" + (f"  engine {ceiling[-1]:,.0f}" if ceiling else ""), flush=True)
    for m in modes:  # every measurement wrote all its rows, once
        counted = store.count_metrics(hashes[(m, sizes[0], 0)])
        if counted != len(rows):
            raise RuntimeError(f"{name}/{m}: expected {len(rows)} metric rows, the store holds {counted}")

    median = {k: statistics.median(v) for k, v in samples.items()}
    out: dict[str, Any] = {
        "database": mask_url(url) if name == "postgres" else "sqlite (temporary file)",
        **{k: round(v, 3) if isinstance(v, float) else v for k, v in setup.items()},
        "rows_per_measurement": len(rows), "nonfinite_rows": sum(not math.isfinite(v) for _, _, v in rows),
        "median_rows_per_s": {m: {str(b): round(median[(m, b)]) for b in sizes} for m in modes},
        "samples": {m: {str(b): [round(s) for s in samples[(m, b)]] for b in sizes} for m in modes},
    }
    if ceiling:
        out["engine_ceiling_rows_per_s"] = round(statistics.median(ceiling))
        out["engine_ceiling_samples"] = [round(c) for c in ceiling]
    if args.modes:
        out["meets_target"] = {m: {str(b): median[(m, b)] >= TARGET_ROWS_PER_S for b in sizes} for m in args.modes}
        short = sorted({b for m in args.modes for b in sizes if median[(m, b)] < TARGET_ROWS_PER_S})
        chosen = sorted({sizes[0], sizes[-1]}) if args.profile == "always" else sorted({short[0], short[-1]}) if short else []
        if args.profile != "never" and chosen:
            out["profile"] = {str(b): profile_calls(store, hashes[("profile", b)], rows, b, name) for b in chosen}
    if floor is not None:
        floor.close()
    store.close()
    return out


def _layer(filename: str, function: str) -> str:
    f = filename.replace("\\", "/")
    if "/fptlab/" in f:
        return "fptlab"
    if "/sqlalchemy/" in f:
        return "sqlalchemy"
    if "/psycopg" in f or "psycopg" in function:
        return "psycopg (driver)"
    if "sqlite3" in function or "/sqlite3/" in f:
        return "sqlite3 (driver)"
    return "python stdlib / builtins"


def _short(filename: str) -> str:
    f = filename.replace("\\", "/")
    for anchor in ("site-packages/", "/fptlab/", "/lib/python"):
        if anchor in f:
            return f.split(anchor, 1)[1] if anchor != "/fptlab/" else "fptlab/" + f.split(anchor, 1)[1]
    return f


def profile_calls(store: Store, config_hash: str, rows: Sequence[Any], size: int, name: str) -> dict[str, Any]:
    """cProfile log_metrics calls of `size` rows (at least 8 calls and 40k rows, as far as `rows` go); print
    the hot spots and the own time per layer."""
    parts = list(batches(rows, size))[: max(8, 40_000 // size)]
    profiler = cProfile.Profile()
    t = time.perf_counter()
    profiler.enable()
    for part in parts:
        store.log_metrics(config_hash, part)
    profiler.disable()
    wall = time.perf_counter() - t
    n = sum(len(p) for p in parts)
    stats = pstats.Stats(profiler)
    layers: dict[str, float] = {}
    entries = []
    for (filename, line, function), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        layers[_layer(filename, function)] = layers.get(_layer(filename, function), 0.0) + tottime
        entries.append((tottime, cumtime, ncalls, f"{_short(filename)}:{line}({function})"))
    total = sum(layers.values()) or 1.0
    print(f"\n  [{name}] profile: {len(parts)} calls x {size} rows = {n} rows in {wall:.3f} s under cProfile "
          f"({n / wall:,.0f} rows/s, profiler overhead included)")
    print("  own time by layer: " + ", ".join(f"{k} {v / total:.0%}" for k, v in sorted(layers.items(), key=lambda kv: -kv[1])))
    print(f"  {'tottime':>8} {'cumtime':>8} {'ncalls':>8}  function")
    top = sorted(entries, reverse=True)[:10]
    for tottime, cumtime, ncalls, where in top:
        print(f"  {tottime:>8.3f} {cumtime:>8.3f} {ncalls:>8}  {where}")
    return {
        "rows": n, "wall_s": round(wall, 4), "layers": {k: round(v / total, 3) for k, v in layers.items()},
        "top": [{"tottime": round(a, 4), "cumtime": round(b, 4), "ncalls": c, "function": w} for a, b, c, w in top[:8]],
    }


# ---- 2. sweep overhead -------------------------------------------------------------------------------------------
def sweep_spec(n_trials: int, backbone: str, steps: int) -> Any:
    from fptlab.sweep.grid import spec_from_dict

    raw = {
        "experiment": {"name": f"bench-sweep-{uuid.uuid4().hex[:6]}", "description": "store_ingest sweep overhead"},
        "defaults": {
            "task": "bit_xor", "backbone": backbone, "init": "random", "steps": steps, "eval_every": EVAL_EVERY,
            "batch_size": 16, "eval_batch_size": 64, "bit_xor": {"n_bits": 5, "test_size": 64},
        },
        "seeds": list(range(n_trials)),
    }
    return spec_from_dict(raw, origin="bench/store_ingest.py")


@contextmanager
def patched(obj: Any, attr: str, make: Callable[[Any], Any]) -> Iterator[None]:
    original = getattr(obj, attr)
    setattr(obj, attr, make(original))
    try:
        yield
    finally:
        setattr(obj, attr, original)


COLD_PROCESS = """
import json, os, time
t0 = time.perf_counter()
from ray import tune  # noqa: F401  (what a Tune worker imports)
t1 = time.perf_counter()
import torch  # noqa: F401
from fptlab.config import config_from_dict
from fptlab.train import train
t2 = time.perf_counter()
marks = {}
class Sink:
    def start(self, info): marks["start"] = time.perf_counter()
    def log(self, step, metrics): pass
    def finish(self, result): marks["wall"] = result["wall_seconds"]
cfg = config_from_dict(json.loads(os.environ["BENCH_CFG"]))
t3 = time.perf_counter()
train(cfg, Sink())
print(json.dumps({"import_ray_tune_s": t1 - t0, "import_torch_fptlab_s": t2 - t1, "train_setup_s": marks["start"] - t3,
                  "train_wall_s": marks["wall"]}))
"""


def cold_process(config: dict[str, Any]) -> dict[str, float]:
    """What a brand-new worker process pays before its first report, measured alone in a fresh interpreter
    (one torch thread, as Ray gives a 1-CPU worker): imports, then train() up to its start event."""
    import subprocess

    env = {**os.environ, "BENCH_CFG": json.dumps(config), "OMP_NUM_THREADS": "1"}
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", COLD_PROCESS], env=env, capture_output=True, text=True, check=False)
    total = time.perf_counter() - t
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}  # type: ignore[dict-item]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["process_total_s"] = total
    return {k: round(v, 3) for k, v in out.items()}


def load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


@contextmanager
def env_var(name: str, value: str) -> Iterator[None]:
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def measure_sweep(args: argparse.Namespace) -> dict[str, Any]:
    import fptlab.sweep.run as sweep_run
    import fptlab.sweep.tune_glue as glue
    from fptlab.sweep.options import SweepOptions
    from fptlab.sweep.trainable import EVENT

    clock = time.perf_counter
    events: list[tuple[float, str, str | None]] = []  # (time, what, config_hash)

    def wrap_init_ray(original: Any) -> Any:
        def init_ray(opts: Any) -> Any:
            events.append((clock(), "ray_init_begin", None))
            ray = original(opts)
            events.append((clock(), "ray_up", None))
            real_shutdown = ray.shutdown

            def shutdown(*a: Any, **k: Any) -> Any:
                events.append((clock(), "shutdown_begin", None))
                try:
                    return real_shutdown(*a, **k)
                finally:
                    events.append((clock(), "shutdown_end", None))
                    ray.shutdown = real_shutdown

            ray.shutdown = shutdown
            return ray

        return init_ray

    def wrap_suggest(original: Any) -> Any:
        def suggest(self: Any, trial_id: str) -> Any:
            out = original(self, trial_id)
            events.append((clock(), "claim" if isinstance(out, dict) else "no_claim", out.get("config_hash") if isinstance(out, dict) else None))
            return out

        return suggest

    def wrap_start(original: Any) -> Any:
        def on_trial_start(self: Any, iteration: int, trials: list, trial: Any, **info: Any) -> Any:
            events.append((clock(), "tune_start", trial.config["config_hash"]))
            return original(self, iteration, trials, trial, **info)

        return on_trial_start

    def wrap_result(original: Any) -> Any:
        def on_trial_result(self: Any, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> Any:
            events.append((clock(), f"report_{result.get(EVENT)}", trial.config["config_hash"]))
            return original(self, iteration, trials, trial, result, **info)

        return on_trial_result

    spec = sweep_spec(args.trials, args.backbone, args.steps)
    folder = tempfile.mkdtemp(prefix="fptlab-bench-sweep-")
    try:
        store = Store(f"sqlite:///{os.path.join(folder, 'sweep.db')}")
        store.upgrade()
        opts = SweepOptions(cpus_per_trial=args.cpus_per_trial, num_cpus=args.num_cpus, storage=Path(folder) / "runs")
        with ExitStack() as stack:
            # Embedded means a fresh local Ray. fptlab's init_ray passes no address then, so ray.init would attach
            # to a cluster that `ray start` runs on this host (and refuse num_cpus): ask for a local one explicitly.
            stack.enter_context(env_var("RAY_ADDRESS", "local"))
            stack.enter_context(patched(sweep_run, "init_ray", wrap_init_ray))
            stack.enter_context(patched(glue.ClaimingSearcher, "suggest", wrap_suggest))
            stack.enter_context(patched(glue.StoreCallback, "on_trial_start", wrap_start))
            stack.enter_context(patched(glue.StoreCallback, "on_trial_result", wrap_result))
            t0 = clock()
            outcome = sweep_run.run_sweep(spec, store, opts, show_progress=False)
            t_end = clock()
        hashes = [c.hash for c in spec.cells]
        trials = {t["config_hash"]: t for t in store.trials(experiment=spec.name)}
        results = store.results(hashes)
        store.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return analyse_sweep(args, spec, outcome, events, t0, t_end, hashes, trials, results)


def _first(events: list[tuple[float, str, str | None]], what: str, config_hash: str | None = None) -> float | None:
    return next((t for t, w, h in events if w == what and (config_hash is None or h == config_hash)), None)


def analyse_sweep(args: argparse.Namespace, spec: Any, outcome: Any, events: list, t0: float, t_end: float,
                  hashes: list[str], trials: dict, results: dict) -> dict[str, Any]:
    n = len(hashes)
    lines: list[str] = []  # the detailed report, printed for the median sweep
    say = lines.append
    c = min(int(args.num_cpus // args.cpus_per_trial), n)  # trials running at once
    ray_begin, ray_up = _first(events, "ray_init_begin"), _first(events, "ray_up")
    shut_begin, shut_end = _first(events, "shutdown_begin"), _first(events, "shutdown_end")
    if ray_begin is None or ray_up is None:
        raise RuntimeError("run_sweep never started Ray")
    per_trial = []
    for h in hashes:
        t = trials.get(h, {})
        per_trial.append({
            "seed": t.get("seed"), "status": t.get("status"), "claim": _first(events, "claim", h),
            "tune_start": _first(events, "tune_start", h), "first_report": _first(events, "report_start", h),
            "first_step": _first(events, "report_log", h), "finish": _first(events, "report_finish", h),
            "wall": results.get(h, {}).get("wall_seconds", math.nan),
            "store_span": (t["finished"] - t["started"]).total_seconds() if t.get("finished") and t.get("started") else math.nan,
        })
    keys = ("claim", "tune_start", "first_report", "first_step", "finish")
    ok = sorted((p for p in per_trial if p["status"] == "completed" and all(p[k] is not None for k in keys)),
                key=lambda p: p["tune_start"])
    failed = [p for p in per_trial if p not in ok]
    if not ok:
        raise RuntimeError(f"no trial of the sweep completed: {[(p['seed'], p['status']) for p in per_trial]}")
    last_finish = max(p["finish"] for p in ok)
    sum_wall = sum(p["wall"] for p in ok)
    trial_phase, after_ray = last_finish - ray_up, t_end - ray_up
    overhead = (trial_phase * c - sum_wall) / len(ok)
    overhead_incl_teardown = (after_ray * c - sum_wall) / len(ok)

    cold, reused = ok[:c], ok[c:]  # the first c trials start a worker actor each; Tune reuses them afterwards
    finishes = sorted(p["finish"] for p in ok)
    refill = [reused[k]["tune_start"] - finishes[k] for k in range(len(reused))]  # slot freed -> next trial started on it
    for p in ok:
        p["pending"] = p["tune_start"] - p["claim"]  # claimed in the store, not yet started by Tune
        p["startup"] = p["first_report"] - p["tune_start"]  # worker actor (if new) + train() set-up up to its start report
        p["in_run"] = (p["finish"] - p["first_report"]) - p["wall"]  # reporting / evaluation outside wall_seconds
        p["claim_to_step"] = p["first_step"] - p["claim"]

    def mean(values: list[float]) -> float:
        values = [v for v in values if not math.isnan(v)]
        return statistics.fmean(values) if values else math.nan

    steady = mean(refill) + mean([p["startup"] + p["in_run"] for p in reused]) if reused else math.nan
    one_off = c * trial_phase - sum_wall - len(ok) * (steady if reused else 0.0)
    breakeven = math.ceil(one_off / (TARGET_START_OVERHEAD_S - steady)) if reused and steady < TARGET_START_OVERHEAD_S else None

    say(f"\n  {'seed':>4} {'claimed':>8} {'started':>8} {'1st rep':>8} {'1st step':>8} {'finish':>7} {'wall_s':>7}"
          f" {'pending':>8} {'start-up':>8} {'in-run':>7} {'claim->1st step':>15}  actor")
    for i, p in enumerate(ok):
        rel = [p[k] - ray_up for k in keys]
        say(f"  {p['seed']:>4} {rel[0]:>8.2f} {rel[1]:>8.2f} {rel[2]:>8.2f} {rel[3]:>8.2f} {rel[4]:>7.2f} {p['wall']:>7.2f}"
              f" {p['pending']:>8.2f} {p['startup']:>8.2f} {p['in_run']:>7.2f} {p['claim_to_step']:>15.2f}  {'new' if i < c else 'reused'}")
    say("  (seconds after Ray is up, driver clock. claimed: ClaimingSearcher.suggest claimed it in the store; started:")
    say("   Tune's on_trial_start; 1st rep: the run's start report (model built); 1st step: its first metrics report;")
    say("   pending = started - claimed; start-up = 1st rep - started; in-run = finish - 1st rep - wall_seconds)")
    for p in failed:
        say(f"  seed {p['seed']}: status {p['status']} -- left out of the figures")

    out = {
        "trials": n, "completed": len(ok), "ran": len(outcome.ran), "concurrency": c, "backbone": args.backbone,
        "steps": args.steps, "pre_ray_s": ray_begin - t0, "ray_init_s": ray_up - ray_begin,
        "tune_setup_s": min(p["claim"] for p in ok) - ray_up, "trial_phase_s": trial_phase,
        "teardown_s": t_end - last_finish, "ray_shutdown_s": (shut_end - shut_begin) if shut_begin and shut_end else math.nan,
        "sweep_wall_s": t_end - t0, "sweep_after_ray_s": after_ray, "sum_wall_seconds": sum_wall,
        "per_trial_start_overhead_s": overhead, "per_trial_start_overhead_incl_teardown_s": overhead_incl_teardown,
        "new_actor_claim_to_started_s": mean([p["pending"] for p in cold]),
        "new_actor_startup_s": mean([p["startup"] for p in cold]),
        "reused_refill_s": mean(refill), "reused_startup_s": mean([p["startup"] for p in reused]),
        "in_run_s": mean([p["in_run"] for p in ok]), "reused_pending_s": mean([p["pending"] for p in reused]),
        "steady_state_overhead_s": steady, "one_off_slot_seconds": one_off, "trials_to_meet_target": breakeven,
        "store_mean_started_to_finished_minus_wall_s": mean([p["store_span"] - p["wall"] for p in ok]),
        "meets_target": overhead <= TARGET_START_OVERHEAD_S,
    }
    out = {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}
    tgt = TARGET_START_OVERHEAD_S
    say(f"\n  Ray start-up (init_ray)                      {out['ray_init_s']:>7.2f} s   (spec expansion + register before it: {out['pre_ray_s']:.2f} s)")
    say(f"  trial phase (Ray up -> last finish report)   {out['trial_phase_s']:>7.2f} s   x {c} slots = {c * trial_phase:.2f} slot-s")
    say(f"  sum of the trials' wall_seconds              {out['sum_wall_seconds']:>7.2f} s   ({len(ok)}/{n} completed)")
    say(f"  teardown (last finish -> run_sweep returns)  {out['teardown_s']:>7.2f} s   (ray.shutdown {out['ray_shutdown_s']:.2f} s)")
    say(f"  whole sweep wall                             {out['sweep_wall_s']:>7.2f} s")
    say(f"  PER-TRIAL START OVERHEAD                     {out['per_trial_start_overhead_s']:>7.2f} s   = (trial phase x {c} - sum wall) / {len(ok)};"
          f" target <= {tgt:g} s: {'MET' if out['meets_target'] else 'NOT MET'}")
    say(f"    same over the whole sweep after Ray is up  {out['per_trial_start_overhead_incl_teardown_s']:>7.2f} s   (teardown counted)")
    say("  where the slot-seconds go:")
    say(f"    Tune set-up, Ray up -> first claim         {out['tune_setup_s']:>7.2f} s   (once per sweep, all slots idle)")
    say(f"    new worker actor: claimed -> started       {out['new_actor_claim_to_started_s']:>7.2f} s   (mean of the first {c} trials)")
    say(f"    new worker actor: started -> 1st report    {out['new_actor_startup_s']:>7.2f} s   (process + imports + train() set-up)")
    say(f"    reused actor: slot freed -> next started   {out['reused_refill_s']:>7.2f} s")
    say(f"    reused actor: started -> 1st report        {out['reused_startup_s']:>7.2f} s   (train() set-up only)")
    say(f"    in-run, outside wall_seconds               {out['in_run_s']:>7.2f} s   (reporting to the driver)")
    say(f"    => steady-state overhead per trial         {out['steady_state_overhead_s']:>7.2f} s   (reused actor)")
    say(f"    => one-off slot-seconds                    {out['one_off_slot_seconds']:>7.2f} s   -> mean overhead <= {tgt:g} s from about"
          f" {breakeven} trials per sweep at this concurrency")
    say(f"  claimed ahead of start (reused trials)       {out['reused_pending_s']:>7.2f} s   (store `started` is the claim time;"
          f" started -> finished - wall in the store: {out['store_mean_started_to_finished_minus_wall_s']:.2f} s)")
    out["lines"] = lines
    return out


# ---- main -----------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000, help="rows written per measurement (one batch size, one round)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds over the batch sizes; the figure is the median")
    ap.add_argument("--batch-sizes", default="200,1000,5000", help="rows per log_metrics call")
    ap.add_argument("--backends", default="sqlite,postgres", help="comma list of sqlite, postgres")
    ap.add_argument("--modes", default="driver,sink", help="driver (no owner, as the sweep driver), sink (owner=, as StoreSink)")
    ap.add_argument("--no-floor", dest="floor", action="store_false", help="skip the bare DB-API comparison")
    ap.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                    help="cProfile large log_metrics calls (auto: for a backend short of the target)")
    ap.add_argument("--pg-url", default=os.environ.get("FPTLAB_TEST_PG_URL") or DEFAULT_PG_URL,
                    help="PostgreSQL server to use (a throwaway schema is created and dropped); default $FPTLAB_TEST_PG_URL")
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--skip-sweep", action="store_true")
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--sweep-repeats", type=int, default=3, help="sweeps to run; the median one is reported in detail")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--backbone", default="bert-tiny", choices=("bert-tiny", "gpt2-tiny"))
    ap.add_argument("--num-cpus", type=int, default=2, help="embedded Ray's CPUs")
    ap.add_argument("--cpus-per-trial", type=float, default=1.0)
    args = ap.parse_args(argv)
    args.batch_sizes = sorted(int(b) for b in args.batch_sizes.split(","))
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for b in args.backends:
        if b not in ("sqlite", "postgres"):
            ap.error(f"unknown backend {b!r}: use sqlite and/or postgres")
    for m in args.modes:
        if m not in MODES:
            ap.error(f"unknown mode {m!r}: use {' and/or '.join(MODES)}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import sqlalchemy

    report: dict[str, Any] = {"python": sys.version.split()[0], "sqlalchemy": sqlalchemy.__version__, "cpus": os.cpu_count(),
                              "targets": {"rows_per_s": TARGET_ROWS_PER_S, "start_overhead_s": TARGET_START_OVERHEAD_S},
                              "load_average_before": load_average()}
    if report["load_average_before"] and report["load_average_before"][0] > (os.cpu_count() or 1) * 0.5:
        print(f"# load average {report['load_average_before']} on {os.cpu_count()} CPUs: other work is running; figures will be low and noisy")
    if not args.skip_ingest:
        print(f"== 1. metric ingest: {args.rows:,} rows per measurement, batch sizes {args.batch_sizes}, {args.repeats} rounds",
              flush=True)
        ingest: dict[str, Any] = {}
        for backend in args.backends:
            if backend == "postgres":
                reason = pg_unreachable(args.pg_url)
                if reason:
                    print(f"  [postgres] skipped: {reason}")
                    ingest["postgres"] = {"skipped": reason}
                    continue
                context = postgres_database(args.pg_url)
            else:
                context = sqlite_database()
            with context as url:
                ingest[backend] = ingest_backend(backend, url, args)
        report["ingest"] = ingest
        print(f"\n  median rows/s over {args.repeats} rounds (target >= {TARGET_ROWS_PER_S:,} batched, Store.log_metrics)")
        print(f"  {'backend':<10}{'path':<9}" + "".join(f"{f'batch {b}':>14}" for b in args.batch_sizes) + "   spread  >= target")
        for backend, res in ingest.items():
            if "skipped" in res:
                print(f"  {backend:<10}skipped ({res['skipped']})")
                continue
            for m, med in res["median_rows_per_s"].items():
                spread = max((max(v) - min(v)) / statistics.median(v) for v in res["samples"][m].values())
                met = [b for b, ok in res["meets_target"][m].items() if ok] if m in MODES else None
                verdict = "(reference)" if met is None else ("at all sizes" if len(met) == len(med) else f"at {', '.join(met)}" if met else "NO")
                print(f"  {backend:<10}{m:<9}" + "".join(f"{med[str(b)]:>14,}" for b in args.batch_sizes) + f"   {spread:>5.0%}  {verdict}")
            if "engine_ceiling_rows_per_s" in res:
                print(f"  {backend:<10}{'engine':<9}{res['engine_ceiling_rows_per_s']:>14,}  (one INSERT .. SELECT of {res['rows_per_measurement']:,}"
                      " database-generated rows: the engine's own ceiling for this upsert)")
        print("  paths: driver = log_metrics(hash, rows) as the sweep driver calls it; sink = with owner= as StoreSink;")
        print("         floor = the same SQL by bare DB-API executemany; unnest = one INSERT .. SELECT FROM unnest(arrays) per batch")
    if not args.skip_sweep:
        print(f"\n== 2. sweep overhead: {args.trials} trials of bit_xor on {args.backbone} (random init, {args.steps} steps, "
              f"eval every {EVAL_EVERY}), embedded Ray num_cpus={args.num_cpus}, cpus_per_trial={args.cpus_per_trial:g}", flush=True)
        runs = []
        for r in range(args.sweep_repeats):
            runs.append(measure_sweep(args))
            o = runs[-1]
            print(f"  sweep {r + 1}/{args.sweep_repeats}: Ray start-up {o['ray_init_s']:.2f} s, whole sweep {o['sweep_wall_s']:.2f} s, "
                  f"per-trial start overhead {o['per_trial_start_overhead_s']:.2f} s (steady state {o['steady_state_overhead_s']:.2f} s)",
                  flush=True)
        runs.sort(key=lambda o: o["per_trial_start_overhead_s"])
        median_run = runs[(len(runs) - 1) // 2]
        print(f"\n  the median sweep in detail (of {len(runs)}, ranked by per-trial start overhead):")
        print("\n".join(median_run.pop("lines")))
        for o in runs:
            o.pop("lines", None)
        cold = cold_process(sweep_spec(1, args.backbone, args.steps).cells[0].config.to_dict())
        if "error" in cold:
            print(f"  fresh-process reference failed: {cold['error']}")
        else:
            print(f"  reference, one fresh process alone: import ray.tune {cold['import_ray_tune_s']:.2f} s + torch/fptlab "
                  f"{cold['import_torch_fptlab_s']:.2f} s + train() set-up {cold['train_setup_s']:.2f} s (transformers, model) "
                  f"= {cold['import_ray_tune_s'] + cold['import_torch_fptlab_s'] + cold['train_setup_s']:.2f} s before its first report;"
                  f" its training loop {cold['train_wall_s']:.2f} s")
        key = "per_trial_start_overhead_s"
        report["sweep"] = {
            "median": median_run, "cold_process_reference": cold,
            "runs": [{k: o[k] for k in ("ray_init_s", "sweep_wall_s", "trial_phase_s", "sum_wall_seconds", key,
                                       "steady_state_overhead_s", "new_actor_startup_s")} for o in runs],
            "median_per_trial_start_overhead_s": median_run[key], "per_trial_start_overhead_samples": [o[key] for o in runs],
            "median_ray_init_s": statistics.median(o["ray_init_s"] for o in runs),
            "meets_target": median_run[key] <= TARGET_START_OVERHEAD_S,
        }
        print(f"\n  per-trial start overhead over {len(runs)} sweeps: {', '.join(f'{o[key]:.2f}' for o in runs)} s; median "
              f"{median_run[key]:.2f} s -> target <= {TARGET_START_OVERHEAD_S:g} s {'MET' if median_run[key] <= TARGET_START_OVERHEAD_S else 'NOT MET'}"
              f"; Ray start-up median {report['sweep']['median_ray_init_s']:.2f} s")
    report["load_average_after"] = load_average()
    print(f"\n# load average before {report['load_average_before']}, after {report['load_average_after']} ({os.cpu_count()} CPUs)")
    print(json.dumps(report, default=str))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
