"""How long `fptlab report` takes to render a paper table from a large results database.

A fresh SQLite database (a temporary file, or --db URL for PostgreSQL) is filled through the store API,
as sweeps fill it: an experiment per spec, `add_trials`, `claim`, `StoreSink` start/finish, and
`log_metrics` for the curves. It holds `--trials` trials (every cell of experiments/table2.toml and
experiments/table6.toml if present, the rest bit_xor configs differing by seed) with `--rows` metric
rows in all (test_accuracy, train_loss, train_accuracy at each step), spread evenly over the trials.

Then, in this process, each timed `--repeats` times after one untimed warm-up (imports, first
connection):
  table2   make_report(["table2"]) + the terminal text: final accuracies only (no curves read);
  table6   make_report(["table6"]) + text: steps to converge, which reads the compared trials' curves
           (falls back to the quickstart table, which has convergence rows, if table6 is not declared);
  cli      `fptlab report --table 2` as a user runs it, a fresh process (Python start-up and imports
           included), timed once per repeat.
The target: a table renders in at most 2 s. The last line is a JSON object; `seconds` is the median of
the slowest of the in-process tables.

    FPTLAB_OFFLINE=1 python bench/report_speed.py                  # 1,000 trials, 1,000,000 rows
    python bench/report_speed.py --trials 200 --rows 100000        # quick
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("FPTLAB_OFFLINE", "1")


def build(url: str, n_trials: int, n_rows: int) -> dict[str, int]:
    from fptlab.config import config_from_dict
    from fptlab.plan import resolve_config
    from fptlab.store import Store, new_owner_id
    from fptlab.store.sink import StoreSink
    from fptlab.sweep import load_spec

    store = Store(url)
    store.ensure_schema()
    configs = []
    for name in ("table2", "table6"):
        path = ROOT / "experiments" / f"{name}.toml"
        if path.is_file():
            spec = load_spec(path)
            cells = [resolve_config(c.config) for c in spec.cells]
            store.add_trials(store.upsert_experiment(spec.name, spec.description, spec.text, spec.hash), cells)
            configs.extend(cells)
    configs = list({c.hash: c for c in configs}.values())  # tables share cells: each trial once
    filler = []
    seed = 1000
    while len(configs) + len(filler) < n_trials:
        filler.append(config_from_dict({"task": "bit_xor", "seed": seed, "steps": 1000}))
        seed += 1
    store.add_trials(store.upsert_experiment("filler", "bench filler", "{}", "0"), filler)
    configs = (configs + filler)[:n_trials]
    per_trial = max(3, n_rows // len(configs))
    steps = per_trial // 3
    written = 0
    t0 = time.perf_counter()
    for i, cfg in enumerate(configs):
        owner = new_owner_id()
        store.claim(cfg.hash, owner, "bench-host", lease_seconds=3600, max_attempts=9)
        sink = StoreSink(store, cfg.hash, owner, flush_every=10**9)
        sink.start({"device": "cuda:0", "versions": {"fptlab": "bench", "torch": "x", "transformers": "y"}})
        rise = 50 + (i % 7) * 30  # curves that level off at different steps
        rows = []
        for k in range(steps):
            step = (k + 1) * 10
            acc = min(1.0, 0.5 + 0.5 * k / rise)
            rows += [(step, "test_accuracy", acc), (step, "train_loss", 1.0 - acc), (step, "train_accuracy", acc)]
        store.log_metrics(cfg.hash, rows, owner=owner)
        written += len(rows)
        sink.finish({"status": "completed", "steps": steps * 10, "test_accuracy": acc, "best_test_accuracy": acc,
                     "train_accuracy": acc, "wall_seconds": 1.0, "trainable_params": 1000, "total_params": 10**8})
        if (i + 1) % 100 == 0:
            print(f"  {i + 1} trials, {written} rows ({time.perf_counter() - t0:.0f} s)", flush=True)
    return {"trials": len(configs), "metric_rows": written}


def time_table(key: str, url: str, repeats: int) -> list[float]:
    from rich.console import Console

    from fptlab.report import render
    from fptlab.report.engine import ReportOptions, make_report
    from fptlab.store import Store

    def once() -> None:
        store = Store(url)
        [out] = make_report([key], store, ReportOptions(db_url=url, experiments=ROOT / "experiments", plots=False))
        render.print_terminal(out.result, Console(file=io.StringIO(), width=200))
        store.close()

    once()  # warm-up: imports, first connection
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        once()
        times.append(time.perf_counter() - t)
    return times


def time_cli(url: str, repeats: int) -> list[float]:
    exe = Path(sys.executable).with_name("fptlab")
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([str(exe), "report", "--table", "2", "--db", url, "--experiments", str(ROOT / "experiments")],
                       check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--db", default=None, help="database URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    from fptlab.report import catalog

    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'bench.db'}"
        print(f"building {args.trials} trials, {args.rows} metric rows in {url.split('@')[-1]} ...", flush=True)
        t = time.perf_counter()
        built = build(url, args.trials, args.rows)
        print(f"built in {time.perf_counter() - t:.0f} s: {built}")
        conv = "table6" if "table6" in catalog.items() else "quickstart"
        figures = {"table2": time_table("table2", url, args.repeats), conv: time_table(conv, url, args.repeats),
                   "cli": time_cli(url, args.repeats)}
    medians = {k: statistics.median(v) for k, v in figures.items()}
    for k, v in figures.items():
        print(f"{k:>10}: median {medians[k]:.3f} s  (runs: {', '.join(f'{x:.3f}' for x in v)})")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    worst = max(medians["table2"], medians[conv])
    print(json.dumps({"seconds": round(worst, 4), "target_seconds": 2.0, "meets_target": worst <= 2.0, **built,
                      "medians": {k: round(v, 4) for k, v in medians.items()}}))


if __name__ == "__main__":
    main()
