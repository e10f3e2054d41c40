"""A driver that finishes while a live peer still runs some of the spec's cells reports those cells as
the peer's and exits 0 (issue 8, item 9). Deterministic: the peer is a claim made through the store
API by another owner, with a fresh heartbeat, so no timing decides which driver ends first."""

from __future__ import annotations

from pathlib import Path

from fptlab.store import Store
from fptlab.sweep import load_spec
from fptlab.sweep.run import prepare_cells
from tests.store.conftest import db_url  # noqa: F401  (fixture: fresh SQLite file / PostgreSQL schema)
from tests.sweep.test_sweep_e2e import run_sweep, trials_by_hash, write_spec

PEER = "peer-host:4242:cafe"  # another host's driver: never taken for a dead process here


def _registered(url: str, tmp_path: Path) -> tuple[Path, list, Store]:
    """A 2-cell spec registered in the database, as a sweep registers it: (spec file, cells, store)."""
    spec_path = write_spec(tmp_path, steps=6, eval_every=3, seeds=(0,))
    spec = load_spec(spec_path)
    cells = prepare_cells(spec, None).cells
    store = Store(url)
    store.ensure_schema()
    store.add_trials(store.upsert_experiment(spec.name, spec.description, spec.text, spec.hash), [c.config for c in cells])
    return spec_path, cells, store


def test_cells_held_by_a_live_peer_are_reported_and_the_sweep_exits_0(db_url, tmp_path: Path) -> None:  # noqa: F811
    spec_path, cells, store = _registered(db_url, tmp_path)
    peer_cell = cells[1].hash
    assert store.claim(peer_cell, PEER, "peer-host", lease_seconds=600, max_attempts=3) is not None
    store.close()

    done = run_sweep(spec_path, db_url, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "being run by another live driver (peer-host)" in done.stderr and peer_cell in done.stderr
    trials = trials_by_hash(db_url)
    assert trials[cells[0].hash]["status"] == "completed"
    assert trials[peer_cell]["status"] == "running" and trials[peer_cell]["owner"] == PEER  # untouched


def test_a_peer_whose_lease_ran_out_is_not_live(db_url, tmp_path: Path) -> None:  # noqa: F811
    from datetime import timedelta

    from tests.store.helpers import set_trial

    spec_path, cells, store = _registered(db_url, tmp_path)
    stale = cells[1].hash
    store.claim(stale, PEER, "peer-host", lease_seconds=600, max_attempts=3)
    set_trial(store, stale, heartbeat=store.now() - timedelta(seconds=3600))  # silent for an hour
    store.close()

    done = run_sweep(spec_path, db_url, tmp_path, "--lease", "60")
    assert done.returncode == 0, done.stderr[-2000:]
    trials = trials_by_hash(db_url)
    assert {t["status"] for t in trials.values()} == {"completed"}  # the dead peer's cell was reclaimed and run
    assert "another live driver" not in done.stderr
