"""GPU paths, opt-in with `pytest --gpu` on a machine with CUDA (CI has none: these are skipped there)."""

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
    raw = {"task": "mnist", "mnist": TINY_OPTIONS["mnist"], "backbone": "gpt2-tiny", "init": "random", "steps": 4,
           "eval_every": 2, "batch_size": 8, "device": "cuda", **overrides}
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
