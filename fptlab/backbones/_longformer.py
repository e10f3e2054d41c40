"""The Longformer body's torch code (see `fptlab.backbones.longformer`): imported on first use."""

from __future__ import annotations

from typing import Any

import torch

from fptlab.backbones._body import HFBody


class LongformerBody(HFBody):
    """HFBody with Longformer's position ids (they start after its padding offset) and windows fitted to
    short sequences."""

    def __init__(self, model: Any, blocks_path: str, position_paths: dict[str, int], offset: int, **kwargs: Any) -> None:
        super().__init__(model, blocks_path, position_paths, **kwargs)
        self.offset = offset  # RoBERTa-style position ids start at padding_idx + 1

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # (B, T, d) -> (B, T, d)
        positions = torch.arange(self.offset, self.offset + x.shape[1], device=x.device).expand(x.shape[0], -1)  # (B, T)
        extra = {} if mask is None else {"attention_mask": mask.long()}  # 1 = local attention, 0 = pad
        attentions = [block.attention.self for block in self.blocks()]
        windows = [a.one_sided_attn_window_size for a in attentions]
        narrow = max(x.shape[1] - 1, 2)  # one-sided window reaching every token (transformers needs >= 2)
        if narrow >= min(windows):
            return self.model(inputs_embeds=x, position_ids=positions, **extra).last_hidden_state
        config, full = self.model.config, self.model.config.attention_window
        try:  # same result (every token sees every token either way), padded to 2·narrow, not to the window
            for a in attentions:
                a.one_sided_attn_window_size = narrow
            config.attention_window = 2 * narrow
            return self.model(inputs_embeds=x, position_ids=positions, **extra).last_hidden_state
        finally:
            for a, window in zip(attentions, windows, strict=True):
                a.one_sided_attn_window_size = window
            config.attention_window = full

    def first_attention(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("Longformer's attention is sliding-window shaped, not T × T")
