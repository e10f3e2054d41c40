"""What a run leaves besides numbers, for the paper's figures and for other runs: first-block
attention maps (Figures 3-5), per-block parameter statistics (Figure 6) and the trained body
(the Bit-pretrained transformer of Section 3.2).

Each is a file in the run's folder (safetensors or JSON: nothing that runs code when read back) and a
record `(kind, location, meta)` handed to the run's sink, which in a sweep travels to the driver and
becomes a row of the store's artifacts table.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ATTENTION_FILE = "attention.safetensors"
STATS_FILE = "param_stats.json"
BODY_DIR = "body"
STAT_GROUPS = ("attention", "feedforward")


@dataclass(frozen=True)
class ArtifactRecord:
    kind: str  # attention | param_stats | body
    location: str
    meta: dict[str, Any] = field(default_factory=dict)


def attention_maps(model: Any, data: Any, n: int, folder: Path) -> ArtifactRecord:
    """The first block's attention probabilities, mean over heads, on the first `n` test examples
    (a fixed probe batch): tensor `attention` (n, T, T), with the probe's `inputs` and `labels`."""
    import torch
    from safetensors.torch import save_file

    n = min(n, len(data.test))
    x_raw, y = data.test.x[:n], data.test.y[:n]
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        maps = model.attention_maps(data.encode(x_raw, False, np.random.default_rng(0)).to(device)).float().cpu()
    model.train()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ATTENTION_FILE
    save_file({
        "attention": maps.contiguous(),
        "inputs": torch.as_tensor(np.asarray(x_raw, dtype=np.float32)).contiguous(),
        "labels": torch.as_tensor(np.asarray(y, dtype=np.int64)).contiguous(),
    }, str(path))
    return ArtifactRecord("attention", str(path.resolve()), {"examples": n, "block": 0, "shape": list(maps.shape)})


def param_stats(body: Any, spec: Any) -> list[dict[str, Any]]:
    """Per block and group (attention, feed-forward): mean and standard deviation of the weights
    (tensors of 2+ dims) and of the biases (1-dim), pooled over the group's tensors in that block.
    Works for any backbone and init; the paper's Figure 6 plots the stds of pretrained GPT-2 against
    its default initialisation (0.02 for weights, 0 for biases)."""
    pooled: dict[tuple[int, str, str], list[Any]] = {}
    for name, param in body.named_parameters():
        groups = spec.group_of(name)
        block = spec.layer_of(name)
        if block is None or not groups or groups[0] not in STAT_GROUPS:
            continue
        kind = "weight" if param.dim() >= 2 else "bias"
        pooled.setdefault((block, groups[0], kind), []).append(param.detach().float().reshape(-1))
    import torch

    rows = []
    for (block, group, kind), tensors in sorted(pooled.items()):
        values = torch.cat(tensors)
        rows.append({
            "block": block, "group": group, "kind": kind, "numel": int(values.numel()),
            "mean": float(values.mean()), "std": float(values.std()) if values.numel() > 1 else math.nan,
        })
    return rows


def write_param_stats(body: Any, spec: Any, folder: Path) -> ArtifactRecord:
    rows = param_stats(body, spec)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / STATS_FILE
    path.write_text(json.dumps({"backbone": spec.name, "rows": rows}, indent=1, allow_nan=True))
    return ArtifactRecord("param_stats", str(path.resolve()), {"blocks": len({r["block"] for r in rows}), "rows": len(rows)})


def write_body(body: Any, spec: Any, options: Any, folder: Path, config_hash: str, versions: dict[str, Any]) -> ArtifactRecord:
    from fptlab.bodies import save_body

    path = save_body(body, spec, options, folder / BODY_DIR, config_hash=config_hash, versions=versions)
    return ArtifactRecord("body", str(path.resolve()), {"backbone": spec.name, "blocks": body.n_blocks()})
