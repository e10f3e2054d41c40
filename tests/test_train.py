"""Training-loop contracts: seeds reproduce, micro-batching equals the full batch, divergence ends a
run as `diverged` with its last good metrics, resume from a checkpoint is exact, early stopping."""

from __future__ import annotations

import math

import pytest
import torch

import fptlab.train as train_mod
from fptlab.backbones import BACKBONES
from fptlab.config import config_from_dict
from fptlab.model import apply_trainable, build_model
from fptlab.sinks import JsonlSink, read_jsonl
from fptlab.steps import BatchOrder, make_optimizer, train_step
from fptlab.tasks import TaskSpec
from fptlab.train import train
from tests.conftest import TINY_OPTIONS


def tiny(task="bit_xor", **overrides):
    raw = {"task": task, task: TINY_OPTIONS[task], "backbone": "gpt2-tiny", "init": "random", "steps": 6, "eval_every": 3,
           "batch_size": 4, "lr": 1e-2, **overrides}
    return config_from_dict(raw)


def test_same_seed_same_numbers_other_seed_differs(data_dir):
    a, b = train(tiny(), data_dir=data_dir), train(tiny(), data_dir=data_dir)
    c = train(tiny(seed=1), data_dir=data_dir)
    assert (a.test_loss, a.train_loss) == (b.test_loss, b.train_loss)
    assert (c.test_loss, c.train_loss) != (a.test_loss, a.train_loss)
    assert a.status == "completed" and a.steps == 6 and a.trainable_params < a.total_params


def test_batch_order_covers_each_epoch_once():
    order = BatchOrder(10, seed=3)
    first_epoch = [i for step in range(1, 6) for i in order.indices(step, 2).tolist()]
    assert sorted(first_epoch) == list(range(10))
    assert order.indices(7, 4).tolist() == BatchOrder(10, seed=3).indices(7, 4).tolist()  # no replay needed


def test_micro_batches_accumulate_to_the_full_batch_gradient():
    spec = TaskSpec("dense", 3, 6, n_classes=4)
    x, y = torch.randn(8, 6, 3), torch.randint(0, 4, (8, 1))
    grads = []
    for micro in (None, 3):
        torch.manual_seed(0)
        model_cfg = config_from_dict({"task": "bit_xor", "backbone": "bert-tiny", "init": "random", "dropout": 0.0})
        model = build_model(spec, model_cfg).eval()  # eval: no dropout noise
        apply_trainable(model, BACKBONES.get("bert-tiny"), ("input", "output", "layernorm"))
        params = [p for p in model.parameters() if p.requires_grad]
        cfg = tiny(micro_batch_size=micro, batch_size=8, grad_clip=0.0)
        opt = make_optimizer(cfg, params)
        loss, acc, _ = train_step(model, opt, params, x, y, cfg, torch.device("cpu"))
        grads.append((loss, acc, [p.detach().clone() for p in params]))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-5) and grads[0][1] == grads[1][1]
    for p0, p1 in zip(grads[0][2], grads[1][2]):
        torch.testing.assert_close(p0, p1, atol=1e-6, rtol=1e-5)


def test_divergence_keeps_last_good_metrics(monkeypatch, data_dir, tmp_path):
    real = train_mod.train_step
    calls = {"n": 0}

    def exploding(*args, **kwargs):
        calls["n"] += 1
        loss, acc, norm = real(*args, **kwargs)
        return (math.nan, acc, norm) if calls["n"] == 5 else (loss, acc, norm)

    monkeypatch.setattr(train_mod, "train_step", exploding)
    sink = JsonlSink(tmp_path / "m.jsonl")
    result = train(tiny(), sink, data_dir=data_dir)
    assert result.status == "diverged" and result.steps == 4
    records = read_jsonl(tmp_path / "m.jsonl")
    evals = [r for r in records if r.get("event") == "log" and "test_accuracy" in r]
    assert [r["step"] for r in evals] == [3] and result.test_accuracy == evals[-1]["test_accuracy"]
    assert records[-2]["train_loss"] == "nan"  # the bad value is recorded explicitly
    assert records[-1]["event"] == "finish" and records[-1]["status"] == "diverged"


def test_resume_from_checkpoint_is_exact(monkeypatch, data_dir, tmp_path):
    cfg = tiny(task="mnist", checkpoint_every=2, steps=6)
    straight = train(cfg, data_dir=data_dir, run_dir=tmp_path / "a")
    real = train_mod.train_step
    calls = {"n": 0}

    def crash_at_5(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "train_step", crash_at_5)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, data_dir=data_dir, run_dir=tmp_path / "b")
    monkeypatch.setattr(train_mod, "train_step", real)
    resumed = train(cfg, data_dir=data_dir, run_dir=tmp_path / "b")
    assert resumed.resumed_from == 4
    assert (resumed.test_loss, resumed.test_accuracy, resumed.train_loss) == (straight.test_loss, straight.test_accuracy, straight.train_loss)
    files = sorted((tmp_path / "b").glob("checkpoint-*.pt"))
    assert len(files) == 2  # the newest and one to fall back to (fptlab.checkpoint.KEEP)
    assert max(f.stat().st_size for f in files) < 200_000  # trainable parameters and optimiser state only


def test_target_accuracy_stops_early(data_dir):
    result = train(tiny(target_accuracy=0.01, steps=30), data_dir=data_dir)
    assert result.stopped_early and result.steps == 3 and result.status == "completed"


def test_eval_batches_samples_like_the_reference(data_dir):
    whole = train(tiny(steps=3), data_dir=data_dir)
    sampled = train(tiny(steps=3, eval_batches=2), data_dir=data_dir)
    assert sampled.test_loss != whole.test_loss  # 2 batches of 4 from 16 test examples


@pytest.mark.parametrize("task", sorted(TINY_OPTIONS))
def test_every_task_trains_end_to_end(task, data_dir, tmp_path):
    sink = JsonlSink(tmp_path / "m.jsonl")
    result = train(tiny(task=task, steps=2, eval_every=2, backbone="bert-tiny"), sink, data_dir=data_dir)
    assert result.status == "completed" and 0.0 <= result.test_accuracy <= 1.0
    events = [r["event"] for r in read_jsonl(tmp_path / "m.jsonl")]
    assert events == ["start", "log", "log", "finish"]


def test_bf16_autocast_step_is_finite(data_dir):
    result = train(tiny(precision="bf16", steps=2, eval_every=2), data_dir=data_dir)
    assert math.isfinite(result.test_loss) and result.status == "completed"


def test_rerun_of_a_finished_run_trains_nothing(data_dir, tmp_path):
    cfg = tiny(target_accuracy=0.01, steps=30, checkpoint_every=3)
    first = train(cfg, data_dir=data_dir, run_dir=tmp_path / "c")
    again = train(cfg, data_dir=data_dir, run_dir=tmp_path / "c")
    assert first.stopped_early and first.steps == 3
    assert (again.steps, again.stopped_early, again.test_accuracy, again.resumed_from) == (3, True, first.test_accuracy, 3)


def test_train_groups_in_any_order_hash_the_same():
    assert tiny(train=["output", "input"]).hash == tiny(train=["input", "output", "input"]).hash
