"""Contracts every registered task keeps: spec matches the data, encoded shapes/dtypes, labels in
range, determinism (data is a function of the options only), encode(train=False) draws no randomness."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fptlab.config import config_from_dict
from fptlab.plan import resolve_config
from fptlab.tasks import TASKS, StreamSplit
from tests.conftest import TINY_OPTIONS


def test_every_task_has_tiny_options():
    assert sorted(TINY_OPTIONS) == TASKS.names()


def _load(name, data_dir):
    cfg = resolve_config(config_from_dict({"task": name, name: TINY_OPTIONS[name], "backbone": "gpt2-tiny", "init": "random"}), data_dir)
    task = TASKS.get(name)
    return cfg, task, task.load(cfg.task_options, data_dir)


def _train_batch(data, n):
    rng = np.random.default_rng(0)
    if isinstance(data.train, StreamSplit):
        return data.train.sample(n, rng)
    return data.train.x[:n], data.train.y[:n]


@pytest.mark.parametrize("name", TASKS.names())
def test_spec_matches_data(name, data_dir):
    cfg, task, data = _load(name, data_dir)
    spec = task.spec(cfg.task_options)
    assert data.spec == spec
    x_raw, y = _train_batch(data, 4)
    x = data.encode(x_raw, True, np.random.default_rng(1))
    if spec.input_kind == "dense":
        assert x.dtype == torch.float32 and tuple(x.shape) == (4, spec.seq_len, spec.input_dim)
    else:
        assert x.dtype == torch.int64 and tuple(x.shape) == (4, spec.seq_len)
        assert 0 <= int(x.min()) and int(x.max()) < spec.input_dim
    y = np.asarray(y).reshape(4, -1)
    assert y.shape[1] == spec.n_outputs and y.min() >= 0 and y.max() < spec.n_classes
    assert len(data.test) > 0 and np.asarray(data.test.y).max() < spec.n_classes


@pytest.mark.parametrize("name", TASKS.names())
def test_data_is_deterministic(name, data_dir):
    _, _, a = _load(name, data_dir)
    _, _, b = _load(name, data_dir)
    np.testing.assert_array_equal(np.asarray(a.test.x), np.asarray(b.test.x))
    np.testing.assert_array_equal(np.asarray(a.test.y), np.asarray(b.test.y))
    xa, ya = _train_batch(a, 4)
    xb, yb = _train_batch(b, 4)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)


@pytest.mark.parametrize("name", TASKS.names())
def test_eval_encoding_uses_no_randomness(name, data_dir):
    _, _, data = _load(name, data_dir)
    rng = np.random.default_rng(5)
    before = rng.bit_generator.state
    first = data.encode(data.test.x[:3], False, rng)
    assert rng.bit_generator.state == before
    torch.testing.assert_close(first, data.encode(data.test.x[:3], False, np.random.default_rng(9)))


@pytest.mark.parametrize("name", TASKS.names())
def test_resolve_leaves_no_auto(name, data_dir):
    cfg, _, _ = _load(name, data_dir)
    assert "auto" not in str(cfg.to_dict()[name].get("source", ""))


@pytest.mark.parametrize("name", TASKS.names())
def test_data_fingerprint_is_stable_and_sensitive(name, data_dir):
    from fptlab.tasks.base import ArraySplit, data_fingerprint

    _, _, a = _load(name, data_dir)
    _, _, b = _load(name, data_dir)
    assert data_fingerprint(a) == data_fingerprint(b) and len(data_fingerprint(a)) == 16
    y = np.asarray(a.test.y).copy()
    y.flat[0] = (y.flat[0] + 1) % a.spec.n_classes
    a.test = ArraySplit(a.test.x, y)
    assert data_fingerprint(a) != data_fingerprint(b)
