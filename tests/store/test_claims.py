"""Claiming: each trial runs once, retries are bounded, dead drivers' trials come back, and several
drivers (threads with their own connections, or processes) never claim the same trial twice."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import timedelta

import pytest

from fptlab.store import Store, StoreError
from fptlab.store.models import utcnow
from tests.store.helpers import add_cells, set_trial

LEASE = 300.0


def take(store: Store, h: str, owner: str = "A", max_attempts: int = 3):
    return store.claim(h, owner, "host-" + owner, LEASE, max_attempts)


def test_claim_a_queued_trial(store: Store) -> None:
    (h,) = add_cells(store, 1)
    claim = take(store, h)
    assert claim is not None and claim.attempt == 1 and not claim.reclaimed and not claim.retry
    (trial,) = store.trials()
    assert (trial["status"], trial["owner"], trial["host"], trial["attempts"]) == ("running", "A", "host-A", 1)
    assert trial["started"] is not None and trial["heartbeat"] is not None
    assert take(store, h, "B") is None  # live lease: not claimable by another driver


def test_completed_and_diverged_are_never_claimed(store: Store) -> None:
    done, diverged = add_cells(store, 2)
    for h, status in ((done, "completed"), (diverged, "diverged")):
        take(store, h)
        assert store.finish(h, "A", status, {"test_accuracy": 1.0})
        set_trial(store, h, heartbeat=utcnow() - timedelta(days=9))
        assert take(store, h, "B", max_attempts=99) is None
    assert store.statuses([done, diverged]) == {done: "completed", diverged: "diverged"}


def test_failed_trial_is_retried_up_to_max_attempts(store: Store) -> None:
    (h,) = add_cells(store, 1)
    for attempt in (1, 2):
        claim = take(store, h, max_attempts=2)
        assert claim is not None and claim.attempt == attempt and claim.retry == (attempt > 1)
        assert store.finish(h, "A", "failed", error="CUDA out of memory")
    assert take(store, h, max_attempts=2) is None
    (trial,) = store.trials()
    assert (trial["status"], trial["attempts"], trial["error"]) == ("failed", 2, "CUDA out of memory")
    assert take(store, h, max_attempts=3).attempt == 3  # a later sweep may allow more


def test_expired_lease_is_reclaimed_and_old_owner_refused(store: Store) -> None:
    (h,) = add_cells(store, 1)
    take(store, h, "A")
    set_trial(store, h, heartbeat=utcnow() - timedelta(seconds=LEASE + 5))  # A died
    claim = take(store, h, "B")
    assert claim is not None and claim.reclaimed and claim.attempt == 2 and claim.previous_status == "running"
    assert not store.finish(h, "A", "completed", {"test_accuracy": 0.1})  # A's late result is stale
    assert store.heartbeat([h], "A") == 0
    assert not store.log_metrics(h, [(1, "loss", 9.0)], owner="A")
    assert store.log_metrics(h, [(1, "loss", 1.0)], owner="B") and store.count_metrics(h) == 1
    assert store.finish(h, "B", "completed", {"test_accuracy": 0.9}, device="cuda:0")
    (trial,) = store.trials()
    assert (trial["status"], trial["owner"], trial["device"]) == ("completed", "B", "cuda:0")
    assert store.results([h]) == {h: {"test_accuracy": 0.9}}


def test_next_attempt_is_the_owners_alone_and_only_grows(store: Store) -> None:
    """Tune restarting a trial under its driver's claim gets a new fencing token; nobody else can."""
    (h,) = add_cells(store, 1)
    take(store, h, "A")
    set_trial(store, h, heartbeat=utcnow() - timedelta(seconds=LEASE - 1))
    assert store.next_attempt(h, "A") == 2 and store.next_attempt(h, "A") == 3
    assert take(store, h, "B") is None  # the restart renewed A's lease too
    assert store.next_attempt(h, "B") is None
    set_trial(store, h, heartbeat=utcnow() - timedelta(seconds=LEASE + 5))
    claim = take(store, h, "B", max_attempts=10)
    assert claim is not None and claim.attempt == 4  # B's token is above every token A held
    assert store.next_attempt(h, "A") is None
    (trial,) = store.trials()
    assert (trial["owner"], trial["attempts"]) == ("B", 4)


def test_heartbeat_keeps_the_lease(store: Store) -> None:
    (h,) = add_cells(store, 1)
    take(store, h, "A")
    set_trial(store, h, heartbeat=utcnow() - timedelta(seconds=LEASE - 1))
    assert store.heartbeat([h, "unknown"], "A") == 1
    set_trial(store, h, started=utcnow() - timedelta(days=1))  # the heartbeat, not the start, counts
    assert take(store, h, "B") is None


def test_dead_driver_with_no_attempts_left_is_marked_failed(store: Store) -> None:
    (h,) = add_cells(store, 1)
    take(store, h, "A", max_attempts=1)
    set_trial(store, h, heartbeat=utcnow() - timedelta(hours=1))
    assert take(store, h, "B", max_attempts=1) is None
    (trial,) = store.trials()
    assert trial["status"] == "failed" and "Lease expired" in trial["error"]


def test_release_interrupts_only_the_owners_running_trials(store: Store) -> None:
    a1, a2, b1, done = add_cells(store, 4)
    for h, owner in ((a1, "A"), (a2, "A"), (b1, "B"), (done, "A")):
        take(store, h, owner)
    store.finish(done, "A", "completed")
    assert store.release("A") == 2
    assert store.statuses([a1, a2, b1, done]) == {a1: "interrupted", a2: "interrupted", b1: "running", done: "completed"}
    claim = take(store, a1, "C")
    assert claim.attempt == 2 and claim.previous_status == "interrupted"


def test_interrupted_trials_stay_claimable_whatever_their_attempts(store: Store) -> None:
    (h,) = add_cells(store, 1)
    for attempt in (1, 2, 3):  # three Ctrl-Cs in a row with max_attempts=2: still resumable
        claim = take(store, h, max_attempts=2)
        assert claim is not None and claim.attempt == attempt
        assert store.release("A") == 1
    assert store.statuses([h]) == {h: "interrupted"}


def test_finish_and_release_validate_status(store: Store) -> None:
    (h,) = add_cells(store, 1)
    take(store, h)
    with pytest.raises(StoreError, match="expected one of completed, diverged, pruned, failed, interrupted"):
        store.finish(h, "A", "done")
    with pytest.raises(StoreError, match="max_attempts must be >= 1"):
        take(store, h, max_attempts=0)


def test_next_claim_follows_the_given_order(store: Store) -> None:
    hashes = add_cells(store, 4)
    set_trial(store, hashes[1], status="completed")
    order = [hashes[3], hashes[1], hashes[0], "missing", hashes[2]]
    got = [store.next_claim(order, "A", "h", LEASE, 3) for _ in range(4)]
    assert got == [hashes[3], hashes[0], hashes[2], None]


def test_requeue_resets_attempts(store: Store) -> None:
    (h,) = add_cells(store, 1)
    take(store, h, max_attempts=1)
    store.finish(h, "A", "failed", error="boom")
    assert take(store, h, max_attempts=1) is None
    assert store.requeue([h]) == 1
    assert take(store, h, max_attempts=1).attempt == 1


# ---- races ---------------------------------------------------------------------------------------
def _drain(store: Store, hashes: list[str], owner: str, start: threading.Barrier | None = None) -> list[str]:
    if start is not None:
        start.wait()
    got = []
    while (h := store.next_claim(hashes, owner, "host", LEASE, 3)) is not None:
        got.append(h)
    return got


def test_concurrent_drivers_claim_each_trial_once(store: Store, make_store) -> None:
    hashes = add_cells(store, 60)
    n = 8
    stores = [make_store() for _ in range(n)]  # one engine, hence real connections, per driver
    start = threading.Barrier(n)
    claimed: list[list[str]] = [[] for _ in range(n)]

    def run(i: int) -> None:
        claimed[i] = _drain(stores[i], hashes, f"driver{i}", start)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    flat = [h for got in claimed for h in got]
    assert sorted(flat) == sorted(hashes)  # every cell claimed, none twice
    assert sum(1 for got in claimed if got) > 1, "the drivers should have shared the work"
    owners = {t["config_hash"]: t["owner"] for t in store.trials()}
    assert all(owners[h] == f"driver{i}" for i, got in enumerate(claimed) for h in got)


def _drain_in_process(store: Store, hashes: list[str], owner: str) -> list[str]:
    return _drain(store, hashes, owner)


@pytest.mark.slow
def test_concurrent_processes_claim_each_trial_once(store: Store) -> None:
    hashes = add_cells(store, 40)
    context = multiprocessing.get_context("spawn")  # the Store travels pickled, as to a Ray worker
    with context.Pool(4) as pool:
        claimed = pool.starmap(_drain_in_process, [(store, hashes, f"proc{i}") for i in range(4)])
    flat = [h for got in claimed for h in got]
    assert sorted(flat) == sorted(hashes)
    assert set(store.statuses(hashes).values()) == {"running"}
