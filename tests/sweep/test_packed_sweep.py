"""A packed sweep end to end through the real CLI, embedded Ray and SQLite: packs form from cells that
share a frozen body, every member is recorded as its own trial (with the pack it ran in), and a kill
-9 mid-pack resumes each unfinished member from its own checkpoint: nothing finished re-runs, nothing
is duplicated."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from fptlab.store import Store
from tests.sweep.test_sweep_e2e import _cleanup_group, _start, _wait_for, run_sweep, trials_by_hash

pytestmark = pytest.mark.slow

SPEC = """\
[experiment]
name = "packed-e2e"
pack = 4

[defaults]
task = "bit_xor"
backbone = "bert-tiny"
init = "random"
steps = {steps}
eval_every = 25
batch_size = 4

[defaults.bit_xor]
n_bits = 3
test_size = 16

[grid]
lr = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1]
"""


def test_a_kill_mid_pack_resumes_every_member_without_duplicates(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'packed.db'}"
    spec = tmp_path / "packed.toml"
    spec.write_text(SPEC.format(steps=300))
    dry = run_sweep(spec, url, tmp_path, "--dry-run")
    assert dry.returncode == 0 and "Packs (--pack 4, cpu trials): 2 pack(s) holding 8 cells" in dry.stdout
    driver = _start(spec, url, tmp_path, "--num-cpus", "1", "--lease", "600")
    try:
        def first_pack_done_second_checkpointed() -> bool:
            t = trials_by_hash(url)
            done = [h for h, r in t.items() if r["status"] == "completed"]
            store = Store(url)
            try:
                running = [h for h, r in t.items() if r["status"] == "running" and store.count_metrics(h, "test_accuracy") >= 2]
            finally:
                store.close()
            return len(done) >= 4 and len(running) >= 1
        _wait_for(first_pack_done_second_checkpointed, 300, "a finished pack and a running one past a checkpoint")
        before = trials_by_hash(url)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(30)
    finally:
        _cleanup_group(driver)
    done = {h: t for h, t in before.items() if t["status"] == "completed"}
    killed = [h for h, t in before.items() if t["status"] == "running"]

    again = run_sweep(spec, url, tmp_path, "--num-cpus", "1", "--lease", "600")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    after = trials_by_hash(url)
    assert {h: after[h] for h in done} == done  # finished members untouched
    assert all(t["status"] == "completed" for t in after.values())
    store = Store(url)
    results = store.results(list(after))
    for h in killed:
        assert after[h]["attempts"] == 2 and results[h]["resumed_from"] >= 25  # from its own checkpoint
    for h in after:
        assert store.count_metrics(h) == 300 * 3 + 12 * 2, h  # every step exactly once: no duplicates
        assert results[h]["pack_size"] >= 1
    packs = {tuple(a["meta"]["members"]) for h in after for a in store.artifacts(h, "pack")}
    assert any(len(p) == 4 for p in packs)  # the first pack, as it formed
    store.close()
