"""The timm ViT body's torch code (see `fptlab.backbones.vit_timm`): imported on first use."""

from __future__ import annotations

import torch
from torch import nn

from fptlab.backbones._body import Body, key_mask


class TimmViTBody(Body):
    """norm(blocks(pos_drop(x + positions[:T]))) over a timm VisionTransformer held as `self.model`."""

    position_paths = {"positions": 0}

    def __init__(self, model: nn.Module, blocks_path: str, positions: int) -> None:
        super().__init__()
        self.model = model
        self.blocks_path = blocks_path
        self.positions = nn.Embedding(positions, model.embed_dim, device=model.norm.weight.device)
        nn.init.zeros_(self.positions.weight)

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, T, d)
        h = self.model.pos_drop(x + self.positions.weight[: x.shape[1]])
        norm_pre = getattr(self.model, "norm_pre", None)  # Identity for this architecture
        return norm_pre(h) if norm_pre is not None else h

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # (B, T, d) -> (B, T, d)
        h = self.embed(x)
        keys = None if mask is None else key_mask(mask, h.dtype)  # (B, 1, 1, T); timm >= 1.0 blocks take attn_mask
        for block in self.blocks():
            h = block(h) if keys is None else block(h, attn_mask=keys)
        return self.model.norm(h)

    def first_attention(self, x: torch.Tensor) -> torch.Tensor:
        """softmax(Q Kᵀ · scale) of the first block, as timm's Attention computes it: (B, heads, T, T)."""
        block = self.blocks()[0]
        attn = block.attn
        h = block.norm1(self.embed(x))  # (B, T, d)
        qkv = attn.qkv(h).unflatten(-1, (3, attn.num_heads, -1)).permute(2, 0, 3, 1, 4)  # (3, B, H, T, dh)
        q, k = qkv[0], qkv[1]
        q, k = getattr(attn, "q_norm", nn.Identity())(q), getattr(attn, "k_norm", nn.Identity())(k)
        scale = getattr(attn, "scale", q.shape[-1] ** -0.5)
        return (q @ k.transpose(-1, -2) * scale).softmax(dim=-1)  # (B, H, T, T)
