"""Output-only training with cached features vs. without (paper Section 3.9, Table 10: "500-2000x").

With `train = ["output"]` and `cache_features = true`, fptlab runs the frozen body once per example
(the first epoch) and then trains the output layer on the cached read-out features. Without caching,
every epoch runs the body forward over every example (nothing below the read-out needs gradients, so
the backward pass stops at the output layer). This script measures, per example and so per epoch
for any dataset size:

- `uncached`: one training step of the output-only model on raw inputs (forward through the body,
  backward through the output layer, Adam), as an epoch without caching does;
- `features`: the one pass computing read-out features (eval mode, no grad), the extra cost of the
  first cached epoch;
- `cached`: one training step of the output layer on cached features, as every later epoch does.

Speedup after the first epoch = uncached / cached per example. Shapes are the paper's: ListOps (512
token ids, vocabulary 15) and CIFAR-10 LRA (1024 tokens × 1); inputs are random tensors of those
shapes (timing does not depend on their values), the bodies are GPT-2 base (random init: the same
arithmetic as pretrained) and MiniLM (its pretrained weights, offline). MiniLM has 512 positions, so
CIFAR-10 LRA's 1024 tokens cannot run on it; the script says so instead of inventing a number.

    python bench/output_only.py                 # both tasks, gpt2 and minilm, CPU, fp32
    python bench/output_only.py --batch 8 --repeats 3 --backbones gpt2
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

os.environ.setdefault("FPTLAB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fptlab.backbones import BACKBONES  # noqa: E402
from fptlab.cached import compute_features, output_head  # noqa: E402
from fptlab.config import config_from_dict  # noqa: E402
from fptlab.errors import FptlabError  # noqa: E402
from fptlab.model import apply_trainable, build_model  # noqa: E402
from fptlab.steps import make_optimizer, train_step  # noqa: E402
from fptlab.tasks.base import ArraySplit, TaskData, TaskSpec, identity_encode  # noqa: E402

SHAPES = {  # the paper's tasks: (spec, train-set size for the per-epoch estimate)
    "listops": (TaskSpec("tokens", 15, 512, n_classes=10), 96_000),
    "cifar10_lra": (TaskSpec("dense", 1, 1024, n_classes=10), 50_000),
}


def inputs(spec: TaskSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    if spec.input_kind == "tokens":
        return rng.integers(0, spec.input_dim, size=(n, spec.seq_len))
    return rng.standard_normal((n, spec.seq_len, spec.input_dim)).astype(np.float32)


def median_seconds(fn: Any, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(task: str, backbone: str, batch: int, repeats: int) -> dict[str, Any]:
    spec, n_train = SHAPES[task]
    init = "pretrained" if BACKBONES.get(backbone).has_pretrained and backbone != "gpt2" else "random"
    cfg = config_from_dict({"task": "bit_xor", "backbone": backbone, "init": init, "train": ["output"], "cache_features": True,
                            "batch_size": batch})
    BACKBONES.get(backbone).check_length(spec.seq_len, task)
    torch.manual_seed(0)
    model = build_model(spec, cfg)
    apply_trainable(model, BACKBONES.get(backbone), cfg.train)
    params = [p for p in model.parameters() if p.requires_grad]
    device = torch.device("cpu")
    rng = np.random.default_rng(0)
    x_raw, y = inputs(spec, batch, rng), torch.randint(0, 10, (batch, 1))
    x = identity_encode(x_raw, True, rng)

    optimizer = make_optimizer(cfg, params)
    uncached = median_seconds(lambda: train_step(model, optimizer, params, x, y, cfg, device), repeats)
    data = TaskData(spec=spec, train=ArraySplit(x_raw, y.numpy()[:, 0]), test=ArraySplit(x_raw, y.numpy()[:, 0]))
    features_s = median_seconds(lambda: compute_features(model, data, data.train, device, batch), repeats)
    feats = torch.from_numpy(compute_features(model, data, data.train, device, batch))
    head = output_head(model)
    head_optimizer = make_optimizer(cfg, list(head.parameters()))
    cached = median_seconds(lambda: train_step(head, head_optimizer, list(head.parameters()), feats, y, cfg, device), max(50, repeats), 5)
    per = {k: v / batch for k, v in (("uncached", uncached), ("features", features_s), ("cached", cached))}
    return {"task": task, "backbone": backbone, "init": init, **per, "speedup": per["uncached"] / per["cached"],
            "epoch_uncached_s": per["uncached"] * n_train, "epoch_cached_s": per["cached"] * n_train,
            "first_epoch_cached_s": (per["features"] + per["cached"]) * n_train, "n_train": n_train}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--backbones", nargs="+", default=["gpt2", "minilm"])
    ap.add_argument("--batch", type=int, default=8, help="examples per step (the paper: 2-16)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats of the body passes (median reported)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU fp32, batch {args.batch}; times per example, medians")
    header = f"{'task':<12} {'backbone':<8} {'uncached':>11} {'features':>11} {'cached':>11} {'speedup':>9}   per epoch (uncached / cached; first cached)"
    print(header)
    for task in args.tasks:
        for backbone in args.backbones:
            try:
                r = measure(task, backbone, args.batch, args.repeats)
            except FptlabError as e:
                print(f"{task:<12} {backbone:<8} not applicable: {e}")
                continue
            print(f"{task:<12} {backbone:<8} {r['uncached'] * 1e3:>9.2f}ms {r['features'] * 1e3:>9.2f}ms {r['cached'] * 1e6:>9.2f}us "
                  f"{r['speedup']:>8.0f}x   {r['epoch_uncached_s']:.0f} s / {r['epoch_cached_s']:.2f} s; "
                  f"{r['first_epoch_cached_s']:.0f} s  (N = {r['n_train']:,})")


if __name__ == "__main__":
    main()
