"""Training-step throughput: fptlab's `train_step` against a plain reference-style PyTorch loop.

Both sides train the same thing in one process: a GPT-2 body (random init, GPT-2's own config) fed
`inputs_embeds` from a Linear(48 -> d) input layer plus dropout 0.1, read out by a Linear(d -> 10) on
the last token, with only the input and output layers, the position table and the layer norms
trainable, optimised by Adam (lr 1e-3) with gradient-norm clipping 1.0 and cross-entropy. The shapes
default to the paper's CIFAR-10 (64 tokens × 48 features, 10 classes) at batch 16.

- fptlab side: `fptlab.model.build_model` + `apply_trainable(PAPER_GROUPS)` + `fptlab.steps.make_optimizer`,
  timed through the real `fptlab.steps.train_step` with a RunConfig whose precision is fp32 or bf16.
- baseline: written out below in the style of the paper's released code: `GPT2Model(GPT2Config())`
  called with `inputs_embeds`, parameters frozen by name (all position rows trainable, as there),
  `zero_grad / forward / loss.backward / clip_grad_norm_ / step / loss.item()`; bf16 wraps the forward
  and the loss in `torch.autocast`.

Both get the same input tensors, already on the device (this measures the step, not data loading).
Method: every variant (fptlab / baseline × fp32 / bf16) first runs `--warmup` untimed steps; then
`--repeats` rounds each time `--steps` consecutive steps of every variant, interleaved so that machine
noise lands on all of them alike (fptlab first in even rounds, the baseline first in odd ones). The
figure per variant is the median over rounds of steps / seconds. On CUDA the device is synchronised
before the clock starts and after the last step.

Targets (fptlab at least as fast as the baseline at fp32; bf16 at least 1.5× fp32) refer to a GPU.
On a CPU the fp32 ratio is still meaningful, but the bf16 speed-up is not the GPU's: CPUs without bf16
matrix instructions (AVX512-BF16 / AMX) usually run bf16 autocast *slower* than fp32 (casts plus slow
kernels), while ones with them can be ~2x faster (a 2-core AVX512-BF16 machine measured 1.8-1.9x).

Quick smoke run:  python bench/step_throughput.py --backbone gpt2-tiny --steps 20 --repeats 3
Default (GPT-2 base, 12 × 768; a few minutes on a 2-core CPU): python bench/step_throughput.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("FPTLAB_OFFLINE", "1")  # never reach the hub: both bodies are random-init

import torch
from torch import nn
from torch.nn import functional as F

from fptlab.backbones import BACKBONES
from fptlab.backbones._hf import import_transformers
from fptlab.backbones.gpt2 import SIZES
from fptlab.config import PAPER_GROUPS, config_from_dict
from fptlab.model import apply_trainable, build_model
from fptlab.plan import task_spec
from fptlab.steps import make_optimizer, pick_device, seed_everything, train_step
from fptlab.tasks.base import TaskSpec

INPUT_DIM, N_CLASSES = 48, 10  # CIFAR-10 as the reference fed it: 4×4×3 patches
PRECISIONS = ("fp32", "bf16")
SIDES = ("fptlab", "baseline")


# ---- baseline: a plain, reference-style FPT and training step ---------------------------------------
class ReferenceFPT(nn.Module):
    """Linear in -> GPT2Model(inputs_embeds) -> Linear out on the last token, frozen by parameter name."""

    def __init__(self, input_dim: int, n_classes: int, backbone: str, dropout: float = 0.1) -> None:
        super().__init__()
        tf = import_transformers()
        width, layers, heads, _, vocab = SIZES[backbone]
        # For "gpt2" this is exactly GPT2Config() (768 wide, 12 layers, 12 heads, 1024 positions).
        self.transformer = tf.GPT2Model(tf.GPT2Config(n_embd=width, n_layer=layers, n_head=heads, vocab_size=vocab))
        self.in_layer = nn.Linear(input_dim, width)
        nn.init.orthogonal_(self.in_layer.weight, gain=1.41)
        nn.init.zeros_(self.in_layer.bias)
        self.in_dropout = nn.Dropout(dropout)
        self.out_layer = nn.Linear(width, n_classes)
        for name, p in self.transformer.named_parameters():
            # Trainable in the body: layer norms (ln_1, ln_2, ln_f) and the whole position table.
            p.requires_grad_("ln_" in name or "wpe" in name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.transformer(inputs_embeds=self.in_dropout(self.in_layer(x))).last_hidden_state
        return self.out_layer(h[:, -1])


def baseline_step(model: nn.Module, optimizer: Any, params: list, x: torch.Tensor, y: torch.Tensor, bf16: bool) -> float:
    optimizer.zero_grad()
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    return loss.item()


# ---- harness -------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="gpt2", choices=list(SIZES), help="GPT-2 body for both sides (gpt2-tiny for a smoke run)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=64, help="sequence length T (input is T × 48)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per variant per round (default: 5 on CPU, 50 on CUDA)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the median over rounds is reported")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps per variant first (default: 2 on CPU, 10 on CUDA)")
    ap.add_argument("--precision", default="fp32,bf16", help="comma list out of fp32,bf16")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.precisions = tuple(p.strip() for p in args.precision.split(",") if p.strip())
    bad = [p for p in args.precisions if p not in PRECISIONS]
    if bad or not args.precisions:
        ap.error(f"--precision takes a comma list out of {','.join(PRECISIONS)}, got {args.precision!r}")
    return args


def make_fptlab_side(args: argparse.Namespace, device: torch.device) -> tuple[nn.Module, Any, list, dict[str, Any]]:
    base = {"task": "cifar10", "backbone": args.backbone, "init": "random", "batch_size": args.batch_size,
            "lr": 1e-3, "grad_clip": 1.0, "dropout": 0.1, "optimizer": "adam", "train": list(PAPER_GROUPS),
            "seed": args.seed, "device": args.device}
    cfgs = {p: config_from_dict({**base, "precision": p}) for p in PRECISIONS}
    spec = TaskSpec("dense", INPUT_DIM, args.tokens, n_classes=N_CLASSES)
    if args.tokens == 64:
        assert task_spec(cfgs["fp32"]) == spec, "cifar10's spec changed; keep the benchmark's shapes in step with it"
    seed_everything(args.seed)
    model = build_model(spec, config_from_dict({"task": "bit_xor", "backbone": args.backbone, "init": "random"})).to(device)
    apply_trainable(model, BACKBONES.get(args.backbone), PAPER_GROUPS)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(cfgs["fp32"], params)
    return model, optimizer, params, cfgs


def make_baseline_side(args: argparse.Namespace, device: torch.device) -> tuple[nn.Module, Any, list]:
    seed_everything(args.seed)
    model = ReferenceFPT(INPUT_DIM, N_CLASSES, args.backbone).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    return model, optimizer, params


def count(model: nn.Module) -> tuple[int, int]:
    ps = list(model.parameters())
    return sum(p.numel() for p in ps if p.requires_grad), sum(p.numel() for p in ps)


def timed(step: Callable[[], Any], n: int, device: torch.device) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) for n consecutive steps."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = pick_device(args.device)
    on_gpu = device.type == "cuda"
    steps = args.steps if args.steps is not None else (50 if on_gpu else 5)
    warmup = args.warmup if args.warmup is not None else (10 if on_gpu else 2)

    f_model, f_opt, f_params, cfgs = make_fptlab_side(args, device)
    b_model, b_opt, b_params = make_baseline_side(args, device)
    f_model.train()
    b_model.train()

    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch_size, args.tokens, INPUT_DIM, generator=gen).to(device)
    y = torch.randint(0, N_CLASSES, (args.batch_size,), generator=gen).to(device)
    y_fpt = y.reshape(-1, 1)  # fptlab's labels are (B, n_labels)

    steppers: dict[tuple[str, str], Callable[[], Any]] = {}
    for p in args.precisions:
        steppers[("fptlab", p)] = lambda p=p: train_step(f_model, f_opt, f_params, x, y_fpt, cfgs[p], device)
        steppers[("baseline", p)] = lambda p=p: baseline_step(b_model, b_opt, b_params, x, y, p == "bf16")

    f_train, f_total = count(f_model)
    b_train, b_total = count(b_model)
    print(f"# step throughput: backbone {args.backbone}, batch {args.batch_size} × {args.tokens} tokens × {INPUT_DIM}, "
          f"{N_CLASSES} classes, device {device}" + (f" ({torch.cuda.get_device_name(device)})" if on_gpu else
                                                    f" ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})"))
    print(f"# torch {torch.__version__}, transformers {import_transformers().__version__}, python {platform.python_version()}")
    print(f"# trainable / total params: fptlab {f_train:,} / {f_total:,}; baseline {b_train:,} / {b_total:,} "
          f"(baseline trains all {b_model.transformer.wpe.num_embeddings} position rows, fptlab {args.tokens})")
    print(f"# per variant: {warmup} warm-up steps, then {args.repeats} interleaved rounds × {steps} timed steps", flush=True)

    for step in steppers.values():
        for _ in range(warmup):
            step()

    samples: dict[tuple[str, str], list[float]] = {k: [] for k in steppers}
    wall_total = cpu_total = 0.0
    for r in range(args.repeats):
        order = SIDES if r % 2 == 0 else SIDES[::-1]
        for p in args.precisions:
            for side in order:
                secs, cpu = timed(steppers[(side, p)], steps, device)
                samples[(side, p)].append(steps / secs)
                wall_total, cpu_total = wall_total + secs, cpu_total + cpu
        line = "  ".join(f"{s}/{p} {samples[(s, p)][-1]:.3f}" for p in args.precisions for s in SIDES)
        print(f"round {r + 1}/{args.repeats}: steps/s  {line}", flush=True)

    med = {k: statistics.median(v) for k, v in samples.items()}
    # Noise diagnostics: the spread of each variant over rounds, and (on CPU) how much of the cores this
    # process actually got while timed; well below 1 means something else was running, so rerun.
    spread = {k: (max(v) - min(v)) / med[k] for k, v in samples.items()}
    cpu_share = cpu_total / (wall_total * torch.get_num_threads()) if wall_total > 0 else float("nan")
    result: dict[str, Any] = {
        "backbone": args.backbone, "device": str(device), "batch_size": args.batch_size, "tokens": args.tokens,
        "input_dim": INPUT_DIM, "steps": steps, "repeats": args.repeats, "warmup": warmup,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }
    if not on_gpu:
        result["cpu_share"] = round(cpu_share, 3)
    print()
    print(f"{'precision':<10}{'fptlab steps/s':>16}{'baseline steps/s':>18}{'fptlab/baseline':>17}{'spread f / b':>16}")
    for p in args.precisions:
        f, b = med[("fptlab", p)], med[("baseline", p)]
        sf, sb = spread[("fptlab", p)], spread[("baseline", p)]
        print(f"{p:<10}{f:>16.3f}{b:>18.3f}{f / b:>17.3f}{f'{sf:.0%} / {sb:.0%}':>16}")
        result[p] = {"fptlab_steps_per_s": round(f, 4), "baseline_steps_per_s": round(b, 4), "ratio": round(f / b, 4),
                     "fptlab_samples": [round(s, 4) for s in samples[("fptlab", p)]],
                     "baseline_samples": [round(s, 4) for s in samples[("baseline", p)]]}
    if set(PRECISIONS) <= set(args.precisions):
        speedup = {s: med[(s, "bf16")] / med[(s, "fp32")] for s in SIDES}
        print(f"{'bf16/fp32':<10}{speedup['fptlab']:>16.3f}{speedup['baseline']:>18.3f}"
              + ("" if on_gpu else "   (CPU figure; the 1.5x target is for a GPU)"))
        result["bf16_speedup"] = {s: round(v, 4) for s, v in speedup.items()}
    if not on_gpu:
        print(f"# this process got {cpu_share:.0%} of {torch.get_num_threads()} threads' CPU time while timed"
              + ("" if cpu_share >= 0.75 else " -- the machine was busy with something else; rerun when it is quiet"))
    if max(spread.values()) > 0.2:
        print("# spread over rounds above 20%: noisy measurement, rerun or raise --repeats / --steps")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
