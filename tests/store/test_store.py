"""Experiments, trials, metrics, results and artifacts on every dialect."""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys
import threading

import pytest

from fptlab.store import Store, StoreError
from tests.store.helpers import Recorded, add_cells, cell, set_trial


def test_upsert_experiment_keeps_id_and_updates_spec(store: Store) -> None:
    first = store.upsert_experiment("table2", "Table 2", "a = 1", "h1")
    again = store.upsert_experiment("table2", "Table 2, grown", "a = [1, 2]", "h2")
    other = store.upsert_experiment("fig3", "Figure 3", "b = 1", "h3")
    assert first == again != other
    experiments = {e["name"]: e for e in store.experiments()}
    assert experiments["table2"]["spec_hash"] == "h2" and experiments["table2"]["description"] == "Table 2, grown"


def test_add_trials_is_idempotent_and_never_touches_existing(store: Store) -> None:
    hashes = add_cells(store, 3)
    set_trial(store, hashes[0], status="completed", attempts=1)
    exp = store.upsert_experiment("exp", "test grid", "[grid]", "spec1")
    store.add_trials(exp, [cell(i) for i in range(5)])  # the spec grew by two cells
    store.add_trials(exp, [cell(i) for i in range(5)])
    assert store.statuses(hashes + ["hash0003", "hash0004", "nope"]) == {
        "hash0000": "completed",
        "hash0001": "queued",
        "hash0002": "queued",
        "hash0003": "queued",
        "hash0004": "queued",
    }
    assert len(store.trials(experiment="exp")) == 5
    assert store.experiments()[0]["trials"] == 5


def test_trials_are_shared_between_experiments(store: Store) -> None:
    add_cells(store, 3, experiment="a")
    b = store.upsert_experiment("b", "", "", "x")
    store.add_trials(b, [cell(1), cell(7)])
    assert [t["config_hash"] for t in store.trials(experiment="b")] == ["hash0001", "hash0007"]
    assert len(store.trials()) == 4
    with pytest.raises(StoreError, match="Unknown experiment 'c'.*Available: a, b"):
        store.trials(experiment="c")


def test_add_trials_validates_input(store: Store) -> None:
    exp = store.upsert_experiment("e", "", "", "x")

    class Broken(Recorded):
        def record_json(self) -> str:
            return "{oops"

    with pytest.raises(StoreError, match="not JSON"):
        store.add_trials(exp, [Broken("h", {}, "bit_xor", 0)])
    with pytest.raises(StoreError, match="No experiment with id 999"):
        store.add_trials(999, [cell(0)])


def test_trials_filters_and_plain_dicts(store: Store) -> None:
    exp = store.upsert_experiment("e", "", "", "x")
    store.add_trials(exp, [cell(0, seed=0), cell(1, seed=1), cell(2, task="listops", seed=1)])
    set_trial(store, "hash0001", status="completed")
    rows = store.trials(where={"seed": 1})
    assert [r["config_hash"] for r in rows] == ["hash0001", "hash0002"]
    assert rows[0]["config"]["bit_xor"] == {"n_bits": 6} and rows[0]["status"] == "completed"
    assert [r["config_hash"] for r in store.trials(status="queued", where={"task": "listops"})] == ["hash0002"]
    assert len(store.trials(status=["queued", "completed"])) == 3
    with pytest.raises(StoreError, match="Cannot filter trials on 'colour'"):
        store.trials(where={"colour": 1})


def test_metrics_round_trip_nan_and_inf(store: Store) -> None:
    (h,) = add_cells(store, 1)
    values = [0.5, math.nan, math.inf, -math.inf, -0.0, 1e-300, 1.7976931348623157e308]
    store.log_metrics(h, [(step, "train_loss", v) for step, v in enumerate(values)])
    got = [v for _, _, _, v in store.curves([h], ["train_loss"])]
    assert len(got) == len(values)
    for a, b in zip(got, values):
        assert (math.isnan(a) and math.isnan(b)) or a == b


def test_relogged_step_is_updated_not_duplicated(store: Store) -> None:
    (h,) = add_cells(store, 1)
    store.log_metrics(h, [(1, "loss", 1.0), (2, "loss", 0.9), (2, "acc", 0.1)])
    store.log_metrics(h, [(2, "loss", math.nan), (3, "loss", 0.7), (3, "loss", 0.6)])  # a resumed run re-logs step 2
    assert store.count_metrics(h) == 4 and store.count_metrics(h, "loss") == 3
    curve = [(step, v) for _, key, step, v in store.curves([h]) if key == "loss"]
    assert curve[0] == (1, 1.0) and math.isnan(curve[1][1]) and curve[2] == (3, 0.6)


def test_metrics_for_unknown_trial(store: Store) -> None:
    with pytest.raises(StoreError, match="No trial with config hash 'nope'"):
        store.log_metrics("nope", [(1, "loss", 1.0)])
    store.log_metrics("nope", [])  # nothing to write: no error


def test_artifacts(store: Store) -> None:
    (h,) = add_cells(store, 1)
    first = store.add_artifact(h, "checkpoint", "runs/abc/ckpt.pt", {"step": 100})
    second = store.add_artifact(h, "figure", "fig.png")
    assert first != second
    assert [a["meta"] for a in store.artifacts(h)] == [{"step": 100}, {}]
    assert [a["location"] for a in store.artifacts(h, kind="figure")] == ["fig.png"]


def test_pickles_as_its_url(store: Store) -> None:
    (h,) = add_cells(store, 1)
    clone = pickle.loads(pickle.dumps(store))
    assert isinstance(clone, Store) and clone.url == store.url and clone is not store
    assert clone.statuses([h]) == {h: "queued"}
    clone.close()


def test_repr_never_shows_password() -> None:
    store = Store("postgresql+psycopg://fpt:hunter2@db.example:5432/fptlab")
    assert repr(store) == "Store('postgresql+psycopg://fpt:***@db.example:5432/fptlab')"
    assert "hunter2" not in str(store)


def test_a_run_config_is_recorded_whole_under_its_hash(store: Store) -> None:
    from fptlab.config import config_from_dict

    cfg = config_from_dict({"task": "bit_xor", "seed": 3, "bit_xor": {"n_bits": 4}})
    store.add_trials(store.upsert_experiment("e", "", "", "x"), [cfg])
    (trial,) = store.trials()
    assert trial["config_hash"] == cfg.hash and trial["config"] == json.loads(cfg.record_json())
    assert trial["config"]["bit_xor"] == {"n_bits": 4, "test_size": 1024} and trial["config"]["model"] == {"depth": 0}
    assert (trial["task"], trial["backbone"], trial["init"], trial["seed"]) == ("bit_xor", cfg.backbone, cfg.init, 3)


def test_concurrent_add_trials_of_overlapping_specs(store: Store, make_store) -> None:
    exp = store.upsert_experiment("e", "", "", "x")
    cells = [cell(i) for i in range(300)]
    orders = [cells, cells[::-1], cells[100:] + cells[:100], cells[::2]]
    stores = [make_store() for _ in orders]
    start = threading.Barrier(len(orders))
    errors: list[BaseException] = []

    def run(s: Store, batch: list) -> None:
        start.wait()
        try:
            s.add_trials(exp, batch)
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=run, args=args) for args in zip(stores, orders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(store.trials(experiment="e")) == 300


def test_store_imports_neither_torch_nor_ray() -> None:
    code = "import sys, fptlab.store, fptlab.store.results; sys.exit(bool({'torch', 'ray'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
