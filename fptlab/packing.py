"""Which cells of a sweep can train packed together, over one frozen body (no torch here).

A *pack* is up to K cells that share the frozen part exactly: backbone, weights, init, depth, which
groups are frozen, task and its options, batch size, precision, dropout, device. They may differ in
what is per member: seed (when the body does not depend on it: pretrained or saved weights), learning
rate, weight decay, gradient clipping, training length, evaluation cadence, stopping rules. The body
runs once on the members' stacked batch; each member's input and output layers, and its trainable layer
norms and position table, are its own tensors (`fptlab._packed`, `fptlab.pack_train`).

A cell runs alone, as before, when `alone_reason(cfg)` says why: it trains attention, feed-forward or
other body weights (a shared body must be frozen), a group in some blocks only, a family whose norms or
positions cannot be held per member, it caches features, accumulates micro-batches, samples random
evaluation batches, or records body artifacts (attention maps, parameter statistics, a saved body).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fptlab.groups import PAPER_GROUPS

PACKABLE_FAMILIES = ("gpt2", "bert")  # HF bodies whose layer norms are nn.LayerNorm and positions a PositionTable
PER_MEMBER = ("seed", "lr", "weight_decay", "grad_clip", "steps", "eval_every", "patience", "min_delta",
              "target_accuracy", "checkpoint_every")
SEED_FREE_INITS = ("pretrained",)  # the body is loaded, not drawn from the seed
# The most tokens a packed step should hold (members x batch x length), beyond which a pack stops paying.
# CPU, measured by bench/packing.py at 1 thread (README, Packed trials): packs of up to ~500 tokens gain
# (Bit XOR b2: 1.8-2.2x at 160-320 tokens); from ~1,000 tokens a step is compute-bound and packs lose
# (MiniLM Bit Memory b16, 1,920 tokens a member: 0.96x at K=2, 0.73x at K=8). GPU: a step becomes
# compute-bound later (the H200 probe: ListOps 512 tokens x 16 gained 1.1x); not measured here.
STEP_TOKENS = {"cpu": 512, "cuda": 16384}


@dataclass(frozen=True)
class Pack:
    """Cells that train as one Ray trial (one cell: trained alone; `reason` says why when it could not pack)."""

    hashes: tuple[str, ...]
    reason: str = ""


def alone_reason(cfg: Any) -> str:
    """Why `cfg` cannot join a pack ("" when it can)."""
    from fptlab.backbones import BACKBONES

    spec = BACKBONES.get(cfg.backbone)
    if spec.family not in PACKABLE_FAMILIES:
        return f"{spec.family} bodies are not packed yet (packs hold GPT-2 and BERT-family bodies)"
    extra = [g for g in cfg.train if g not in PAPER_GROUPS]
    if extra:
        return f"it trains {', '.join(extra)}: a body shared by a pack must be frozen"
    if cfg.cache_features:
        return "it caches features (one read-out over fixed features: nothing to share)"
    if cfg.micro_batch_size:
        return "it accumulates micro-batches"
    if cfg.eval_batches:
        return "it evaluates on random batches drawn per seed (eval_batches)"
    if cfg.attention_maps or cfg.param_stats or cfg.save_body:
        return "it records its own body's artifacts (attention maps, parameter statistics or a saved body)"
    return ""


def pack_key(cfg: Any) -> str:
    """What members of one pack share: the config without the per-member keys (with the seed when the
    body is drawn from it: random or statistics init)."""
    full = cfg.to_dict()
    free = set(PER_MEMBER)
    if cfg.init not in SEED_FREE_INITS:
        free.discard("seed")
    return json.dumps({k: v for k, v in full.items() if k not in free}, sort_keys=True, default=str)


def member_tokens(cfg: Any) -> int:
    """Tokens one member adds to a packed step: batch x the task's sequence length."""
    from fptlab.tasks import TASKS

    return cfg.batch_size * TASKS.get(cfg.task).spec(cfg.task_options).seq_len


def pack_limit(cfg: Any, k: int, device: str) -> int:
    """The largest pack worth forming for `cfg` on `device` ("cpu" or "cuda"), at most `k`: as many
    members as fit STEP_TOKENS (at least 1)."""
    return max(1, min(k, STEP_TOKENS[device] // max(1, member_tokens(cfg))))


def plan_packs(configs: Sequence[Any], k: int, device: str = "cpu") -> list[Pack]:
    """The packs a sweep of `configs` (in order) forms with at most `k` members each (fewer where the
    step would outgrow STEP_TOKENS on `device`): cells of one key in order of first appearance, cut into
    packs; cells that cannot pack stay alone, with why."""
    if k <= 1:
        return [Pack((c.hash,)) for c in configs]
    groups: dict[str, list[str]] = {}
    limits: dict[str, int] = {}
    out: list[Pack | str] = []
    for cfg in configs:
        reason = alone_reason(cfg)
        if reason:
            out.append(Pack((cfg.hash,), reason))
            continue
        key = pack_key(cfg)
        if key not in groups:
            groups[key] = []
            out.append(key)
            limits[key] = pack_limit(cfg, k, device)
        groups[key].append(cfg.hash)
    packs: list[Pack] = []
    for item in out:
        if isinstance(item, Pack):
            packs.append(item)
            continue
        members, size = groups[item], limits[item]
        for i in range(0, len(members), size):
            chunk = tuple(members[i:i + size])
            if len(chunk) > 1:
                packs.append(Pack(chunk))
            elif size == 1 and len(members) > 1:
                packs.append(Pack(chunk, f"its step is already {STEP_TOKENS[device]}+ tokens: packing pays no more on {device}"))
            elif len(members) > 1:
                packs.append(Pack(chunk, f"the other cells of its body fill packs of {size}"))
            else:
                packs.append(Pack(chunk, "no other cell shares its frozen body"))
    return packs


def packable_with(first: Any, others: Iterable[Any], k: int, device: str = "cpu") -> list[Any]:
    """Up to pack_limit - 1 of `others` (in order) that can join a pack with `first`."""
    if k <= 1 or alone_reason(first):
        return []
    key, limit = pack_key(first), pack_limit(first, k, device)
    return [c for c in others if not alone_reason(c) and pack_key(c) == key][: limit - 1]
