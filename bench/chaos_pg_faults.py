"""The chaos suite's PostgreSQL server faults (bench/chaos.py): outages within and past the budget,
two drivers on one database, a stalled driver taken over.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other chaos_* modules, however this file is loaded

from chaos_audit import Plan, Skip, Verdict, fault, verdict
from chaos_procs import Lab, tail


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
    from fptlab.sweep import options

    lease = options.HEARTBEAT_SECONDS + 5
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
        stopped = [h for h in hit if f"trial {h}: another driver took it over" in a.output]
        checks = {"driver B exit 0": codes[1] == 0, "all cells completed": result.all_completed(lab.hashes),
                  "A stopped the trials B took over": len(stopped) == len(hit)}
        return verdict(checks, result, f"A froze with {len(hit)} running, B took them over, A stopped {len(stopped)} of them; "
                       f"exits A {codes[0]}, B {codes[1]}",
                       f"attempts {sorted(t['attempts'] for t in result.final.trials.values())}",
                       tail(a.output) if codes[0] else "", tail(b.output) if codes[1] else "")
