"""The Frozen Pretrained Transformer (paper Section 2.2, Figure 2).

FPT = input layer -> body -> output layer on the read-out token(s). The input layer is a Linear
(orthogonal init, gain 1.41, zero bias) plus dropout for dense tokens, or an Embedding for token
ids. The output layer is a Linear read from the last token, from the last k tokens for the bit tasks
(reshaped to (labels, classes)), or from the last real token of right-padded token sequences. The
body comes from an init scheme (`fptlab.inits`), keeps `model.depth` blocks and the task's positions.
Which parameters train is declared by group name (`fptlab.groups`), per block where asked.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fptlab.backbones import BACKBONES, BackboneSpec
from fptlab.errors import IncompatibleError
from fptlab.groups import ALL, ALL_GROUPS, block_index, check_available, parse_all
from fptlab.tasks.base import TaskSpec

if TYPE_CHECKING:
    from fptlab.config import RunConfig


def build_body(cfg: RunConfig, seq_len: int, *, weights_path: Path | None = None, meta: bool = False) -> Any:
    """The body of `cfg` (its init scheme, options, depth), cut to `seq_len` positions."""
    import torch

    from fptlab.inits import INITS

    spec = BACKBONES.get(cfg.backbone)
    options = cfg.model_options if cfg.model_options is not None else spec.Options()
    if meta:  # shapes only: no memory, no weights, no randomness
        with torch.device("meta"):
            body = spec.build(spec, options)
    else:
        body = INITS.get(cfg.init).make(spec, options, cfg.weights, weights_path)
    try:
        return body.fit(spec.depth_of(options), seq_len)
    except ValueError as e:
        raise IncompatibleError(f"Backbone '{cfg.backbone}' cannot run this task: {e}.") from None


def build_model(task: TaskSpec, cfg: RunConfig, *, weights_path: Path | None = None, meta: bool = False) -> Any:
    """Build an FPT for `cfg`. `meta=True` builds shapes only (for counting parameters)."""
    import torch

    from fptlab._fpt import FPT

    spec = BACKBONES.get(cfg.backbone)
    spec.check_length(task.seq_len)
    body = build_body(cfg, task.seq_len, weights_path=weights_path, meta=meta)
    mask_pads = masks_pads(cfg, task, spec)
    if meta:
        with torch.device("meta"):
            return FPT(task, body, spec.d_model, cfg.dropout, mask_pads)
    return FPT(task, body, spec.d_model, cfg.dropout, mask_pads)


def masks_pads(cfg: RunConfig, task: TaskSpec, spec: BackboneSpec) -> bool:
    """Whether the body is told where the pads are: right-padded token ids (the task declares its pad
    id) into a bidirectional body, unless `mask_padding = false`. A causal or recurrent body never
    reads a later pad from a real position, so it runs unmasked, as in the paper's code."""
    return cfg.mask_padding and task.input_kind == "tokens" and task.pad_id is not None and not spec.causal


# ---- groups --------------------------------------------------------------------------------------
def parameter_groups(model: Any, spec: BackboneSpec) -> dict[str, str]:
    """Map every parameter name to its one group; an undeclared or doubly-claimed name is a bug."""
    out: dict[str, str] = {}
    for name, _ in model.named_parameters():
        head, _, rest = name.partition(".")
        groups = [head] if head in ("input", "output") else spec.group_of(rest)
        assert len(groups) == 1, f"parameter {name!r} of {spec.name} matches groups {groups}; fix its declaration"
        out[name] = groups[0]
    return out


def parameter_layers(model: Any, spec: BackboneSpec) -> dict[str, int | None]:
    """Block index of every parameter (None outside the blocks: input, output, positions, final norm)."""
    return {name: spec.layer_of(name.partition(".")[2]) if name.startswith("backbone.") else None
            for name, _ in model.named_parameters()}


def apply_trainable(model: Any, spec: BackboneSpec, train: tuple[str, ...]) -> dict[str, str]:
    """Freeze everything except what `train` names (groups, `GROUP@LAYERS`, `all`). A group that
    matches no parameter of this backbone is an error. Returns the name -> group map."""
    groups = parameter_groups(model, spec)
    layers = parameter_layers(model, spec)
    chosen = _chosen(train, groups, layers, spec, model.backbone.n_blocks())
    for name, param in model.named_parameters():
        param.requires_grad_(name in chosen)
    return groups


def _chosen(train: tuple[str, ...], groups: dict[str, str], layers: dict[str, int | None], spec: BackboneSpec,
            n_blocks: int) -> set[str]:
    present = sorted(set(groups.values()), key=ALL_GROUPS.index)
    chosen: set[str] = set()
    for ref in parse_all(train):
        if ref.group == ALL:
            return set(groups)
        check_available(ref, spec.name, present)
        members = {n for n, g in groups.items() if g == ref.group}
        if ref.layers is None:
            chosen |= members
            continue
        for index in ref.layers:
            block = block_index(ref, index, n_blocks, spec.name)
            picked = {n for n in members if layers[n] == block}
            if not picked:
                raise IncompatibleError(f"train entry '{ref.text}': group '{ref.group}' of '{spec.name}' has no parameter in block {block}.")
            chosen |= picked
    return chosen


@dataclass(frozen=True)
class ParamCounts:
    trainable: int
    total: int
    by_group: dict[str, int]


def count_parameters(model: Any, groups: dict[str, str]) -> ParamCounts:
    by_group: Counter[str] = Counter()
    trainable = total = 0
    for name, param in model.named_parameters():
        n = param.numel()
        by_group[groups[name]] += n
        total += n
        trainable += n if param.requires_grad else 0
    return ParamCounts(trainable, total, {g: by_group.get(g, 0) for g in ALL_GROUPS})
