"""The torch side of a pack (`fptlab.packing`): K members over one frozen body.

`PackedFPT` is an FPT whose input layer, output layer, trainable layer norms and position table hold
one slice per member ((K, ...) parameters); the frozen body is shared. A forward takes the members'
batches stacked (k, B, ...), runs the body once on (k·B, T, d), and returns (k, B, labels, classes).
Because every body operation is per example (per row: attention within an example, norms per
token), member k's outputs and gradients are those it would get alone; only float rounding differs
(a matmul over k·B rows may block differently). `PackedOptimizer` is Adam / AdamW / SGD with each
member's own learning rate, weight decay, step count and gradient clipping, in torch's formulas.

Dropout: each member's rows get their own masks (one draw over the stacked tensor), with the same
rate as alone but not the very masks of its solo run (those come from the global generator in the
order of one run's calls, and SDPA draws its attention dropout inside the kernel). With dropout 0 a
member's curve equals its solo curve to float rounding (`tests/test_packing.py`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fptlab.backbones._body import PositionTable, get_module, set_module


@dataclass
class PackState:
    """What the packed modules read during one forward: how many members run and on what batch."""

    k: int = 1
    batch: int = 1
    index: torch.Tensor | None = None  # the members that run (None: all)

    def rows(self, param: torch.Tensor) -> torch.Tensor:
        return param if self.index is None else param.index_select(0, self.index)


class PackedLinear(nn.Module):
    """K linear maps: (k, N, in) -> (k, N, out), member j with its own weight (out, in) and bias."""

    def __init__(self, layers: Sequence[nn.Linear], state: PackState) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]))
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in layers])) if layers[0].bias is not None else None
        self.state = state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.matmul(x, self.state.rows(self.weight).transpose(1, 2))
        return out if self.bias is None else out + self.state.rows(self.bias).unsqueeze(1)


class PackedEmbedding(nn.Module):
    """K token tables: ids (k, B, T) -> (k, B, T, d)."""

    def __init__(self, tables: Sequence[nn.Embedding], state: PackState) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in tables]))
        self.state = state

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        weight = self.state.rows(self.weight)
        member = torch.arange(weight.shape[0], device=ids.device).view(-1, *([1] * (ids.dim() - 1)))
        return weight[member, ids]


class PackedLayerNorm(nn.Module):
    """K affine layer norms over the stacked rows (k·B, ..., d): normalise, then member j's weight and bias."""

    def __init__(self, norms: Sequence[nn.LayerNorm], state: PackState) -> None:
        super().__init__()
        self.normalized_shape, self.eps = norms[0].normalized_shape, norms[0].eps
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in norms]))
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in norms]))
        self.state = state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.state.k
        y = F.layer_norm(x, self.normalized_shape, None, None, self.eps).reshape(k, -1, x.shape[-1])
        y = y * self.state.rows(self.weight).unsqueeze(1) + self.state.rows(self.bias).unsqueeze(1)
        return y.reshape(x.shape)


class PackedPositions(nn.Module):
    """K position tables (the rows a task reads; the shared tail stays aside): ids -> (k·B, T, d)."""

    def __init__(self, tables: Sequence[PositionTable], state: PackState) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in tables]))
        self.register_buffer("tail", tables[0].tail.detach().clone(), persistent=False)
        self.state = state

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        weight = self.state.rows(self.weight)  # (k, rows, d)
        k, b = weight.shape[0], self.state.batch
        if ids.shape[0] == 1:  # (1, T): the same positions for every row
            return weight[:, ids[0]].unsqueeze(1).expand(k, b, ids.shape[1], weight.shape[-1]).reshape(k * b, ids.shape[1], -1)
        member = torch.arange(k, device=ids.device).repeat_interleave(b).unsqueeze(1)  # (k·B, 1)
        return weight[member, ids]


@dataclass
class MemberParams:
    """Member-independent description of the pack's per-member tensors: for each trainable parameter of a
    solo model (in the solo model's own order and names), the packed parameter holding its K slices."""

    names: list[str] = field(default_factory=list)  # solo names, in solo order (the optimiser's order)
    packed: dict[str, nn.Parameter] = field(default_factory=dict)  # solo name -> (K, ...) parameter
    frozen_per_member: dict[str, nn.Parameter] = field(default_factory=dict)  # e.g. a frozen input layer


class PackedFPT(nn.Module):
    """FPT with per-member input, output, trainable norms and positions over one shared frozen body."""

    def __init__(self, members: Sequence[nn.Module], trainable: Sequence[str]) -> None:
        super().__init__()
        first = members[0]
        self.task, self.mask_pads = first.task, first.mask_pads
        self.state = PackState(k=len(members))
        self.params = MemberParams(names=list(trainable))
        self.backbone = first.backbone  # shared; its per-member modules are swapped below
        if isinstance(first.input, nn.Embedding):
            self.input = PackedEmbedding([m.input for m in members], self.state)
            self._map("input.weight", self.input.weight)
            self.input_dropout = None
        else:
            self.input = PackedLinear([m.input[0] for m in members], self.state)
            self._map("input.0.weight", self.input.weight)
            self._map("input.0.bias", self.input.bias)
            self.input_dropout = first.input[1]
        self.output = PackedLinear([m.output for m in members], self.state)
        self._map("output.weight", self.output.weight)
        self._map("output.bias", self.output.bias)
        for path, module in list(first.backbone.named_modules()):
            names = [f"backbone.{path}.{p}" for p, _ in module.named_parameters(recurse=False)]
            if not names or not any(n in trainable for n in names):
                continue
            if isinstance(module, nn.LayerNorm) and module.elementwise_affine and module.bias is not None:
                packed = PackedLayerNorm([get_module(m.backbone, path) for m in members], self.state)
                set_module(self.backbone, path, packed)
                self._map(f"backbone.{path}.weight", packed.weight)
                self._map(f"backbone.{path}.bias", packed.bias)
            elif isinstance(module, PositionTable):
                packed = PackedPositions([get_module(m.backbone, path) for m in members], self.state)
                set_module(self.backbone, path, packed)
                self._map(f"backbone.{path}.weight", packed.weight)
            else:
                raise ValueError(f"cannot pack the trainable parameters of {path} ({type(module).__name__})")
        missing = [n for n in trainable if n not in self.params.packed]
        if missing:
            raise ValueError(f"cannot pack trainable parameters {missing[:3]}")
        for name, param in self.params.packed.items():
            param.requires_grad_(name in trainable)

    def _map(self, name: str, param: nn.Parameter | None) -> None:
        if param is not None:
            self.params.packed[name] = param

    @property
    def k(self) -> int:
        return self.params.packed["output.weight"].shape[0]

    def forward(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """x: the members' batches (k, B, T) ids or (k, B, T, in) -> logits (k, B, labels, classes);
        `index`: which members these are (default: all, in order)."""
        k, b, t = x.shape[0], x.shape[1], x.shape[2]
        self.state.k, self.state.batch, self.state.index = k, b, index
        if self.input_dropout is None:
            h = self.input(x)  # (k, B, T, d)
        else:
            h = self.input_dropout(self.input(x.reshape(k, b * t, -1)))  # (k, B·T, d)
        flat = x.reshape(k * b, *x.shape[2:])
        mask = (flat != self.task.pad_id) if self.mask_pads else None
        h = self.backbone(h.reshape(k * b, t, -1), mask)  # (k·B, T, d)
        features = self._readout(h, flat)  # (k·B, r, d)
        r, d = features.shape[1], features.shape[2]
        logits = self.output(features.reshape(k, b * r, d))  # (k, B·r, per token)
        return logits.reshape(k, b, self.task.n_outputs, self.task.n_classes)

    def _readout(self, h: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        if self.task.readout == "last_real":
            positions = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
            last = torch.where(ids != self.task.pad_id, positions, -1).max(dim=1).values.clamp(min=0)
            return h[torch.arange(ids.shape[0], device=ids.device), last].unsqueeze(1)
        return h[:, -self.task.output_tokens :]

    # ---- members in and out -------------------------------------------------------------------------
    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the members at `rows` (others left the pack): every per-member tensor shrinks."""
        with torch.no_grad():
            for param in {id(p): p for p in self.params.packed.values()}.values():
                param.data = param.data.index_select(0, rows).contiguous()
                param.grad = None


class MemberView:
    """What `fptlab.checkpoint.save_checkpoint` reads of a model: member j's trainable parameters by
    their solo names (so a packed member's checkpoint is a solo checkpoint, resumable alone or packed)."""

    def __init__(self, model: PackedFPT, j: int) -> None:
        self.model, self.j = model, j

    def named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, nn.Parameter(self.model.params.packed[n][self.j].detach().clone())) for n in self.model.params.names]


class PackedOptimizer:
    """Per-member Adam (L2 weight decay), AdamW (decoupled) or SGD (momentum 0.9) over (K, ...) tensors,
    in the formulas of torch.optim's single-tensor implementations, with per-member learning rate,
    weight decay and step count; and per-member gradient clipping as clip_grad_norm_. Every state
    tensor lives on the parameters' device and a step reads nothing back to the host, so a CUDA graph
    can capture it (`fptlab.pack_train`)."""

    BETAS, EPS, MOMENTUM = (0.9, 0.999), 1e-8, 0.9

    def __init__(self, model: PackedFPT, kind: str, lr: Sequence[float], weight_decay: Sequence[float],
                 max_norm: Sequence[float]) -> None:
        self.model, self.kind = model, kind
        self.params = [model.params.packed[n] for n in model.params.names]
        device = self.params[0].device
        self.lr = torch.tensor(list(lr), dtype=torch.float64, device=device)
        self.weight_decay = torch.tensor(list(weight_decay), dtype=torch.float64, device=device)
        self.decays = any(w != 0 for w in weight_decay)
        self.max_norm = torch.tensor([m if m > 0 else math.inf for m in max_norm], dtype=torch.float32, device=device)
        self.steps = torch.zeros(len(lr), dtype=torch.float64, device=device)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params] if kind != "sgd" else []
        self.has_momentum = torch.zeros(len(lr), dtype=torch.bool, device=device)  # sgd: a buffer exists once a member stepped

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def clip(self) -> torch.Tensor:
        """Per member: the norm of its gradients (as clip_grad_norm_ computes it), its gradients scaled
        down to its max norm. Returns the norms (k,)."""
        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        per_tensor = torch.stack([p.grad.reshape(p.grad.shape[0], -1).norm(dim=1) for p in self.params])  # (tensors, k)
        total = per_tensor.norm(dim=0)  # (k,)
        coef = (self.max_norm / (total + 1e-6)).clamp(max=1.0)
        for p in self.params:
            p.grad.mul_(coef.view(-1, *([1] * (p.dim() - 1))))
        return total

    def step(self, active: torch.Tensor) -> None:
        """One update of the members where `active` (k,) is True; the others are left as they are. All
        members at once, elementwise in the order of torch's single-tensor formulas (the scalars a solo
        run passes as Python floats are float32 tensors here, the value torch casts them to)."""
        with torch.no_grad():
            self.steps.add_(active.double())
            lr, wd = self.lr, self.weight_decay
            for n, p in enumerate(self.params):
                shape = (-1, *([1] * (p.dim() - 1)))
                keep = active.view(shape)
                grad, param = p.grad, p.data
                if self.kind == "sgd":
                    if self.decays:
                        grad = grad + param * wd.float().view(shape)
                    buf = self.exp_avg[n]
                    new_buf = torch.where(self.has_momentum.view(shape), buf * self.MOMENTUM + grad, grad)
                    buf.copy_(torch.where(keep, new_buf, buf))
                    param.copy_(torch.where(keep, param - buf * lr.float().view(shape), param))
                    continue
                beta1, beta2 = self.BETAS
                if self.kind == "adamw":
                    decayed = param * (1 - lr * wd).float().view(shape)
                elif self.decays:
                    decayed, grad = param, grad + param * wd.float().view(shape)
                else:
                    decayed = param
                exp_avg = self.exp_avg[n].lerp(grad, 1 - beta1)
                exp_avg_sq = self.exp_avg_sq[n] * beta2 + (1 - beta2) * grad * grad  # addcmul's order
                step = self.steps.clamp(min=1)
                step_size = (lr / (1 - beta1**step)).float().view(shape)
                bc2_sqrt = (1 - beta2**step).sqrt().float().view(shape)
                denom = exp_avg_sq.sqrt() / bc2_sqrt + self.EPS
                updated = decayed + (-step_size * exp_avg) / denom  # addcdiv's order: value * t1 / t2
                self.exp_avg[n].copy_(torch.where(keep, exp_avg, self.exp_avg[n]))
                self.exp_avg_sq[n].copy_(torch.where(keep, exp_avg_sq, self.exp_avg_sq[n]))
                param.copy_(torch.where(keep, updated, param))
            self.has_momentum |= active

    # ---- solo optimiser state in and out ------------------------------------------------------------------
    def load_member(self, j: int, state: dict[str, Any]) -> None:
        """Member j's state from its solo optimiser's state_dict() (a resumed checkpoint)."""
        per_param = state.get("state", {})
        with torch.no_grad():
            for n in range(len(self.params)):
                s = per_param.get(n)
                if not s:
                    continue
                if self.kind == "sgd":
                    if s.get("momentum_buffer") is not None:
                        self.exp_avg[n][j].copy_(s["momentum_buffer"])
                        self.has_momentum[j] = True
                    continue
                self.exp_avg[n][j].copy_(s["exp_avg"])
                self.exp_avg_sq[n][j].copy_(s["exp_avg_sq"])
                self.steps[j] = float(s["step"])

    def member_state_dict(self, j: int, template: dict[str, Any]) -> dict[str, Any]:
        """Member j's state in its solo optimiser's state_dict() format (`template`: that optimiser's own)."""
        out: dict[str, Any] = {"param_groups": template["param_groups"], "state": {}}
        step = float(self.steps[j])
        if step == 0:
            return out
        for n in range(len(self.params)):
            if self.kind == "sgd":
                out["state"][n] = {"momentum_buffer": self.exp_avg[n][j].detach().cpu().clone()}
            else:
                out["state"][n] = {"step": torch.tensor(step), "exp_avg": self.exp_avg[n][j].detach().cpu().clone(),
                                   "exp_avg_sq": self.exp_avg_sq[n][j].detach().cpu().clone()}
        return out

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the members at `rows` (the model's `keep` shrinks the parameters)."""
        self.lr, self.weight_decay = self.lr.index_select(0, rows), self.weight_decay.index_select(0, rows)
        self.steps, self.has_momentum = self.steps.index_select(0, rows), self.has_momentum.index_select(0, rows)
        self.max_norm = self.max_norm.index_select(0, rows)
        self.exp_avg = [t.index_select(0, rows).contiguous() for t in self.exp_avg]
        self.exp_avg_sq = [t.index_select(0, rows).contiguous() for t in self.exp_avg_sq]
