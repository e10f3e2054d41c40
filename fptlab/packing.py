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


def plan_packs(configs: Sequence[Any], k: int) -> list[Pack]:
    """The packs a sweep of `configs` (in order) forms with at most `k` members each: cells of one key
    in order of first appearance, cut into packs of `k`; cells that cannot pack stay alone, with why."""
    if k <= 1:
        return [Pack((c.hash,)) for c in configs]
    groups: dict[str, list[str]] = {}
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
        groups[key].append(cfg.hash)
    packs: list[Pack] = []
    for item in out:
        if isinstance(item, Pack):
            packs.append(item)
            continue
        members = groups[item]
        for i in range(0, len(members), k):
            chunk = tuple(members[i:i + k])
            if len(chunk) > 1:
                packs.append(Pack(chunk))
            elif len(members) > 1:
                packs.append(Pack(chunk, f"the other cells of its body fill packs of {k}"))
            else:
                packs.append(Pack(chunk, "no other cell shares its frozen body"))
    return packs


def packable_with(first: Any, others: Iterable[Any], k: int) -> list[Any]:
    """Up to k - 1 of `others` (in order) that can join a pack with `first`."""
    if k <= 1 or alone_reason(first):
        return []
    key = pack_key(first)
    return [c for c in others if not alone_reason(c) and pack_key(c) == key][: k - 1]
