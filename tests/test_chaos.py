"""The cheap faults of the chaos suite (bench/chaos.py), run in CI through the real CLI, embedded Ray
and a real database, in its --quick sizes: a kill -9 then a truncated newest checkpoint, a planted
hostile pickle, a new --db on old --storage (SQLite), and two drivers sharing a spec (PostgreSQL).
Each must be survived with no metric row lost and none recorded twice. The rest (server outages,
full disk, stalled drivers, ...) take minutes: `python bench/chaos.py`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chaos_suite import chaos

pytestmark = pytest.mark.slow


def check_survived(row) -> None:
    if row.survived.startswith("skipped"):
        if os.environ.get("CI") and row.backend == "postgres":
            pytest.fail(f"{row.fault} on {row.backend}: {row.survived}. CI must run the PostgreSQL faults.")
        pytest.skip(row.survived)
    assert row.survived == "yes", f"{row.fault} on {row.backend}: {row.detail}"
    if row.rows_lost is not None:  # None: the fault loses the rows by design (db-deleted), the audit does not apply
        assert (row.rows_lost, row.duplicates) == (0, 0), row.detail


@pytest.mark.parametrize("fault", ["truncated-checkpoint", "hostile-pickle", "new-db-old-storage", "db-deleted"])
def test_sqlite_fault_is_survived(fault: str) -> None:
    check_survived(chaos.run_fault(fault, "sqlite", chaos.QUICK))


@pytest.mark.postgres
def test_two_drivers_on_postgres_run_each_cell_once() -> None:
    if not os.environ.get("FPTLAB_TEST_PG_URL"):
        pytest.skip("set FPTLAB_TEST_PG_URL to run the PostgreSQL faults")
    check_survived(chaos.run_fault("two-drivers", "postgres", chaos.QUICK))


def test_every_fault_is_registered_with_its_backends() -> None:
    assert set(chaos.FAULTS) >= {"kill-9", "sigint", "pg-outage", "pg-outage-budget", "truncated-checkpoint", "hostile-pickle",
                                 "new-db-old-storage", "two-drivers", "full-disk"}
    for name, (fn, backends) in chaos.FAULTS.items():
        assert fn.__doc__ and set(backends) <= set(chaos.BACKENDS), name


def test_the_audit_counts_a_missing_row_and_a_step_with_two_values(tmp_path: Path) -> None:
    """Rows lost and duplicates as the module docstring defines them, on a hand-made database."""
    from fptlab.config import config_from_dict
    from fptlab.store import Store

    size = chaos.Size(steps=4, eval_every=2, cells=1)
    cfg = config_from_dict({"task": "bit_xor", "backbone": "bert-tiny", "steps": 4, "eval_every": 2})
    url = f"sqlite:///{tmp_path / 'a.db'}"
    store = Store(url)
    store.upgrade()
    store.add_trials(store.upsert_experiment("e", "", "[grid]", "s"), [cfg])
    rows = [(s, k, 0.5) for (k, s) in sorted(size.expected(), key=lambda r: (r[1], r[0]))]
    store.log_metrics(cfg.hash, rows)
    before = chaos.snapshot(url)
    assert chaos.audit(url, [cfg.hash], size, tmp_path, [before]).clean
    store.log_metrics(cfg.hash, [(3, "train_loss", 0.25), (9, "train_loss", 1.0)])  # a new value, a step beyond N
    with store.session(write=True) as session:
        from sqlalchemy import text

        session.execute(text("DELETE FROM metrics WHERE step = 4 AND key = 'test_loss'"))
    store.close()
    result = chaos.audit(url, [cfg.hash], size, tmp_path, [before])
    assert (result.lost, result.duplicates) == (1, 2), result.notes
