"""End-to-end sweeps through the real CLI, embedded Ray and a real database (SQLite and PostgreSQL):
run, re-run (nothing starts), grow (only new cells), kill -9 of the driver (resume from checkpoints,
no duplicates, nothing completed lost), two concurrent drivers (each cell once), Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fptlab
from fptlab.store import Store, StoreError
from tests.store.conftest import db_url  # noqa: F401  (fixture: fresh SQLite file / PostgreSQL schema)

pytestmark = pytest.mark.slow

SPEC = """
[experiment]
name = "{name}"

[defaults]
task = "bit_xor"
backbone = "bert-tiny"
init = "random"
steps = {steps}
eval_every = {eval_every}
batch_size = 4

[defaults.bit_xor]
n_bits = 3
test_size = 16

[grid]
lr = [1e-3, 3e-4]
seed = {seeds}
"""


def write_spec(tmp_path: Path, name="e2e", steps=4, eval_every=2, seeds=(0, 1)) -> Path:
    path = tmp_path / f"{name}-{len(seeds)}.toml"
    path.write_text(SPEC.format(name=name, steps=steps, eval_every=eval_every, seeds=list(seeds)))
    return path


def sweep_cmd(spec: Path, url: str, tmp_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "fptlab.cli", "sweep", str(spec), "--db", url, "--storage", str(tmp_path / "runs"),
            "--num-cpus", "2", "--no-progress", *extra]


def run_sweep(spec: Path, url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FPTLAB_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(sweep_cmd(spec, url, tmp_path, *extra), capture_output=True, text=True, env=env, timeout=600)


def trials_by_hash(url: str) -> dict[str, dict]:
    store = Store(url)
    try:
        return {t["config_hash"]: t for t in store.trials()}
    finally:
        store.close()


def test_run_rerun_grow(db_url, tmp_path):  # noqa: F811
    spec = write_spec(tmp_path)
    first = run_sweep(spec, db_url, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "4 cells, 0 already done, 4 run now" in first.stdout
    trials = trials_by_hash(db_url)
    assert len(trials) == 4 and {t["status"] for t in trials.values()} == {"completed"}
    store = Store(db_url)
    metric_rows = {h: store.count_metrics(h) for h in trials}
    assert set(metric_rows.values()) == {4 * 3 + 2 * 2}  # 4 steps × (loss, acc, grad norm) + 2 evals × (loss, acc)
    assert store.results([next(iter(trials))])[next(iter(trials))]["trainable_params"] > 0

    again = run_sweep(spec, db_url, tmp_path)
    assert again.returncode == 0 and "4 already done, 0 run now" in again.stdout
    assert trials_by_hash(db_url) == trials  # nothing touched

    grown = run_sweep(write_spec(tmp_path, seeds=(0, 1, 2)), db_url, tmp_path)
    assert grown.returncode == 0, grown.stderr[-3000:]
    assert "6 cells, 4 already done, 2 run now" in grown.stdout
    after = trials_by_hash(db_url)
    assert len(after) == 6 and all(after[h] == trials[h] for h in trials)
    assert {h: store.count_metrics(h) for h in trials} == metric_rows
    store.close()


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except StoreError:  # the driver has not created the schema yet
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _start(spec: Path, url: str, tmp_path: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "FPTLAB_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    log = open(tmp_path / f"driver-{time.monotonic_ns()}.log", "w")
    return subprocess.Popen(sweep_cmd(spec, url, tmp_path, *extra), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _cleanup_group(proc: subprocess.Popen) -> None:
    """Kill whatever the driver left in its process group (Ray's own daemons survive a kill -9)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_kill_9_driver_then_resume(db_url, tmp_path):  # noqa: F811
    spec = write_spec(tmp_path, steps=300, eval_every=25, seeds=(0,))  # 2 cells, one at a time
    driver = _start(spec, db_url, tmp_path, "--max-concurrent", "1", "--lease", "600")
    try:
        def one_done_other_checkpointed() -> bool:
            t = trials_by_hash(db_url)
            done = [h for h, r in t.items() if r["status"] == "completed"]
            store = Store(db_url)
            try:
                running = [h for h, r in t.items() if r["status"] == "running" and store.count_metrics(h, "test_accuracy") >= 2]
            finally:
                store.close()
            return len(done) == 1 and len(running) == 1

        _wait_for(one_done_other_checkpointed, 240, "one completed trial and one running past a checkpoint")
        before = trials_by_hash(db_url)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(30)
    finally:
        _cleanup_group(driver)
    done_hash = next(h for h, r in before.items() if r["status"] == "completed")
    killed_hash = next(h for h, r in before.items() if r["status"] == "running")

    # The driver ran on this host and its process is gone: the next sweep reclaims at once
    # (no need to wait out the 600 s lease).
    again = run_sweep(spec, db_url, tmp_path, "--lease", "600")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    after = trials_by_hash(db_url)
    assert after[done_hash] == before[done_hash]  # the completed trial was not touched
    assert after[killed_hash]["status"] == "completed" and after[killed_hash]["attempts"] == 2
    store = Store(db_url)
    resumed = store.results([killed_hash])[killed_hash]["resumed_from"]
    assert resumed >= 50  # resumed from a checkpoint, not from step 0
    assert store.count_metrics(killed_hash) == 300 * 3 + 12 * 2  # every step exactly once, no duplicates
    store.close()


@pytest.mark.postgres
def test_two_concurrent_drivers_run_each_cell_once(db_url, tmp_path):  # noqa: F811
    if db_url.startswith("sqlite"):
        pytest.skip("several drivers on one database need PostgreSQL (SQLite has one writer: the driver)")
    spec = write_spec(tmp_path, steps=40, eval_every=20, seeds=(0, 1, 2))  # 6 cells
    drivers = [_start(spec, db_url, tmp_path, "--num-cpus", "1") for _ in range(2)]
    try:
        codes = [d.wait(timeout=600) for d in drivers]
    finally:
        for d in drivers:
            _cleanup_group(d)
    assert codes == [0, 0]
    trials = trials_by_hash(db_url)
    assert len(trials) == 6
    assert {t["status"] for t in trials.values()} == {"completed"}
    assert {t["attempts"] for t in trials.values()} == {1}  # each cell claimed, and run, exactly once
    store = Store(db_url)
    assert {store.count_metrics(h) for h in trials} == {40 * 3 + 2 * 2}
    store.close()


@pytest.mark.parametrize("sig, exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 128 + signal.SIGTERM)])
def test_ctrl_c_marks_running_trials_interrupted_and_leaves_no_ray(db_url, tmp_path, sig, exit_code):  # noqa: F811
    """Ctrl-C, and SIGTERM (a scheduler's kill) the same way: trials interrupted, the summary printed."""
    if not db_url.startswith("sqlite"):
        pytest.skip("the same code path on both dialects; exercised on SQLite")
    spec = write_spec(tmp_path, steps=2000, eval_every=100, seeds=(0,))
    driver = _start(spec, db_url, tmp_path, "--max-concurrent", "1")
    try:
        _wait_for(lambda: any(r["status"] == "running" for r in trials_by_hash(db_url).values()), 120, "a running trial")
        time.sleep(2)
        os.kill(driver.pid, sig)
        code = driver.wait(timeout=120)
        (log,) = tmp_path.glob("driver-*.log")
        text = log.read_text()
        assert code == exit_code, text[-2000:]
        assert "run the same command again to resume them" in text and "Traceback" not in text
        assert "2 cells, 0 already done" in text  # the summary printed
        statuses = sorted(r["status"] for r in trials_by_hash(db_url).values())
        assert "interrupted" in statuses and "running" not in statuses
        time.sleep(3)
        left = subprocess.run(["pgrep", "-g", str(driver.pid)], capture_output=True, text=True).stdout.split()
        assert left == [], f"processes left in the driver's group: {left}"
    finally:
        _cleanup_group(driver)


@pytest.mark.parametrize(
    "body, message",
    [
        ('[experiment]\nname = "x"\n[defaults]\ntask = "bit_xor"\n[gird]\nlr = [1]\n', "Did you mean 'grid'"),
        ('[experiment]\nname = "x"\n[defaults]\ntask = "bit_xor"\n[grid]\nlr = ["fast"]\n', "grid.lr[0]"),
        ('[experiment]\nname = "x"\n[defaults]\ntask = "bit_xor"\nbackbone = "gtp2"\n', "Did you mean 'gpt2'"),
    ],
)
def test_malformed_spec_exits_1_and_writes_nothing(tmp_path, body, message):
    spec = tmp_path / "bad.toml"
    spec.write_text(body)
    db = tmp_path / "fptlab.db"
    proc = run_sweep(spec, f"sqlite:///{db}", tmp_path)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not db.exists() and not (tmp_path / "runs").exists()


def test_read_only_commands_create_no_database(tmp_path):
    env = {**os.environ, "FPTLAB_OFFLINE": "1"}
    spec = write_spec(tmp_path)
    dry = subprocess.run([sys.executable, "-m", "fptlab.cli", "sweep", str(spec), "--dry-run"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert dry.returncode == 0 and "4 cells (0 already done)" in dry.stdout
    status = subprocess.run([sys.executable, "-m", "fptlab.cli", "status"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert status.returncode == 1 and "No results database" in status.stderr
    assert not (tmp_path / "fptlab.db").exists()


BIT_SPEC = """
[experiment]
name = "bit-transfer"

[defaults]
backbone = "gpt2-tiny"
steps = 4
eval_every = 2
batch_size = 4
[defaults.bit_memory]
n_strings = 2
n_bits = 8
bits_per_token = 4
test_size = 16
[defaults.bit_xor]
n_bits = 3
test_size = 16

[sources.bit]                      # the paper's "Bit": fully trained on bit memory, then frozen
task = "bit_memory"
init = "random"
train = ["all"]

[variants]
random = { init = "random" }
bit = { init = "pretrained", weights = "source:bit" }
orphan = { init = "pretrained", weights = "trial:0123456789abcdef" }

[grid]
task = ["bit_xor"]
"""


def test_bit_transfer_waits_for_its_source_and_orphans_fail_clearly(db_url, tmp_path):  # noqa: F811
    spec = tmp_path / "bit.toml"
    spec.write_text(BIT_SPEC)
    proc = run_sweep(spec, db_url, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]  # the orphan cell cannot run
    assert "4 cells, 0 already done, 4 run now" in proc.stdout
    store = Store(db_url)
    try:
        trials = {t["config"]["weights"]: t for t in store.trials()}
        source = next(t for t in trials.values() if t["config"]["save_body"])
        transfer = trials[f"trial:{source['config_hash']}"]
        orphan = trials["trial:0123456789abcdef"]
        assert (source["status"], transfer["status"], orphan["status"]) == ("completed", "completed", "failed")
        assert source["finished"] <= transfer["started"]  # it waited for the body
        (body,) = store.artifacts(source["config_hash"], kind="body")
        assert body["location"] == f"trials/{source['config_hash']}/body"  # relative to --storage (issue 14)
        assert "Cannot start: its weights come from trial 0123456789abcdef, which is not in the database" in orphan["error"]
        # The summary says why each failed cell failed, not only that it did.
        assert f"  {orphan['config_hash']}: Cannot start: its weights come from trial 0123456789abcdef" in proc.stderr
        assert source["torch_version"] and source["transformers_version"] and source["fptlab_version"] == fptlab.__version__
    finally:
        store.close()
