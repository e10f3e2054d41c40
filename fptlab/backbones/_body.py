"""The torch side of a backbone: the `Body` base class every family's module derives from, the
position tables cut to a task's length, and depth truncation. Imported only where a model is built.

A body maps input embeddings (B, T, d) to hidden states (B, T, d). Families build it at full depth
with full-length position tables; `fit(depth, seq_len)` then keeps the first `depth` blocks and the
rows of each position table the task uses. The rows it drops are kept aside (`PositionTable.tail`,
not a parameter, not trained, not counted), so a saved body holds the whole table again and a run
on a longer task can use it (Bit-pretrained transfer, paper Section 3.2).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class PositionTable(nn.Embedding):
    """A learned position table holding the rows a task uses (`weight`, trainable: the paper counts
    L × d) and, aside, the rows it does not (`tail`, a non-persistent buffer)."""

    def __init__(self, full: torch.Tensor, rows: int) -> None:
        super().__init__(rows, full.shape[1], device=full.device, dtype=full.dtype)
        if full.device.type != "meta":
            with torch.no_grad():
                self.weight.copy_(full[:rows])
        self.register_buffer("tail", full[rows:].detach().clone(), persistent=False)

    def full_weight(self) -> torch.Tensor:
        return torch.cat([self.weight.detach(), self.tail.to(self.weight.device)], dim=0)


def full_table(table: nn.Embedding) -> torch.Tensor:
    return table.full_weight() if isinstance(table, PositionTable) else table.weight.detach()


def get_module(root: nn.Module, path: str) -> Any:
    module: Any = root
    for part in path.split("."):
        module = getattr(module, part)
    return module


def set_module(root: nn.Module, path: str, value: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(get_module(root, parent) if parent else root, name, value)


class Body(nn.Module):
    """Base class of every family's body. Subclasses set `blocks_path` (the ModuleList of blocks),
    `position_paths` ({dotted path of an nn.Embedding: rows before position 0}) and implement
    `forward(x)`; `first_attention(x)` where the family can return attention probabilities."""

    blocks_path: str = ""
    position_paths: dict[str, int] = {}

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # (B, T, d) -> (B, T, d)
        """`mask` (B, T), True at real tokens: a bidirectional body attends to no key where it is False
        (the pad positions of right-padded token tasks). Causal and recurrent bodies get None."""
        raise NotImplementedError

    def first_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Attention probabilities of the first block, (B, heads, T, T)."""
        raise NotImplementedError(f"{type(self).__name__} cannot report attention probabilities")

    # ---- depth and length ------------------------------------------------------------------------
    def blocks(self) -> nn.ModuleList:
        return get_module(self, self.blocks_path)

    def truncate(self, depth: int) -> None:
        """Keep the first `depth` blocks (paper Section 3.10); families with a layer count in their
        own config hear of it through `on_truncate`."""
        blocks = self.blocks()
        if not 0 < depth <= len(blocks):
            raise ValueError(f"depth {depth} is outside 1..{len(blocks)}")
        if depth < len(blocks):
            set_module(self, self.blocks_path, nn.ModuleList(list(blocks)[:depth]))
            self.on_truncate(depth)

    def on_truncate(self, depth: int) -> None:
        pass

    def fit_positions(self, seq_len: int) -> None:
        """Cut each learned position table to the rows a `seq_len`-token task reads (offset rows first:
        RoBERTa-style tables start at padding_idx + 1). Rows beyond stay in the table's tail."""
        for path, offset in self.position_paths.items():
            table = get_module(self, path)
            full = full_table(table)
            rows = offset + seq_len
            if rows > full.shape[0]:
                raise ValueError(f"position table {path} has {full.shape[0] - offset} positions, the task needs {seq_len}")
            set_module(self, path, PositionTable(full, rows))

    def fit(self, depth: int, seq_len: int) -> Body:
        self.truncate(depth)
        self.fit_positions(seq_len)
        return self

    def n_blocks(self) -> int:
        return len(self.blocks())

    # ---- saving ----------------------------------------------------------------------------------
    def full_state(self) -> dict[str, torch.Tensor]:
        """The state dict with every position table whole again (what a saved body holds)."""
        state = {k: v.detach().cpu().contiguous().clone() for k, v in self.state_dict().items()}
        for path in self.position_paths:
            state[f"{path}.weight"] = full_table(get_module(self, path)).cpu().contiguous().clone()
        return state

    def position_lengths(self) -> dict[str, int]:
        """Positions each table holds (whole), after its offset rows."""
        return {path: full_table(get_module(self, path)).shape[0] - offset for path, offset in self.position_paths.items()}


class HFBody(Body):
    """A Hugging Face model (held as `self.model`) called with `inputs_embeds`, returning its last
    hidden states. Paths are relative to the body, so they start with "model."."""

    def __init__(self, model: nn.Module, blocks_path: str, position_paths: dict[str, int], layer_count_attr: str | None = None,
                 **call_kwargs: Any) -> None:
        super().__init__()
        self.model = model
        self.blocks_path = blocks_path
        self.position_paths = dict(position_paths)
        self._layer_count_attr = layer_count_attr
        self._call_kwargs = call_kwargs

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # (B, T, d) -> (B, T, d)
        extra = {} if mask is None else {"attention_mask": mask.long()}
        return self.model(inputs_embeds=x, **self._call_kwargs, **extra).last_hidden_state

    def on_truncate(self, depth: int) -> None:
        if self._layer_count_attr and hasattr(self.model, "config"):
            setattr(self.model.config, self._layer_count_attr, depth)

    def first_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Runs the model once with eager attention (SDPA cannot return probabilities)."""
        setter = getattr(self.model, "set_attn_implementation", None)
        previous = getattr(getattr(self.model, "config", None), "_attn_implementation", None)
        if setter is not None:
            setter("eager")
        try:
            out = self.model(inputs_embeds=x, output_attentions=True, **self._call_kwargs)
        finally:
            if setter is not None and previous is not None:
                setter(previous)
        attentions = getattr(out, "attentions", None)
        if not attentions:
            raise NotImplementedError(f"{type(self.model).__name__} returned no attention probabilities")
        return attentions[0]  # (B, heads, T, T)


def key_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T) True at real tokens -> (B, 1, 1, T) additive attention mask: 0 where a key may be
    attended, the dtype's most negative value at pad keys (exp() of it is 0 in softmax)."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)[:, None, None, :]


def reference_normal_init(module: nn.Module, std: float) -> None:
    """The scheme of GPT-2 in transformers 4.1.1 (the paper's code): every Linear / Conv1D / Embedding
    weight N(0, std), their biases 0, LayerNorm weight 1 and bias 0, nothing rescaled."""
    with torch.no_grad():
        for sub in module.modules():
            weight = getattr(sub, "weight", None)
            bias = getattr(sub, "bias", None)
            if isinstance(sub, nn.LayerNorm) or "LayerNorm" in type(sub).__name__:
                if weight is not None:
                    weight.fill_(1.0)
                if bias is not None:
                    bias.zero_()
            elif isinstance(sub, nn.Embedding) or (isinstance(weight, torch.Tensor) and weight.dim() == 2):
                weight.normal_(0.0, std)
                if isinstance(bias, torch.Tensor):
                    bias.zero_()
