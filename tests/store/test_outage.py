"""A database outage does not end a sweep: the store retries whole transactions until the server is
back (every write lands exactly once), and gives up with a clear StoreError after the outage budget.

The server tests really stop the local PostgreSQL cluster (`pg_ctlcluster ... stop`) for a few
seconds and always start it again, so they run only as root, with pg_ctlcluster and
$FPTLAB_TEST_PG_URL set (what .ci/run provides)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy.exc import OperationalError

from fptlab.store import Store, StoreError
from fptlab.store.outage import DEFAULT_SECONDS, ENV_VAR, outage_budget
from tests.store.conftest import fresh_pg_schema, require_pg
from tests.store.helpers import add_cells

OUTAGE = 4.0  # seconds the server is down: long enough for several retries, short for the other users


# ---- the budget -----------------------------------------------------------------------------------
def test_budget_from_argument_environment_or_default(monkeypatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert outage_budget() == DEFAULT_SECONDS == 300
    assert outage_budget(12) == 12.0
    monkeypatch.setenv(ENV_VAR, "45")
    assert outage_budget() == 45.0 and outage_budget(0) == 0.0
    assert Store("postgresql+psycopg://u@h/d").outage_seconds == 45.0
    assert Store("postgresql+psycopg://u@h/d", outage_seconds=7).outage_seconds == 7.0
    assert Store("sqlite:///x.db").outage_seconds == 0.0  # a file has no server to wait for


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), "soon"])
def test_a_bad_budget_is_refused(monkeypatch, value) -> None:
    if isinstance(value, str):
        monkeypatch.setenv(ENV_VAR, value)
        with pytest.raises(StoreError, match=rf"\${ENV_VAR} must be a number of seconds .*'soon'"):
            outage_budget()
    else:
        with pytest.raises(StoreError, match="outage_seconds must be a number of seconds"):
            Store("postgresql+psycopg://u@h/d", outage_seconds=value)


def test_a_server_never_reached_fails_at_once() -> None:
    """A wrong host or port is not an outage: no waiting out the budget before saying so."""
    store = Store("postgresql+psycopg://u:pw@127.0.0.1:9/db", outage_seconds=300)
    start = time.monotonic()
    with pytest.raises(StoreError, match="Cannot reach the database server"):
        store.statuses(["x"])
    assert time.monotonic() - start < 15


# ---- a commit whose reply is lost -----------------------------------------------------------------
@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_pg_schema() as url:
        yield url


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    store = Store(pg_url, outage_seconds=30)
    store.upgrade()
    yield store
    store.close()


def lose_next_commit_reply(store: Store) -> None:
    """The next write transaction commits on the server, then its connection 'drops' before the reply."""
    make = store._sessions._write
    armed = [True]

    def session_factory():
        session = make()
        commit = session.commit

        def commit_then_drop() -> None:
            commit()
            if armed[0]:
                armed[0] = False
                lost = psycopg.OperationalError("server closed the connection unexpectedly")
                raise OperationalError("COMMIT", {}, lost, connection_invalidated=True)

        session.commit = commit_then_drop
        return session

    store._sessions._write = session_factory


@pytest.mark.postgres
def test_a_claim_whose_reply_was_lost_is_not_claimed_twice(pg_store: Store) -> None:
    hashes = add_cells(pg_store, 3)
    lose_next_commit_reply(pg_store)
    claimed = pg_store.next_claim(hashes, "A", "host", 300, max_attempts=3)
    assert claimed == hashes[0]
    trials = {t["config_hash"]: t for t in pg_store.trials()}
    assert [trials[h]["status"] for h in hashes] == ["running", "queued", "queued"]
    assert trials[hashes[0]]["attempts"] == 1


@pytest.mark.postgres
def test_an_artifact_and_a_release_whose_reply_was_lost(pg_store: Store) -> None:
    (h, other) = add_cells(pg_store, 2)
    pg_store.claim(h, "A", "host", 300, 3)
    pg_store.claim(other, "A", "host", 300, 3)
    lose_next_commit_reply(pg_store)
    first = pg_store.add_artifact(h, "checkpoint", "runs/x/ckpt.pt", {"step": 2})
    assert [a["id"] for a in pg_store.artifacts(h)] == [first]
    lose_next_commit_reply(pg_store)
    assert pg_store.release("A") == 2  # the count of the try that committed
    assert {t["status"] for t in pg_store.trials()} == {"interrupted"}


# ---- the real server goes away ---------------------------------------------------------------------
def _online_cluster() -> tuple[str, str] | None:
    if shutil.which("pg_lsclusters") is None:
        return None
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[3] == "online":
            return fields[0], fields[1]
    return None


def require_stoppable_server() -> tuple[str, str]:
    if not os.environ.get("FPTLAB_TEST_PG_URL"):
        pytest.skip("set FPTLAB_TEST_PG_URL to run the outage tests (they stop and restart the local server)")
    if shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        pytest.skip("stopping the PostgreSQL server needs pg_ctlcluster and root")
    require_pg()
    cluster = _online_cluster()
    if cluster is None:
        pytest.skip("no online PostgreSQL cluster in pg_lsclusters")
    return cluster


@contextmanager
def server_down(cluster: tuple[str, str]) -> Iterator[Callable[[], None]]:
    """Stop the cluster; the yielded function starts it again. It is started again on the way out
    whatever happens: other tests and workers use it."""
    started = [False]

    def start() -> None:
        if not started[0]:
            started[0] = True
            subprocess.run(["pg_ctlcluster", *cluster, "start"], capture_output=True, timeout=60)
            for _ in range(60):
                if subprocess.run(["pg_isready", "-q"]).returncode == 0:
                    return
                time.sleep(0.5)

    try:
        subprocess.run(["pg_ctlcluster", "-m", "fast", *cluster, "stop"], check=True, capture_output=True, timeout=60)
        yield start
    finally:
        start()


@pytest.mark.postgres
def test_writes_ride_out_a_server_restart(pg_url: str, caplog) -> None:
    cluster = require_stoppable_server()
    store, claimer = Store(pg_url, outage_seconds=60), Store(pg_url, outage_seconds=60)
    store.upgrade()
    hashes = add_cells(store, 40)
    (h, *rest) = hashes
    assert store.claim(h, "A", "host", 300, 3) is not None
    steps, errors, claimed = 150, [], []
    progress = threading.Semaphore(0)

    def write() -> None:
        try:
            for step in range(steps):
                assert store.log_metrics(h, [(step, "loss", float(step)), (step, "acc", step / steps)], owner="A")
                if step % 10 == 0:
                    store.add_artifact(h, "checkpoint", f"ckpt-{step}.pt", {"step": step})
                    store.heartbeat([h], "A")
                progress.release()
                time.sleep(0.04)
        except BaseException as e:  # noqa: BLE001 - reported by the test thread
            errors.append(e)

    def claim() -> None:
        try:
            while (got := claimer.next_claim(rest, "B", "host", 300, max_attempts=1)) is not None:
                claimed.append(got)
                time.sleep(0.2)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=write), threading.Thread(target=claim)]
    for t in threads:
        t.start()
    try:
        for _ in range(20):
            assert progress.acquire(timeout=30), "the writer made no progress before the outage"
        with server_down(cluster) as start:
            time.sleep(OUTAGE)
            start()
        for t in threads:
            t.join(120)
    finally:
        for t in threads:
            t.join(120)
    assert not errors, errors
    assert "Lost the database" in caplog.text and "is back after" in caplog.text  # there was an outage
    curve = [(key, step, value) for _, key, step, value in store.curves([h])]
    assert curve == sorted([("loss", s, float(s)) for s in range(steps)] + [("acc", s, s / steps) for s in range(steps)])
    assert [a["location"] for a in store.artifacts(h)] == [f"ckpt-{s}.pt" for s in range(0, steps, 10)]
    assert sorted(claimed) == sorted(rest)  # every cell claimed, none twice
    trials = {t["config_hash"]: t for t in store.trials()}
    assert all((trials[c]["status"], trials[c]["owner"], trials[c]["attempts"]) == ("running", "B", 1) for c in rest)
    store.close()
    claimer.close()


@pytest.mark.postgres
def test_beyond_the_budget_a_clear_error_then_it_works_again(pg_url: str) -> None:
    """Past the budget an operation raises a StoreError naming the outage; a later call tries once
    (no second budget) unless given one of its own, which is how a driver records how it ended."""
    cluster = require_stoppable_server()
    store = Store(pg_url, outage_seconds=2)
    store.upgrade()
    (h,) = add_cells(store, 1)
    store.claim(h, "A", "host", 300, 3)
    store.log_metrics(h, [(0, "loss", 1.0)])
    released: list[int] = []
    with server_down(cluster) as start:
        began = time.monotonic()
        with pytest.raises(StoreError) as info:
            store.log_metrics(h, [(1, "loss", 0.5)])
        waited = time.monotonic() - began
        began = time.monotonic()
        with pytest.raises(StoreError, match="unreachable for"):
            store.release("A")
        assert time.monotonic() - began < 1.5
        waiter = threading.Thread(target=lambda: released.append(store.release("A", outage_seconds=30)))
        waiter.start()
        time.sleep(0.5)
        start()
        waiter.join(60)
    message = str(info.value)
    assert re.search(r"The database '.*' was unreachable for [\d.]+ s, longer than the outage budget of 2 s "
                     r"\(--db-outage / \$FPTLAB_DB_OUTAGE_SECONDS\)\. Last error: OperationalError", message), message
    assert 2 <= waited < 8
    assert released == [1] and store.statuses([h]) == {h: "interrupted"}
    store.log_metrics(h, [(1, "loss", 0.5)])  # the server is back: the same store carries on
    assert store.count_metrics(h) == 2
    store.close()
