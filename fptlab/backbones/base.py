"""What a backbone family declares (paper Section 2.2, Appendix B).

A backbone is the transformer body: it maps input embeddings (B, T, d) to hidden states (B, T, d)
with its own attention mask (causal for GPT-2, bidirectional for BERT-style models). Each family
declares regexes that put every one of its parameters into exactly one group (`positions`,
`layernorm`, `attention`, `feedforward`, `embeddings`, `other`); the FPT model adds `input` and
`output`. Freezing is then a matter of naming groups, never of `if 'ln' in name` chains.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

BACKBONE_GROUPS = ("positions", "layernorm", "attention", "feedforward", "embeddings", "other")
FPT_GROUPS = ("input", "output")
ALL_GROUPS = FPT_GROUPS + BACKBONE_GROUPS


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    family: str
    d_model: int
    n_layers: int
    max_positions: int | None  # None: no learned position table (e.g. rotary), any length works
    groups: tuple[tuple[str, str], ...]  # (group, regex searched in the body's parameter names)
    # build(spec, init, weights, seq_len) -> nn.Module mapping (B, T, d) -> (B, T, d)
    build: Callable[..., Any]
    default_weights: str | None = None  # hub id (or offline resolver key) of the pretrained weights
    description: str = ""

    @property
    def has_pretrained(self) -> bool:
        return self.default_weights is not None

    def check_length(self, seq_len: int, task: str | None = None) -> None:
        """Raise IncompatibleError when a task's sequences exceed this backbone's learned positions."""
        if self.max_positions is None or seq_len <= self.max_positions:
            return
        from fptlab.errors import IncompatibleError

        who, options = (f"Task '{task}'", f"`{task}.*` options") if task else ("The task", "its length options")
        raise IncompatibleError(
            f"{who} has sequences of {seq_len} tokens but backbone '{self.name}' has {self.max_positions} positions. "
            f"Shorten the task (see {options}) or use a backbone with more positions (gpt2: 1024)."
        )

    def group_of(self, param_name: str) -> list[str]:
        """All groups whose regex matches `param_name` (a correct declaration yields exactly one)."""
        return [group for group, pattern in self.groups if re.search(pattern, param_name)]
