"""GPU paths, opt-in with `pytest --gpu` on a machine with CUDA (CI has none: these are skipped there).
They need only fptlab's own dependencies and the tests' fixture data (no asset packages, no network)."""

from __future__ import annotations

import math

import pytest
import torch

from fptlab.config import config_from_dict
from fptlab.steps import pick_device
from fptlab.train import train
from tests.conftest import TINY_OPTIONS

pytestmark = pytest.mark.gpu


def _cfg(**overrides):
    raw = {"task": "fashion_mnist", "fashion_mnist": TINY_OPTIONS["fashion_mnist"], "backbone": "gpt2-tiny", "init": "random",
           "steps": 4, "eval_every": 2, "batch_size": 8, "device": "cuda", **overrides}
    return config_from_dict(raw)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_runs_on_cuda(precision, data_dir):
    assert torch.cuda.is_available(), "--gpu given but no CUDA device is visible"
    result = train(_cfg(precision=precision), data_dir=data_dir)
    assert result.device.startswith("cuda") and result.status == "completed" and math.isfinite(result.test_loss)


def test_auto_device_picks_cuda():
    assert pick_device("auto").type == "cuda"


def test_cuda_forward_matches_cpu_in_fp32():
    from fptlab.model import build_model
    from fptlab.tasks import TaskSpec

    torch.manual_seed(0)
    cfg = config_from_dict({"task": "bit_xor", "backbone": "gpt2-tiny", "init": "random"})
    model = build_model(TaskSpec("dense", 16, 12, n_classes=10), cfg).eval()
    x = torch.randn(4, 12, 16)
    with torch.no_grad():
        on_cpu = model(x)
        on_gpu = model.to("cuda")(x.to("cuda")).cpu()
    torch.testing.assert_close(on_gpu, on_cpu, atol=1e-4, rtol=1e-4)


class _Rows:
    def __init__(self) -> None:
        self.rows: dict[int, dict] = {}
        self.final: dict = {}

    def start(self, info: dict) -> None:
        pass

    def log(self, step: int, metrics: dict) -> None:
        self.rows[step] = dict(metrics)

    def artifact(self, *args) -> None:
        pass

    def finish(self, result: dict) -> None:
        self.final = result


@pytest.mark.parametrize("backbone", ["gpt2-tiny", "bert-tiny"])
@pytest.mark.parametrize("k", [1, 4])
def test_a_captured_pack_step_equals_the_eager_one(backbone, k, data_dir):
    """The CUDA graph replays exactly the eager step: the same curves within fp32 tolerance (a member
    leaving mid-run makes it capture again: the first member stops at step 20)."""
    import warnings

    from fptlab.pack_train import Member, train_pack

    def run(capture: str) -> list[_Rows]:
        configs = [_cfg(backbone=backbone, capture=capture, lr=1e-3 * (j + 1), steps=20 if j == 0 else 40, eval_every=10,
                        dropout=0.0) for j in range(k)]
        sinks = [_Rows() for _ in configs]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a capture that falls back to eager would warn: fail instead
            train_pack([Member(c, s) for c, s in zip(configs, sinks)], data_dir=data_dir)
        return sinks

    for eager, captured in zip(run("off"), run("auto")):
        assert sorted(eager.rows) == sorted(captured.rows)
        for step, row in eager.rows.items():
            for key in ("train_loss", "grad_norm"):
                assert captured.rows[step][key] == pytest.approx(row[key], rel=1e-4, abs=1e-6), (step, key)


def test_a_solo_trial_on_cuda_takes_the_captured_path_and_reports_like_train(data_dir):
    from fptlab.pack_train import captured_alone

    cfg = _cfg(steps=8, dropout=0.0)
    assert captured_alone(cfg) and not captured_alone(cfg.replace(capture="off"))
    assert not captured_alone(cfg.replace(train=("all",)))  # trains the body: the solo loop, eager
