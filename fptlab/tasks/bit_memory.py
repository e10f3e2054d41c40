"""Bit Memory (paper Section 2.1): five ±1 bitstrings, then a copy of one of them with each bit
zeroed with probability p; recover the queried string. Paper size: 5 × 1000 bits, 50 bits per token
-> 120 tokens × 50, 1000 bits predicted from the last 20 tokens (50 bits × 2 logits each)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fptlab.tasks import register_task
from fptlab.tasks.base import ArraySplit, StreamSplit, Task, TaskData, TaskSpec, data_rng


@dataclass(frozen=True)
class BitMemoryOptions:
    n_strings: int = 5
    n_bits: int = 1000
    bits_per_token: int = 50
    mask_prob: float = 0.5
    test_size: int = 512

    def __post_init__(self) -> None:
        if self.n_strings < 1 or self.n_bits < 1 or self.bits_per_token < 1:
            raise ValueError("n_strings, n_bits and bits_per_token must be >= 1")
        if self.n_bits % self.bits_per_token:
            raise ValueError(f"n_bits ({self.n_bits}) must be a multiple of bits_per_token ({self.bits_per_token})")
        if not 0 <= self.mask_prob < 1:
            raise ValueError(f"mask_prob must be in [0, 1), got {self.mask_prob}")
        if self.test_size < 1:
            raise ValueError(f"test_size must be >= 1, got {self.test_size}")


def sample_memory(n: int, o: BitMemoryOptions, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    strings = rng.integers(0, 2, size=(n, o.n_strings, o.n_bits), dtype=np.int64)  # (N, S, n) in {0, 1}
    which = rng.integers(0, o.n_strings, size=n)
    target = strings[np.arange(n), which]  # (N, n)
    keep = rng.random((n, o.n_bits)) >= o.mask_prob
    signed = 2.0 * strings - 1.0  # ±1
    query = (2.0 * target - 1.0) * keep  # masked bits become 0
    seq = np.concatenate([signed.reshape(n, -1), query], axis=1)  # (N, (S + 1) n)
    x = seq.reshape(n, -1, o.bits_per_token).astype(np.float32)  # (N, T, bits_per_token)
    return x, target


@register_task
class BitMemory(Task):
    name = "bit_memory"
    Options = BitMemoryOptions

    def spec(self, o: BitMemoryOptions) -> TaskSpec:
        tokens_per_string = o.n_bits // o.bits_per_token
        return TaskSpec(
            "dense", o.bits_per_token, (o.n_strings + 1) * tokens_per_string,
            n_classes=2, n_outputs=o.n_bits, output_tokens=tokens_per_string, streamed=True,
        )

    def load(self, o: BitMemoryOptions, data_dir) -> TaskData:
        test = sample_memory(o.test_size, o, data_rng(2, o.n_strings, o.n_bits, o.bits_per_token, o.test_size))
        return TaskData(
            spec=self.spec(o),
            train=StreamSplit(lambda n, rng: sample_memory(n, o, rng)),
            test=ArraySplit(*test),
            description=f"recall one of {o.n_strings} strings of {o.n_bits} bits (generated)",
        )
