"""The ViT body's torch code over a transformers `ViTModel` (see `fptlab.backbones.vit`): imported on
first use, so that registering the family imports no torch."""

from __future__ import annotations

import torch
from torch import nn

from fptlab.backbones._body import Body, key_mask


class ViTBody(Body):
    """layernorm(blocks(dropout(x + positions[:T]))) over an HF ViTModel held as `self.model`."""

    position_paths = {"positions": 0}

    def __init__(self, model: nn.Module, positions: int) -> None:
        super().__init__()
        self.model = model
        self.blocks_path = "model.layers" if hasattr(model, "layers") else "model.encoder.layer"
        width = model.config.hidden_size
        self.positions = nn.Embedding(positions, width, device=model.layernorm.weight.device)
        nn.init.zeros_(self.positions.weight)
        self.dropout = nn.Dropout(model.config.hidden_dropout_prob)  # ViT's embedding dropout (0.0 here)

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, T, d)
        return self.dropout(x + self.positions.weight[: x.shape[1]])

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # (B, T, d) -> (B, T, d)
        h = self.embed(x)
        keys = None if mask is None else key_mask(mask, h.dtype)  # (B, 1, 1, T): pads never attended
        for block in self.blocks():
            out = block(h, keys)  # a tensor in transformers >= 5.9, a tuple before
            h = out[0] if isinstance(out, tuple) else out
        return self.model.layernorm(h)

    def on_truncate(self, depth: int) -> None:
        self.model.config.num_hidden_layers = depth

    def first_attention(self, x: torch.Tensor) -> torch.Tensor:
        """softmax(Q Kᵀ / sqrt(d_head)) of the first block: (B, heads, T, T)."""
        block = self.blocks()[0]
        h = block.layernorm_before(self.embed(x))  # (B, T, d)
        attn = block.attention
        query, key = (attn.q_proj, attn.k_proj) if hasattr(attn, "q_proj") else (attn.attention.query, attn.attention.key)
        heads = self.model.config.num_attention_heads
        q = query(h).unflatten(-1, (heads, -1)).transpose(1, 2)  # (B, H, T, dh)
        k = key(h).unflatten(-1, (heads, -1)).transpose(1, 2)  # (B, H, T, dh)
        scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5  # (B, H, T, T)
        return scores.softmax(dim=-1)
