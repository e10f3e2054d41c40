"""The chaos suite's faults of drivers, workers, nodes, checkpoints, storage and locks (bench/chaos.py
describes each); each registers itself with `fault` and returns a `Verdict`.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other chaos_* modules, however this file is loaded

from chaos_audit import CHECKPOINT, QUICK, Plan, Skip, Snapshot, Verdict, fault, progress, resumed_from, verdict
from chaos_procs import Lab, LocalCluster, group_members, process_tree, ray_workers, report_pids, still_alive, tail


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
