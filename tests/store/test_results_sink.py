"""The StoreSink (what `train` writes through) and the pandas frames read back from the store."""

from __future__ import annotations

import math

import pandas as pd

from fptlab.store import Store, StoreSink
from fptlab.store.results import curves_frame, trials_frame
from tests.store.helpers import add_cells

START_INFO = {
    "config_hash": "ignored",
    "config": {},
    "device": "cpu",
    "versions": {"fptlab": "0.2.0", "torch": "2.13.0", "transformers": "5.0.0"},
    "trainable_params": 1200,
    "total_params": 90000,
    "params_by_group": {"input": 200, "output": 1000},
    "resumed_from": 0,
    "data": "bit_xor n=5",
}


def run_fake(store: Store, h: str, owner: str, steps: int = 10, diverge_at: int | None = None, **sink_kw) -> StoreSink:
    """Drive the sink the way fptlab.train.train does."""
    sink = StoreSink(store, h, owner, **sink_kw)
    sink.start(START_INFO)
    for step in range(1, steps + 1):
        loss = math.nan if step == diverge_at else 1.0 / step
        metrics = {"train_loss": loss, "train_accuracy": step / steps, "grad_norm": math.inf if step == diverge_at else 1.0}
        if step % 5 == 0:
            metrics.update(test_loss=0.5 / step, test_accuracy=step / steps)
        sink.log(step, metrics)
        if step == diverge_at:
            break
    status = "diverged" if diverge_at else "completed"
    sink.finish(
        {
            "config_hash": h,
            "status": status,
            "steps": steps,
            "test_accuracy": 1.0,
            "test_loss": 0.05,
            "trainable_params": 1200,
            "total_params": 90000,
            "params_by_group": {"input": 200, "output": 1000},
            "device": "cpu",
            "wall_seconds": 1.5,
            "steps_per_second": 6.0,
            "stopped_early": False,
            "resumed_from": 0,
        }
    )
    return sink


def test_sink_records_a_run(store: Store) -> None:
    (h,) = add_cells(store, 1)
    store.claim(h, "A", "host", 300, 3)
    calls: list[int] = []
    original = store.log_metrics

    def counting(config_hash: str, rows: list, owner: str | None = None) -> bool:
        calls.append(len(rows))
        return original(config_hash, rows, owner=owner)

    store.log_metrics = counting  # type: ignore[method-assign]
    sink = run_fake(store, h, "A", steps=12, flush_every=9)
    assert sink.applied is True
    assert calls == [9, 8, 9, 8, 6]  # batched: flushed at evaluations (steps 5, 10), every 9 rows, and at finish
    assert store.count_metrics(h) == 12 * 3 + 2 * 2
    (trial,) = store.trials()
    assert (trial["status"], trial["device"], trial["fptlab_version"]) == ("completed", "cpu", "0.2.0")
    assert (trial["torch_version"], trial["transformers_version"]) == ("2.13.0", "5.0.0")
    results = store.results([h])[h]
    assert results["trainable_params"] == 1200 and results["params.output"] == 1000 and results["stopped_early"] == 0.0
    assert "status" not in results and "device" not in results


def test_sink_of_a_stale_owner_changes_nothing(store: Store) -> None:
    (h,) = add_cells(store, 1)
    store.claim(h, "A", "host", 300, 3)
    store.release("A")
    store.claim(h, "B", "host", 300, 3)
    sink = run_fake(store, h, "A", steps=3)
    assert sink.applied is False and sink.stale
    assert store.count_metrics(h) == 0  # A's late steps do not overwrite B's run
    (trial,) = store.trials()
    assert trial["status"] == "running" and trial["owner"] == "B" and trial["device"] is None


def test_sink_failure_keeps_logged_steps(store: Store) -> None:
    (h,) = add_cells(store, 1)
    store.claim(h, "A", "host", 300, 3)
    sink = StoreSink(store, h, "A", flush_every=1000)
    sink.log(1, {"train_loss": 2.0})
    sink.fail("RuntimeError: boom")
    assert store.count_metrics(h) == 1
    assert store.trials()[0]["error"] == "RuntimeError: boom" and store.statuses([h]) == {h: "failed"}


def test_frames(store: Store) -> None:
    hashes = add_cells(store, 3)
    for h in hashes[:2]:
        store.claim(h, "A", "host", 300, 3)
    run_fake(store, hashes[0], "A", steps=10)
    run_fake(store, hashes[1], "A", steps=10, diverge_at=7)
    frame = trials_frame(store, experiment="exp")
    assert list(frame.config_hash) == hashes and list(frame.status) == ["completed", "diverged", "queued"]
    assert {"lr", "bit_xor.n_bits", "train", "test_accuracy", "params.input", "result.steps"} <= set(frame.columns)
    assert list(frame["bit_xor.n_bits"]) == [5, 6, 7] and frame.loc[0, "train"] == ("input", "output")
    assert frame.loc[0, "result.steps"] == 10 and pd.isna(frame.loc[2, "test_accuracy"])
    assert list(trials_frame(store, status=["diverged"]).config_hash) == [hashes[1]]
    assert trials_frame(store, status="failed").empty

    curves = curves_frame(store, hashes[:2], keys=["train_loss", "grad_norm"])
    assert list(curves.columns) == ["config_hash", "key", "step", "value"]
    assert curves.dtypes["step"] == "int64" and curves.dtypes["value"] == "float64"
    diverged = curves[(curves.config_hash == hashes[1]) & (curves.key == "train_loss")]
    assert list(diverged.step) == list(range(1, 8)) and math.isnan(diverged.value.iloc[-1])
    norm = curves[(curves.config_hash == hashes[1]) & (curves.key == "grad_norm")].value
    assert norm.iloc[-1] == math.inf
    assert len(curves_frame(store)) == 10 * 3 + 2 * 2 + 7 * 3 + 2
    assert curves_frame(store, []).empty
