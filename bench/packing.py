"""Member-steps per second of packed trials (`fptlab.pack_train`) against trials run as a sweep runs
them alone, for packs of K = 1, 2, 4, 8, 16, on the paper's task shapes at batch 2 and 16.

Both sides run fptlab's own code on the same body: alone = `fptlab.steps.train_step` on an FPT built
by `fptlab.model.build_model` (forward, backward, clipping, Adam); packed = `fptlab.pack_train._update`
on a `PackedFPT` of K members over that body (one stacked forward and backward, per-member clipping
and `PackedOptimizer` update), plus, on CUDA, the same step captured as a CUDA graph (`_Capture`).
Members are copies of one member (a pack's members share the frozen body; their own tensors are
per member), trained groups are the paper's (input, output, positions, layer norms), random init.
A sweep runs one trial per slot, so the solo figure is 1 / (solo step time): K trials alone take K
times as long, and the ratio is (member-steps/s packed) / (member-steps/s alone).

Shapes: fptlab's task specs at the paper's options (Bit XOR, Bit Memory, CIFAR-10 4x4 patches, ListOps
at 512 tokens); the table prints each one's tokens x features.

Method: per (backbone, task, batch, K): `--warmup` untimed steps, then `--repeats` timed steps; the
figure is the median. fp32, torch threads as a sweep trial holds (`--threads`, default 1). Memory:
the CUDA peak allocated per member; on CPU the growth of the process's peak RSS while it ran (coarse).
Figures are printed as a table and, with --json, as JSON lines.

  python bench/packing.py                 # the CPU set: a few minutes on 2 cores
  python bench/packing.py --gpu --full    # every backbone x shape x batch x K on CUDA, eager and captured
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("FPTLAB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TASKS = {  # task -> options for the paper's shapes
    "bit_xor": {},
    "bit_memory": {},
    "cifar10": {"n_train": 8, "n_test": 8},
    "listops": {"source": "generated", "n_train": 8, "n_val": 8, "n_test": 8},
}
CPU_SET = [  # (backbone, task, batch, ks): what 2 CPU cores time in a few minutes
    ("gpt2", "bit_xor", 2, (1, 2, 4, 8, 16)),
    ("gpt2", "bit_xor", 16, (1, 2, 4, 8)),
    ("gpt2", "bit_memory", 2, (1, 2, 4, 8)),
    ("gpt2", "bit_memory", 16, (1, 2, 4)),
    ("gpt2", "cifar10", 2, (1, 2, 4, 8)),
    ("minilm", "bit_xor", 2, (1, 2, 4, 8, 16)),
    ("minilm", "bit_xor", 16, (1, 2, 4, 8, 16)),
    ("minilm", "bit_memory", 2, (1, 2, 4, 8, 16)),
    ("minilm", "bit_memory", 16, (1, 2, 4, 8)),
    ("minilm", "cifar10", 2, (1, 2, 4, 8)),
    ("minilm", "cifar10", 16, (1, 2, 4)),
    ("minilm", "listops", 2, (1, 2, 4)),
]
KS = (1, 2, 4, 8, 16)


@dataclass
class Row:
    backbone: str
    task: str
    batch: int
    shape: str  # tokens x features (ids: x vocabulary)
    k: int
    mode: str  # alone | packed | captured
    ms_per_step: float
    member_steps_per_s: float
    ratio: float  # over the solo member-steps/s of the same cell
    mib_per_member: float


def task_spec(task: str) -> Any:
    from fptlab.config import config_from_dict
    from fptlab.tasks import TASKS as REGISTRY

    cfg = config_from_dict({"task": task, task: TASKS[task]})
    return REGISTRY.get(task).spec(cfg.task_options)


def batch_of(spec: Any, k: int | None, batch: int, device: Any) -> tuple[Any, Any]:
    import torch

    lead = (batch,) if k is None else (k, batch)
    if spec.input_kind == "tokens":
        x = torch.randint(1, spec.input_dim, (*lead, spec.seq_len), device=device)
    else:
        x = torch.randn(*lead, spec.seq_len, spec.input_dim, device=device)
    y = torch.randint(0, spec.n_classes, (*lead, spec.n_outputs), device=device)
    return x, y


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(step: Any, warmup: int, repeats: int, device: Any) -> float:
    import torch

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(backbone: str, task: str, batch: int, ks: tuple[int, ...], args: argparse.Namespace, device: Any) -> list[Row]:
    import torch

    from fptlab.backbones import BACKBONES
    from fptlab.config import config_from_dict
    from fptlab.model import apply_trainable, build_model
    from fptlab.steps import make_optimizer, train_step

    spec = task_spec(task)
    cfg = config_from_dict({"task": task, task: TASKS[task], "backbone": backbone, "init": "random", "batch_size": batch,
                            "dropout": 0.0, "device": device.type})
    torch.manual_seed(0)
    model = build_model(spec, cfg).to(device)
    apply_trainable(model, BACKBONES.get(backbone), cfg.train)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(cfg, params)
    x, y = batch_of(spec, None, batch, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss = peak_rss_mib()
    solo = timed(lambda: train_step(model, optimizer, params, x, y, cfg, device), args.warmup, args.repeats, device)
    solo_mib = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else peak_rss_mib() - rss
    shape = f"{spec.seq_len}x{spec.input_dim}" + ("ids" if spec.input_kind == "tokens" else "")
    rows = [Row(backbone, task, batch, shape, 1, "alone", solo * 1e3, 1 / solo, 1.0, solo_mib)]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    for k in ks:
        if k * batch * spec.seq_len <= args.max_tokens:
            rows.extend(time_pack(model, trainable, spec, cfg, k, solo, shape, args, device))
    return rows


def time_pack(model: Any, trainable: list[str], spec: Any, cfg: Any, k: int, solo: float, shape: str, args: argparse.Namespace,
              device: Any) -> list[Row]:
    """One pack of k copies of `model`'s member: eager, and on CUDA captured."""
    import torch

    from fptlab._packed import PackedFPT, PackedOptimizer
    from fptlab.pack_train import _Capture, _update

    member = copy.deepcopy(model)  # PackedFPT swaps per-member modules into its first member's body
    packed = PackedFPT([member] * k, trainable).to(device)
    packed.train()
    optimizer = PackedOptimizer(packed, cfg.optimizer, [cfg.lr] * k, [0.0] * k, [cfg.grad_clip] * k)
    x, y = batch_of(spec, k, cfg.batch_size, device)

    def eager() -> Any:
        return _update(packed, optimizer, x, y, cfg, device)

    modes = [("packed", eager)]
    if device.type == "cuda":
        graph = _Capture(packed, optimizer, cfg, device, spec.seq_len)
        graph.WARMUP, graph.enabled = 0, True

        def captured() -> Any:
            return graph.run(x, y) if graph.enabled else eager()

        modes.append(("captured", captured))
    out = []
    for mode, step in modes:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        rss = peak_rss_mib()
        seconds = timed(step, args.warmup, args.repeats, device)
        mib = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else peak_rss_mib() - rss
        out.append(Row(cfg.backbone, cfg.task, cfg.batch_size, shape, k, mode, seconds * 1e3, k / seconds, (k / seconds) * solo, mib / k))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpu", action="store_true", help="time on CUDA (eager and captured)")
    parser.add_argument("--full", action="store_true", help="every backbone x task x batch x K (for a GPU)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a sweep trial: its CPUs)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=65536, help="skip packs of more tokens per step than this")
    parser.add_argument("--only", default="", help="backbone:task:batch filters, comma-separated (e.g. gpt2:bit_xor:2)")
    parser.add_argument("--json", action="store_true", help="also print one JSON line per figure")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.gpu else "cpu")
    if args.gpu and not torch.cuda.is_available():
        print("--gpu given but no CUDA device is visible", file=sys.stderr)
        return 2
    plan = [(b, t, n, KS) for b in ("gpt2", "minilm") for t in TASKS for n in (2, 16)] if args.full else CPU_SET
    if args.only:
        wanted = {tuple(x.split(":")) for x in args.only.split(",")}
        plan = [p for p in plan if (p[0], p[1], str(p[2])) in wanted]
    name = torch.cuda.get_device_name() if args.gpu else platform.processor() or platform.machine()
    print(f"# bench/packing.py on {device.type} ({name}), torch {torch.__version__}, {args.threads} thread(s), "
          f"median of {args.repeats} steps after {args.warmup} warm-up; fp32, random init, FPT groups trained")
    print(f"{'backbone':<8} {'task':<10} {'shape':<10} {'batch':>5} {'K':>3} {'mode':<9} {'ms/step':>9} {'member-steps/s':>15} "
          f"{'x alone':>8} {'MiB/member':>11}")
    for backbone, task, batch, ks in plan:
        for row in measure(backbone, task, batch, ks, args, device):
            print(f"{row.backbone:<8} {row.task:<10} {row.shape:<10} {row.batch:>5} {row.k:>3} {row.mode:<9} {row.ms_per_step:>9.1f} "
                  f"{row.member_steps_per_s:>15.2f} {row.ratio:>8.2f} {row.mib_per_member:>11.1f}", flush=True)
            if args.json:
                print(json.dumps(row.__dict__), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
