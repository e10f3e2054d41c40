"""The Frozen Pretrained Transformer (paper Section 2.2, Figure 2).

FPT = input layer -> transformer body -> output layer on the last token(s). The input layer is a
Linear (orthogonal init, gain 1.41, zero bias) plus dropout for dense tokens, or an Embedding for
token ids. The output layer is a Linear read from the last token, or from the last k tokens for the
bit tasks, reshaped to (labels, classes). Which parameters train is declared by group name.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fptlab.backbones import ALL_GROUPS, BACKBONES, BackboneSpec
from fptlab.errors import FptlabError, UnknownNameError
from fptlab.registry import unknown_name_message
from fptlab.tasks.base import TaskSpec

if TYPE_CHECKING:
    import torch

INPUT_GAIN = 1.41  # the reference's orthogonal-init gain (≈ sqrt 2)


def _fpt_class() -> type:
    from torch import nn

    class FPT(nn.Module):
        def __init__(self, task: TaskSpec, body: nn.Module, d_model: int, dropout: float) -> None:
            super().__init__()
            self.task = task
            if task.input_kind == "dense":
                linear = nn.Linear(task.input_dim, d_model)
                if linear.weight.device.type != "meta":
                    nn.init.orthogonal_(linear.weight, gain=INPUT_GAIN)
                    nn.init.zeros_(linear.bias)
                self.input = nn.Sequential(linear, nn.Dropout(dropout))
            else:
                self.input = nn.Embedding(task.input_dim, d_model)  # N(0, 1), as the reference
            self.backbone = body
            per_token = task.n_outputs * task.n_classes // task.output_tokens
            self.output = nn.Linear(d_model, per_token)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.backbone(self.input(x))  # (B, T, d)
            h = h[:, -self.task.output_tokens :]  # (B, k, d)
            logits = self.output(h)  # (B, k, labels·classes / k)
            return logits.reshape(x.shape[0], self.task.n_outputs, self.task.n_classes)  # (B, labels, C)

    return FPT


def build_model(task: TaskSpec, backbone: str, init: str, weights: str, dropout: float, *, meta: bool = False) -> Any:
    """Build an FPT. `meta=True` builds shapes only (no memory, no weights) for counting parameters."""
    import torch

    spec = BACKBONES.get(backbone)
    if init == "pretrained" and not spec.has_pretrained:
        raise FptlabError(
            f"Backbone '{backbone}' has no pretrained weights (it exists for fast tests). "
            "Use --init random, or a full-size backbone (see `fptlab ls backbones`)."
        )
    spec.check_length(task.seq_len)
    if meta:
        with torch.device("meta"):
            body = spec.build(spec, "random", weights, task.seq_len)
            return _fpt_class()(task, body, spec.d_model, dropout)
    body = spec.build(spec, init, weights, task.seq_len)
    return _fpt_class()(task, body, spec.d_model, dropout)


def parameter_groups(model: Any, spec: BackboneSpec) -> dict[str, str]:
    """Map every parameter name to its one group; an undeclared or doubly-claimed name is a bug."""
    out: dict[str, str] = {}
    for name, _ in model.named_parameters():
        head, _, rest = name.partition(".")
        groups = [head] if head in ("input", "output") else spec.group_of(rest)
        assert len(groups) == 1, f"parameter {name!r} of {spec.name} matches groups {groups}; fix its declaration"
        out[name] = groups[0]
    return out


def check_groups(names: tuple[str, ...]) -> None:
    for g in names:
        if g not in ALL_GROUPS:
            raise UnknownNameError(unknown_name_message("parameter group", g, list(ALL_GROUPS)))


def apply_trainable(model: Any, spec: BackboneSpec, train: tuple[str, ...]) -> dict[str, str]:
    """Freeze everything except the named groups. Returns the name -> group map."""
    check_groups(train)
    groups = parameter_groups(model, spec)
    for name, param in model.named_parameters():
        param.requires_grad_(groups[name] in train)
    return groups


@dataclass(frozen=True)
class ParamCounts:
    trainable: int
    total: int
    by_group: dict[str, int]

    @property
    def trainable_fraction(self) -> float:
        return self.trainable / self.total if self.total else math.nan


def count_parameters(model: Any, groups: dict[str, str]) -> ParamCounts:
    by_group: Counter[str] = Counter()
    trainable = total = 0
    for name, param in model.named_parameters():
        n = param.numel()
        by_group[groups[name]] += n
        total += n
        trainable += n if param.requires_grad else 0
    return ParamCounts(trainable, total, {g: by_group.get(g, 0) for g in ALL_GROUPS})
