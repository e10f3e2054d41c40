"""Training-step time of the LN-LSTM body (`lstm`) against GPT-2 base, both random init, same shapes.

Both sides are full FPT models built by `fptlab.model.build_model` for a dense task of `--input-dim`
(default 16) features per token, 10 classes, read out on the last token, at batch `--batch-size` and
each sequence length in `--tokens` (default 64 and 512, the lengths of the paper's image and ListOps
tasks). Each trains what the paper trains when frozen (its family's default `train`, Table 3): the LSTM
(3 layers × 768, Section 3.3) its input, output and layer norms; GPT-2 also its positions. One step =
`fptlab.steps.train_step` (forward, backward, gradient clipping, Adam from `fptlab.steps.make_optimizer`),
fp32, on the CPU, with the same input tensors for both.

Method, per length: `--warmup` untimed steps per side, then rounds that time one step of each side,
interleaved (LSTM first in even rounds) so that machine noise lands on both; the figure is the median
over rounds (`--repeats` rounds up to 128 tokens, `--long-repeats` above). The LSTM's time loop (the
recurrence over T steps, forward and backward) is timed alone once per round on one layer, at the same
shapes, and multiplied by the layer count; the rest of its step is step − loop.

Threads: on a machine shared with other processes pass --threads 1. With 2 threads each of the
LSTM's many small per-step kernels waits for the other thread to be scheduled: under load 5 on 2 cores
its step at T=64 took 22.7 s with 2 threads, 1.0 s with 1 (GPT-2, with fewer, larger kernels: 11.1 s, 4.7 s).

Memory: GPT-2 base at 512 tokens needs about 1.2 GB per example of batch (5.3 GB peak at batch 4,
fp32), the LSTM about 0.1 GB (2 GB at batch 16); on a small machine time 512 tokens at a smaller batch.

Quick smoke run:  python bench/lstm_step.py --tokens 16 --batch-size 4 --repeats 2
Default (a few minutes on a 2-core CPU):  python bench/lstm_step.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from typing import Any

os.environ.setdefault("FPTLAB_OFFLINE", "1")  # both bodies are random-init: never reach the hub
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from fptlab.backbones import BACKBONES
from fptlab.backbones._lstm import scan
from fptlab.config import config_from_dict
from fptlab.model import apply_trainable, build_model
from fptlab.steps import make_optimizer, seed_everything, train_step
from fptlab.tasks.base import TaskSpec

N_CLASSES = 10
SIDES = ("lstm", "gpt2")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--tokens", default="64,512", help="comma list of sequence lengths T")
    ap.add_argument("--input-dim", type=int, default=16)
    ap.add_argument("--lstm-layers", type=int, default=3, help="model.layers of the LSTM (paper: 3 or 12)")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds per length up to 128 tokens")
    ap.add_argument("--long-repeats", type=int, default=1, help="timed rounds per length above 128 tokens")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per side and length first")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.lengths = [int(t) for t in args.tokens.split(",") if t.strip()]
    if not args.lengths or min(args.lengths) < 1 or max(args.lengths) > 1024:
        ap.error(f"--tokens takes a comma list of lengths from 1 to 1024, got {args.tokens!r}")
    return args


def make_side(backbone: str, args: argparse.Namespace, spec: TaskSpec) -> tuple[Any, Any, list, Any]:
    raw: dict[str, Any] = {"task": "bit_xor", "backbone": backbone, "init": "random", "batch_size": args.batch_size}
    if backbone == "lstm":
        raw["model"] = {"layers": args.lstm_layers}
    cfg = config_from_dict(raw)  # the family's default train and lr (LSTM: input, output, layernorm; 3e-4)
    seed_everything(args.seed)
    model = build_model(spec, cfg).train()
    apply_trainable(model, BACKBONES.get(backbone), cfg.train)
    params = [p for p in model.parameters() if p.requires_grad]
    return model, make_optimizer(cfg, params), params, cfg


def count(model: Any) -> tuple[int, int]:
    ps = list(model.parameters())
    return sum(p.numel() for p in ps if p.requires_grad), sum(p.numel() for p in ps)


def loop_seconds(model: Any, batch: int, tokens: int) -> float:
    """Forward + backward of one layer's time loop (T steps of W_hh h, its norm, gates, cell) × layers."""
    layers = model.backbone.layers
    layer = layers[0]
    gx = torch.randn(tokens, batch, 4 * layer.hidden, requires_grad=True)  # (T, B, 4h) input gates
    t0 = time.perf_counter()
    out = scan(gx, layer.weight_hh, layer.bias_hh, layer.ln_hh, layer.ln_cell)  # (T, B, h)
    out.backward(torch.ones_like(out))
    return (time.perf_counter() - t0) * len(layers)


def timed(step: Any) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    step()
    return time.perf_counter() - t0, time.process_time() - c0


def bench_length(args: argparse.Namespace, tokens: int) -> dict[str, Any]:
    spec = TaskSpec("dense", args.input_dim, tokens, n_classes=N_CLASSES)
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch_size, tokens, args.input_dim, generator=gen)
    y = torch.randint(0, N_CLASSES, (args.batch_size, 1), generator=gen)  # fptlab's labels are (B, n_labels)
    sides = {name: make_side(name, args, spec) for name in SIDES}
    steppers = {name: (lambda s=s: train_step(s[0], s[1], s[2], x, y, s[3], torch.device("cpu"))) for name, s in sides.items()}
    for name, (model, *_rest) in sides.items():
        trainable, total = count(model)
        print(f"# T={tokens}: {name} trainable / total params {trainable:,} / {total:,}", flush=True)
    for step in steppers.values():
        for _ in range(args.warmup):
            step()
    rounds = args.repeats if tokens <= 128 else args.long_repeats
    samples: dict[str, list[float]] = {name: [] for name in (*SIDES, "loop")}
    wall = cpu = 0.0
    for r in range(rounds):
        for name in SIDES if r % 2 == 0 else SIDES[::-1]:
            secs, used = timed(steppers[name])
            samples[name].append(secs)
            wall, cpu = wall + secs, cpu + used
        samples["loop"].append(loop_seconds(sides["lstm"][0], args.batch_size, tokens))
        print(f"T={tokens} round {r + 1}/{rounds}: s/step  " + "  ".join(f"{k} {v[-1]:.3f}" for k, v in samples.items()), flush=True)
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {"tokens": tokens, "rounds": rounds, "lstm_s": med["lstm"], "gpt2_s": med["gpt2"], "loop_s": med["loop"],
            "ratio": med["lstm"] / med["gpt2"], "cpu_share": cpu / (wall * torch.get_num_threads()) if wall else float("nan"),
            "samples": {k: [round(s, 4) for s in v] for k, v in samples.items()}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# lstm ({args.lstm_layers} × 768, LN-LSTM) vs gpt2 (12 × 768), random init, fp32 CPU "
          f"({torch.get_num_threads()} threads, {platform.processor() or platform.machine()}), batch {args.batch_size}, "
          f"input dim {args.input_dim}, {N_CLASSES} classes; torch {torch.__version__}, python {platform.python_version()}")
    print(f"# load average before: {os.getloadavg()[0]:.2f} (a busy machine makes every figure slow and noisy)", flush=True)
    results = [bench_length(args, t) for t in args.lengths]
    print()
    print(f"{'T':>6}{'lstm s/step':>14}{'gpt2 s/step':>14}{'lstm/gpt2':>11}{'lstm loop s':>14}{'lstm rest s':>14}{'loop share':>12}{'cpu share':>11}")
    for r in results:
        rest = r["lstm_s"] - r["loop_s"]
        print(f"{r['tokens']:>6}{r['lstm_s']:>14.3f}{r['gpt2_s']:>14.3f}{r['ratio']:>11.3f}{r['loop_s']:>14.3f}{rest:>14.3f}"
              f"{r['loop_s'] / r['lstm_s']:>12.0%}{r['cpu_share']:>11.0%}")
    print("# loop = the recurrence alone (one layer timed, × layers); cpu share well below 100% means other processes ran too")
    print(f"# peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")
    out = {"batch_size": args.batch_size, "input_dim": args.input_dim, "lstm_layers": args.lstm_layers,
           "threads": torch.get_num_threads(), "torch": torch.__version__,
           "results": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in results]}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
