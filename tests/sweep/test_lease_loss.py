"""A driver that finds another driver has taken one of its trials over (its lease lapsed, e.g. while it
was stalled) stops that trial instead of training on to the end (issue 8, item 3): its worker ends
at its next report, writes no further checkpoint, and the driver exits 0 naming the live peer that
now runs the cell. Deterministic: the takeover is made through the database, the way a peer's claim
leaves the row, while the trial runs; nothing waits on a timer to decide the outcome."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from fptlab.store import Store
from tests.store.conftest import db_url  # noqa: F401  (fixture: fresh SQLite file / PostgreSQL schema)
from tests.store.helpers import set_trial
from tests.sweep.test_sweep_e2e import sweep_cmd, write_spec

pytestmark = pytest.mark.slow

PEER = "peer-host:4242:cafe"
STEPS = 3000  # minutes of training if nothing stops it; the stop comes within two evaluations
CHECKPOINT = re.compile(r"^checkpoint-[0-9a-f]{8}-a(?P<attempt>\d+)-s(?P<step>\d+)\.pt$")


def _wait_for(predicate, what: str, proc: subprocess.Popen, deadline: float = 300.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"the sweep exited ({proc.returncode}) before {what}: {proc.stderr.read()[-2000:]}")
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_trial_taken_over_by_another_driver_is_stopped_here(db_url, tmp_path: Path) -> None:  # noqa: F811
    spec = write_spec(tmp_path, name="lease-loss", steps=STEPS, eval_every=10, seeds=(0,))
    cmd = sweep_cmd(spec, db_url, tmp_path, "--max-concurrent", "1")
    env = {**os.environ, "FPTLAB_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    store = Store(db_url)
    try:
        def first_running() -> str | None:
            try:
                running = store.trials(status="running")
            except Exception:  # noqa: BLE001 - the schema may not exist yet
                return None
            return next((t["config_hash"] for t in running if store.count_metrics(t["config_hash"]) > 0), None)

        victim = _wait_for(first_running, "a trial to record its first steps", proc)
        run_dir = tmp_path / "runs" / "trials" / victim
        _wait_for(lambda: any(CHECKPOINT.match(p.name) for p in run_dir.glob("checkpoint-*")), "a first checkpoint", proc)
        # A peer takes it over: its claim (attempt 2) with a fresh heartbeat, as `Store.claim` leaves it.
        set_trial(store, victim, owner=PEER, host="peer-host", attempts=2, heartbeat=store.now(), started=store.now())
        rows_at_takeover = store.count_metrics(victim)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        store.close()

    assert proc.returncode == 0, err[-3000:]
    assert f"Warning: trial {victim}: another driver took it over" in err and "Traceback" not in err
    assert "being run by another live driver (peer-host)" in err
    store = Store(db_url)
    try:
        trial = store.trial_states([victim])[victim]
        assert (trial["owner"], trial["status"], trial["attempts"]) == (PEER, "running", 2)  # the peer's claim untouched
        assert store.count_metrics(victim) == rows_at_takeover  # nothing of the stale worker recorded
    finally:
        store.close()
    steps = [int(m["step"]) for p in run_dir.glob("checkpoint-*") if (m := CHECKPOINT.match(p.name)) and m["attempt"] == "1"]
    assert steps and max(steps) < STEPS, f"the stale worker trained on to step {max(steps, default=0)} of {STEPS}"
    assert not (run_dir / "body").exists()
