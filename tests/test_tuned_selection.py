"""Selection never reads the test split, shown on real training: a tuned spec's cells are trained twice,
once as they are and once with every test label corrupted. Validation curves, the selected steps and
the report's selected learning rates are identical; only the test accuracies shown differ."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fptlab.train as train_module
from fptlab.report.declare import Column, Row, Table
from fptlab.report.source import Snapshot, load_cells
from fptlab.report.tuned import build_tuned
from fptlab.store import Store, StoreSink, new_owner_id
from fptlab.sweep import load_spec
from fptlab.tasks.base import ArraySplit
from fptlab.train import train

SPEC = """\
seeds = [0, 1]

[experiment]
name = "select"

[defaults]
task = "bit_xor"
backbone = "bert-tiny"
init = "random"
steps = 30
eval_every = 10
batch_size = 8
val_fraction = 0.25

[defaults.bit_xor]
n_bits = 3
test_size = 64

[grid]
train = [["input", "output"], ["all"]]

[tune]
key = "lr"
values = [1e-4, 3e-3, 3e-2]
"""


def corrupt_test_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    real = train_module.with_validation

    def corrupted(task, opts, data, fraction, data_dir):
        out = real(task, opts, data, fraction, data_dir)
        out.test = ArraySplit(out.test.x, (np.asarray(out.test.y) + 1) % out.spec.n_classes)  # every test label wrong
        return out

    monkeypatch.setattr(train_module, "with_validation", corrupted)


def run_all(folder: Path, url: str) -> Store:
    store = Store(url)
    store.ensure_schema(create_if_empty=True)
    spec = load_spec(folder / "select.toml")
    store.add_trials(store.upsert_experiment(spec.name, "", spec.text, spec.hash), [c.config for c in spec.cells])
    for cell in spec.cells:
        owner = new_owner_id()
        assert store.claim(cell.hash, owner, "here", lease_seconds=600, max_attempts=1) is not None
        train(cell.config, StoreSink(store, cell.hash, owner), progress=False, threads=1)
    return store


def selection(store: Store, folder: Path) -> tuple[dict, dict, dict]:
    cells = load_cells("select", offline=False, folder=folder, store=store)
    table = Table(key="select", title="t", section="-", spec="select", tuned=True,
                  rows=(Row("Frozen", {"train": ["input", "output"]}), Row("Full", {"train": ["all"]})),
                  columns=(Column("XOR", {"task": "bit_xor"}),))
    snap = Snapshot.read(store, [c.hash for c in cells.cells])
    result = build_tuned(table, cells, snap)
    selected = {key: arm.selected for key, arm in result.arms.items()}
    val = {h: (r["best_val_accuracy"], r["selected_step"]) for h, r in snap.results.items()}
    test = {h: r["selected_test_accuracy"] for h, r in snap.results.items()}
    return selected, val, test


def test_corrupting_every_test_label_changes_no_selection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "select.toml").write_text(SPEC)
    honest = selection(run_all(tmp_path, f"sqlite:///{tmp_path / 'honest.db'}"), tmp_path)
    corrupt_test_labels(monkeypatch)
    corrupted = selection(run_all(tmp_path, f"sqlite:///{tmp_path / 'corrupted.db'}"), tmp_path)
    assert honest[0] == corrupted[0]  # the selected lr of every arm
    assert all(v is not None for v in honest[0].values())
    assert honest[1] == corrupted[1]  # every trial's best validation accuracy and the step it selected
    assert honest[2] != corrupted[2]  # while the test accuracies did change
    assert sum(honest[2][h] + corrupted[2][h] == pytest.approx(1.0) for h in honest[2]) == len(honest[2])  # binary: flipped
