"""Multi-node Ray, for real: a Ray cluster of several nodes on this host (`ray.cluster_utils.Cluster`,
driven through bench/chaos.py's `LocalCluster`), a sweep joining it with --address through the real
CLI, and the node running its trial killed mid-trial. Tune must retry the trial on the node that is
left, resuming from its checkpoint on the shared --storage, with every step recorded once; and the
dead node must not flood the sweep's output.

Deterministic by construction: the head node has no CPU (no trial runs there) and there is one
1-CPU worker node, so the trial runs on it; once the trial has a checkpoint its worker is frozen
(SIGSTOP), so it is mid-way whatever the machine's speed; a second node joins, then the first is
killed (SIGKILL of all its processes and of the frozen worker), so the second is the only place the
retry can go."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.chaos_suite import chaos

pytestmark = pytest.mark.slow

STEPS, EVAL_EVERY = 400, 20
SPEC = chaos.SPEC.format(name="multinode", steps=STEPS, eval_every=EVAL_EVERY, lrs=[1e-3])  # one cell


def _checkpointed(url: str) -> chaos.Snapshot | None:
    """The database once its one trial is running with two evaluations recorded (so a checkpoint
    of a recorded step exists), else None."""
    snap = chaos.try_snapshot(url)
    if snap is None or not any(snap.evals(h) >= 2 for h in snap.running()):
        return None
    return snap


def test_a_trial_on_a_killed_node_is_retried_on_another_node_from_its_checkpoint(tmp_path):
    ray_tmp = Path(tempfile.mkdtemp(prefix="fmn", dir="/tmp"))  # our own Ray temp folder (socket paths stay short)
    spec, runs, log = tmp_path / "spec.toml", tmp_path / "runs", tmp_path / "driver.log"
    spec.write_text(SPEC)
    url = f"sqlite:///{tmp_path / 'fptlab.db'}"
    cluster = chaos.LocalCluster(ray_tmp)
    driver = None
    try:
        cluster.start()
        first = cluster.add_node()
        env = {**os.environ, "FPTLAB_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "RAY_TMPDIR": str(ray_tmp)}
        cmd = [sys.executable, "-m", "fptlab.cli", "sweep", str(spec), "--address", cluster.address, "--db", url,
               "--storage", str(runs), "--no-progress"]
        with open(log, "w") as out:
            driver = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 240
        while _checkpointed(url) is None:
            assert driver.poll() is None, f"the sweep exited ({driver.returncode}) early: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "timed out waiting for the trial's second evaluation"
            time.sleep(0.3)

        frozen = cluster.freeze_trials(first)
        assert len(frozen) == 1, "exactly one trial worker on the first node"
        at_kill = chaos.snapshot(url)
        (config_hash,) = at_kill.running()
        through = at_kill.recorded_through(config_hash)
        assert 2 * EVAL_EVERY <= through < STEPS  # caught mid-way, with a recorded checkpoint behind it
        second = cluster.add_node()
        cluster.kill_node(first, frozen)

        on_second: set[int] = set()  # trial workers seen on the second node while the sweep runs
        deadline = time.monotonic() + 300
        while driver.poll() is None:
            on_second.update(cluster.trial_workers(second))
            assert time.monotonic() < deadline, "the sweep did not finish after the node was killed"
            time.sleep(0.2)
        output = log.read_text(errors="replace")
        assert driver.returncode == 0, output[-3000:]

        final = chaos.snapshot(url)
        trial = final.trials[config_hash]
        assert trial["status"] == "completed"
        assert trial["attempts"] == 2  # Tune's retry, within this sweep's claim, is a new attempt (fencing token)
        retried = [int(m["step"]) for p in (runs / "trials" / config_hash).glob("checkpoint-*")
                   if (m := chaos.CHECKPOINT.match(p.name)) and m["attempt"] == "2"]
        assert retried and max(retried) == STEPS  # the retry wrote its own files, through the last step
        resumed = int(final.results[config_hash]["resumed_from"])
        assert 0 < resumed <= through and resumed % EVAL_EVERY == 0  # from a checkpoint whose steps were recorded
        workers = list(dict.fromkeys(chaos.report_pids(runs, config_hash)))
        assert workers[0] == frozen[0] and len(workers) == 2 and workers[1] in on_second, (workers, on_second)
        (error,) = (runs / "tune").glob("*/*/error.txt")  # Tune's record of the one failure it retried
        assert error.read_text().startswith("Failure # 1")
        audit = chaos.audit(url, [config_hash], chaos.Size(STEPS, EVAL_EVERY, cells=1), runs, [at_kill])
        assert (audit.lost, audit.duplicates) == (0, 0), audit.notes  # every step once, both workers agree

        lines = [line for line in output.splitlines() if line.strip()]
        assert "Traceback" not in output and "[state-dump]" not in output, output
        assert sum("Trial task failed" in line for line in lines) == 1, output  # one line for the one failure
        assert sum("Raylet is terminated" in line for line in lines) <= 1, output  # pushed by each agent, printed once
        assert len(lines) <= 8, output
        # The cluster is not the sweep's own: nothing recorded for the next sweep's cleanup.
        assert not list((ray_tmp / "ray" / "fptlab-sessions").glob("*.json"))
    finally:
        if driver is not None and driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(30)
        cluster.close()
        shutil.rmtree(ray_tmp, ignore_errors=True)
