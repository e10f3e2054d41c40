"""A validation split and stopping on its plateau (issue 16, section 6): the split is deterministic,
stratified, disjoint from training (official where a task has one, a fixed draw for generated tasks);
selection (early stopping, the reported step, a target) reads it and never the test split; bad values
are refused naming the allowed range; defaults change nothing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fptlab.config import config_from_dict
from fptlab.errors import ConfigError
from fptlab.tasks import TASKS
from fptlab.tasks.base import ArraySplit, chance_accuracy, stratified_split, with_validation
from fptlab.train import train

TINY_XOR = {"task": "bit_xor", "backbone": "bert-tiny", "init": "random", "batch_size": 8, "bit_xor": {"n_bits": 3, "test_size": 64}}


@pytest.mark.parametrize("raw, says", [
    ({"val_fraction": 0.0}, "'val_fraction' must be in (0, 1)"),
    ({"val_fraction": 1.0}, "'val_fraction' must be in (0, 1)"),
    ({"val_fraction": -0.2}, "got -0.2"),
    ({"val_fraction": 0.1, "patience": 0}, "'patience' must be at least 1"),
    ({"patience": 3}, "needs a validation split: set val_fraction"),
    ({"val_fraction": 0.1, "patience": 2, "min_delta": 1.5}, "'min_delta' must be in [0, 1)"),
    ({"min_delta": 0.01}, "only matters with patience"),
])
def test_bad_validation_settings_are_refused_naming_the_value(raw: dict, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"task": "bit_xor", **raw})
    assert says in str(info.value)


def test_a_stratified_split_is_seeded_disjoint_and_keeps_every_class() -> None:
    y = np.repeat(np.arange(4), [40, 30, 20, 10])
    split = ArraySplit(np.arange(len(y))[:, None], y)
    train_a, val_a = stratified_split(split, 0.2, 4, "t")
    train_b, val_b = stratified_split(split, 0.2, 4, "t")
    np.testing.assert_array_equal(val_a.x, val_b.x)  # deterministic: a function of the data alone
    assert not set(val_a.x[:, 0]) & set(train_a.x[:, 0]) and len(val_a) + len(train_a) == len(y)
    assert np.bincount(val_a.y).tolist() == [8, 6, 4, 2]  # 20% of each class
    with pytest.raises(ConfigError, match="too few to hold one of each of its 4 classes"):
        stratified_split(ArraySplit(np.arange(12)[:, None], np.arange(12) % 4), 0.2, 4, "t")


def test_generated_tasks_draw_a_fixed_validation_set_and_official_splits_are_used(tmp_path) -> None:
    task = TASKS.get("bit_xor")
    opts = config_from_dict(TINY_XOR).task_options
    a = with_validation(task, opts, task.load(opts, tmp_path), 0.1, tmp_path)
    b = with_validation(task, opts, task.load(opts, tmp_path), 0.1, tmp_path)
    assert len(a.val) == len(a.test) and np.array_equal(a.val.x, b.val.x) and not np.array_equal(a.val.x, a.test.x)
    listops = TASKS.get("listops")
    lo = config_from_dict({"task": "listops", "listops": {"source": "generated", "n_train": 30, "n_val": 6, "n_test": 5,
                                                          "min_length": 10, "max_length": 30, "max_len": 24, "eval_split": "test"}})
    data = with_validation(listops, lo.task_options, listops.load(lo.task_options, tmp_path), 0.1, tmp_path)
    assert len(data.val) == 6 and len(data.train) == 30 and "official split" in data.description  # LRA-style val
    default = dataclasses.replace(lo.task_options, eval_split="val")  # the reference evaluates on val: carve instead
    assert listops.validation(default, tmp_path) is None


def test_chance_accuracy_is_the_most_common_label() -> None:
    assert chance_accuracy(np.array([0, 0, 0, 1])) == 0.75
    assert chance_accuracy(np.array([[0, 1], [0, 0], [1, 1], [0, 1]])) == pytest.approx((0.75 + 0.75) / 2)


def test_no_val_fraction_changes_nothing(tmp_path) -> None:
    plain = train(config_from_dict({**TINY_XOR, "steps": 6, "eval_every": 3}), data_dir=tmp_path)
    assert np.isnan(plain.selected_step) and np.isnan(plain.best_val_accuracy) and not plain.stopped_on_plateau


def test_a_run_stops_on_a_validation_plateau_and_reports_the_selected_step(tmp_path) -> None:
    cfg = config_from_dict({**TINY_XOR, "steps": 400, "eval_every": 5, "val_fraction": 0.1, "patience": 2, "lr": 1e-6})
    result = train(cfg, data_dir=tmp_path)
    assert result.stopped_on_plateau and result.stopped_early and result.steps < 400
    assert result.selected_step <= result.steps - 2 * 5  # the best was `patience` evaluations before the stop
    assert 0 <= result.selected_test_accuracy <= 1 and 0 <= result.best_val_accuracy <= 1


def test_selection_never_reads_the_test_split(tmp_path, monkeypatch) -> None:
    """Corrupt every test label: where the run stops, the step it selects and its validation curve
    are unchanged; only the test accuracy reported at that step moves."""
    cfg = config_from_dict({**TINY_XOR, "steps": 120, "eval_every": 5, "val_fraction": 0.1, "patience": 3, "lr": 3e-3,
                            "target_accuracy": 0.97})
    clean = train(cfg, data_dir=tmp_path)
    task = TASKS.get("bit_xor")
    load = type(task).load

    def corrupted(self, opts, data_dir):
        data = load(self, opts, data_dir)
        return dataclasses.replace(data, test=ArraySplit(data.test.x, 1 - data.test.y))  # every test label flipped

    monkeypatch.setattr(type(task), "load", corrupted)
    dirty = train(cfg, data_dir=tmp_path)
    assert (dirty.steps, dirty.selected_step, dirty.best_val_accuracy, dirty.stopped_on_plateau, dirty.stopped_at_target) == (
        clean.steps, clean.selected_step, clean.best_val_accuracy, clean.stopped_on_plateau, clean.stopped_at_target)
    assert dirty.selected_test_accuracy == pytest.approx(1 - clean.selected_test_accuracy)
