"""A tuned sweep end to end through the real CLI, embedded Ray and SQLite: successive halving cuts
candidates (all their seeds) per arm and records them `pruned` (curves kept up to the rung, never
re-run), a re-run runs nothing, and a kill -9 inside the sweep is resumed without re-running anything
that finished (completed or pruned)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from fptlab.store import Store
from tests.sweep.test_sweep_e2e import _cleanup_group, _start, _wait_for, run_sweep, trials_by_hash

pytestmark = pytest.mark.slow

SPEC = """\
seeds = [0, 1]

[experiment]
name = "tuned-e2e"

[defaults]
task = "bit_xor"
backbone = "bert-tiny"
init = "random"
steps = {steps}
eval_every = 10
batch_size = 8
val_fraction = 0.25

[defaults.bit_xor]
n_bits = 3
test_size = 32

[grid]
train = [["input", "output"], ["all"]]

[tune]
key = "lr"
values = [3e-3, 1e-3, 1e-7]       # the hopeless 1e-7 comes last in each arm: halving cuts it (1e-3, the
                                  # default lr, is each arm's fixed value: never cut)
halving = {{ eta = 2, rungs = [20] }}
"""


def write(tmp_path: Path, steps: int) -> Path:
    path = tmp_path / f"tuned-{steps}.toml"
    path.write_text(SPEC.format(steps=steps))
    return path


def test_halving_prunes_per_arm_and_a_rerun_runs_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tuned.db'}"
    spec = write(tmp_path, 60)
    first = run_sweep(spec, url, tmp_path, "--max-concurrent", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "12 cells, 0 already done, 12 run now" in first.stdout
    trials = trials_by_hash(url)
    pruned = [h for h, t in trials.items() if t["status"] == "pruned"]
    assert pruned and all(t["status"] in ("completed", "pruned") for t in trials.values())
    store = Store(url)
    results, configs = store.results(pruned), store.trial_configs()
    candidates: dict[tuple, list[str]] = {}  # (trained groups, lr) -> its seeds' hashes
    for h, config in configs.items():
        candidates.setdefault((tuple(config["train"]), config["lr"]), []).append(h)
    for h in pruned:
        assert results[h]["pruned_at"] == 20
        steps = {step for _h, _k, step, _v in store.curves([h], ["val_accuracy"])}
        assert steps == {10, 20}  # its curve is kept, up to the rung
    for (train, lr), seeds in candidates.items():
        cut = [h for h in seeds if h in results]
        assert cut in ([], seeds), (train, lr)  # a candidate is kept or cut whole
        if cut:  # by its first seed at the rung, below the arm's earlier candidates' quantile
            assert lr != 1e-3 and min(results[h]["best_val_accuracy"] - results[h]["pruned_cutoff"] for h in cut) < 0
    store.close()

    again = run_sweep(spec, url, tmp_path, "--max-concurrent", "1")
    assert again.returncode == 0 and "12 already done, 0 run now" in again.stdout
    assert trials_by_hash(url) == trials  # pruned trials are done: nothing re-ran

    dry = run_sweep(spec, url, tmp_path, "--dry-run")
    assert dry.returncode == 0 and "lr=1e-07" in dry.stdout and dry.stdout.count("pruned") == len(pruned)


def test_a_kill_inside_a_tuned_sweep_resumes_without_rerunning_what_finished(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'killed.db'}"
    spec = write(tmp_path, 400)
    driver = _start(spec, url, tmp_path, "--max-concurrent", "1", "--lease", "600")
    try:
        def some_done() -> bool:
            t = trials_by_hash(url)
            return sum(r["status"] in ("completed", "pruned") for r in t.values()) >= 4
        _wait_for(some_done, 300, "four finished trials")
        before = trials_by_hash(url)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(30)
    finally:
        _cleanup_group(driver)
    finished = {h: t for h, t in before.items() if t["status"] in ("completed", "pruned")}
    store = Store(url)
    rows = {h: store.count_metrics(h) for h in finished}
    store.close()

    again = run_sweep(spec, url, tmp_path, "--max-concurrent", "1", "--lease", "600")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"12 cells, {len(finished)} already done" in again.stdout
    after = trials_by_hash(url)
    assert {h: after[h] for h in finished} == finished  # status, attempts, timestamps: untouched
    assert all(t["status"] in ("completed", "pruned") for t in after.values())
    store = Store(url)
    assert {h: store.count_metrics(h) for h in finished} == rows  # and not one metric row added to them
    store.close()
