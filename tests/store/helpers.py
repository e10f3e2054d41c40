"""Small builders shared by the store tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update

from fptlab.store import Store
from fptlab.store.models import Trial


@dataclass(frozen=True)
class Recorded:
    """What `Store.add_trials` reads of a config (a RunConfig's `.hash`, `.record_json()` and filter
    columns), with readable hashes ("hash0003") so the store tests can name trials."""

    hash: str
    body: dict[str, Any]
    task: str
    seed: int
    backbone: str = "minilm"
    init: str = "pretrained"

    def record_json(self) -> str:
        return json.dumps(self.body, sort_keys=True)


def cell(i: int, task: str = "bit_xor", seed: int = 0, **config: Any) -> Recorded:
    body = {"task": task, "seed": seed, "lr": 1e-3, "steps": 10, "train": ["input", "output"], task: {"n_bits": 5 + i}, **config}
    return Recorded(f"hash{i:04d}", body, task, seed)


def add_cells(store: Store, n: int, experiment: str = "exp") -> list[str]:
    exp = store.upsert_experiment(experiment, "test grid", "[grid]", "spec0")
    cells = [cell(i) for i in range(n)]
    store.add_trials(exp, cells)
    return [c.hash for c in cells]


def set_trial(store: Store, config_hash: str, **values: Any) -> None:
    """Force trial columns (e.g. an old heartbeat) the way a crashed driver would have left them."""
    with store.session(write=True) as session:
        session.execute(update(Trial).where(Trial.config_hash == config_hash).values(**values))
