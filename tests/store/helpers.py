"""Small builders shared by the store tests."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import update

from fptlab.store import Store
from fptlab.store.models import Trial


def cell(i: int, task: str = "bit_xor", seed: int = 0, **config: Any) -> tuple[str, str, dict[str, Any]]:
    body = {"task": task, "seed": seed, "lr": 1e-3, "steps": 10, "train": ["input", "output"], task: {"n_bits": 5 + i}, **config}
    return (
        f"hash{i:04d}",
        json.dumps(body, sort_keys=True),
        {"task": task, "backbone": "minilm", "init": "pretrained", "seed": seed},
    )


def add_cells(store: Store, n: int, experiment: str = "exp") -> list[str]:
    exp = store.upsert_experiment(experiment, "test grid", "[grid]", "spec0")
    cells = [cell(i) for i in range(n)]
    store.add_trials(exp, cells)
    return [c[0] for c in cells]


def set_trial(store: Store, config_hash: str, **values: Any) -> None:
    """Force trial columns (e.g. an old heartbeat) the way a crashed driver would have left them."""
    with store.session(write=True) as session:
        session.execute(update(Trial).where(Trial.config_hash == config_hash).values(**values))
