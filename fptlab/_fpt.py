"""The FPT module itself (paper Section 2.2, Figure 2): input layer -> body -> output layer on the
read-out token(s), and the head that reads cached features (Section 3.9). Imported on first use by
`fptlab.model`, so that importing fptlab needs no torch; a module-level class pickles and shows in
tracebacks under its own name."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fptlab.tasks.base import TaskSpec

INPUT_GAIN = 1.41  # the reference's orthogonal-init gain (≈ sqrt 2)


class FPT(nn.Module):
    """FPT = input layer -> body -> output layer on the read-out token(s) (see `fptlab.model`)."""

    def __init__(self, task: TaskSpec, body: nn.Module, d_model: int, dropout: float, mask_pads: bool = False) -> None:
        super().__init__()
        self.task = task
        self.mask_pads = mask_pads  # a bidirectional body attends to no pad key (`mask_padding`)
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

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden states of the read-out token(s): (B, k, d)."""
        mask = (x != self.task.pad_id) if self.mask_pads else None  # (B, T), True at real tokens
        h = self.backbone(self.input(x), mask)  # (B, T, d)
        if self.task.readout == "last_real":  # right-padded ids: the last non-pad token (<sep>)
            positions = torch.arange(x.shape[1], device=x.device).expand_as(x)
            last = torch.where(x != self.task.pad_id, positions, -1).max(dim=1).values.clamp(min=0)  # (B,)
            return h[torch.arange(x.shape[0], device=x.device), last].unsqueeze(1)  # (B, 1, d)
        return h[:, -self.task.output_tokens :]  # (B, k, d)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.output(features)  # (B, k, labels·classes / k)
        return logits.reshape(features.shape[0], self.task.n_outputs, self.task.n_classes)  # (B, labels, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def attention_maps(self, x: torch.Tensor) -> torch.Tensor:
        """First block's attention probabilities, mean over heads: (B, T, T) (paper Figures 3-5)."""
        return self.backbone.first_attention(self.input(x)).mean(dim=1)


class OutputHead(nn.Module):
    """Maps cached features (B, k, d) to logits with an FPT's own output layer (the same parameter, under
    the same name `output.*`, so checkpoints and counts agree)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.output = model.output
        self._fpt = [model]  # a list, so the full model is not registered as a submodule

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self._fpt[0].head(features)
