"""A small results database built through the store API, the way a sweep records trials: register
the spec's cells, claim each trial, and write its run through the one recording path (StoreSink)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fptlab.plan import resolve_config
from fptlab.store import Store, new_owner_id
from fptlab.store.sink import StoreSink
from fptlab.sweep import load_spec

VERSIONS = {"fptlab": "0.3.0", "torch": "2.13.0", "transformers": "4.57.0"}


def spec_cells(path: Path, data_dir: Path) -> list[Any]:
    """The spec's cells with configs resolved as a sweep resolves them."""
    spec = load_spec(path)
    out = []
    for cell in spec.cells:
        out.append((cell.labels, resolve_config(cell.config, data_dir)))
    return out


def register(store: Store, name: str, configs: Iterable[Any]) -> None:
    exp = store.upsert_experiment(name, "test", "{}", "spec-test")
    store.add_trials(exp, list(configs))


def record(
    store: Store,
    config_hash: str,
    *,
    status: str = "completed",
    accuracy: float | None = None,
    curve: Sequence[tuple[int, float]] = (),
    results: Mapping[str, float] | None = None,
    host: str = "node-a",
    device: str = "cuda:0",
) -> None:
    owner = new_owner_id()
    assert store.claim(config_hash, owner, host, lease_seconds=600, max_attempts=5) is not None
    sink = StoreSink(store, config_hash, owner)
    sink.start({"device": device, "versions": dict(VERSIONS), "trainable_params": 1000, "total_params": 100000})
    for step, value in curve:
        sink.log(step, {"test_accuracy": value})
    if status == "failed":
        sink.fail("RuntimeError: boom")
        return
    if status == "running":
        sink.flush()
        return
    final = {"status": status, "steps": curve[-1][0] if curve else 100, "wall_seconds": 10.0}
    if accuracy is not None:
        final["test_accuracy"] = accuracy
        final["best_test_accuracy"] = accuracy
        final["train_accuracy"] = accuracy
    final.update(results or {})
    sink.finish(final)


def location(path: Path, storage: Path) -> str:
    """An artifact's location as a sweep stores it: relative to the storage folder."""
    return path.resolve().relative_to(storage.resolve()).as_posix()


def write_attention(folder: Path, attention: Any, inputs: Any = None, labels: Any = None, *, storage: Path) -> tuple[str, dict[str, Any]]:
    """An `attention` artifact as fptlab.artifacts.attention_maps writes it: a safetensors file with
    `attention` (n, T, T), `inputs` (n, T, d) and `labels`; returns (location relative to `storage`,
    meta) for add_artifact."""
    import numpy as np
    from safetensors.numpy import save_file

    att = np.ascontiguousarray(attention, dtype=np.float32)
    n, t = att.shape[0], att.shape[1]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "attention.safetensors"
    save_file({
        "attention": att,
        "inputs": np.ascontiguousarray(np.zeros((n, t, 1)) if inputs is None else inputs, dtype=np.float32),
        "labels": np.ascontiguousarray(np.zeros((n, 1)) if labels is None else labels, dtype=np.int64),
    }, str(path))
    return location(path, storage), {"examples": n, "block": 0, "shape": list(att.shape)}


def write_param_stats(folder: Path, backbone: str, rows: Sequence[Mapping[str, Any]], *, storage: Path) -> tuple[str, dict[str, Any]]:
    """A `param_stats` artifact as fptlab.artifacts.write_param_stats writes it; returns (location
    relative to `storage`, meta)."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "param_stats.json"
    path.write_text(json.dumps({"backbone": backbone, "rows": list(rows)}, indent=1, allow_nan=True))
    return location(path, storage), {"blocks": len({r["block"] for r in rows}), "rows": len(rows)}
