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
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other chaos_* modules, however this file is loaded

import chaos_faults  # noqa: E402,F401  (registers its faults)
import chaos_pg_faults  # noqa: E402,F401
from chaos_audit import (  # noqa: E402
    BACKENDS,
    CHECKPOINT,
    FAULTS,
    FULL,
    QUICK,
    Plan,
    Size,
    Skip,
    Snapshot,
    audit,
    fault,
    snapshot,
    try_snapshot,
)
from chaos_procs import SPEC, Lab, LocalCluster, process_tree, report_pids, still_alive  # noqa: E402

__all__ = ["BACKENDS", "CHECKPOINT", "FAULTS", "FULL", "Lab", "LocalCluster", "Plan", "QUICK", "Row", "SPEC", "Size", "Skip", "Snapshot", "audit", "fault", "main", "process_tree", "report_pids", "run_fault",
           "snapshot", "still_alive", "table", "try_snapshot"]


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
