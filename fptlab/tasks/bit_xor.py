"""Bit XOR (paper Section 2.1): two bitstrings of n bits shown one bit per token; predict their
element-wise XOR from the last n tokens. Paper size n = 5; FPT still solves n = 256."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fptlab.tasks import register_task
from fptlab.tasks.base import ArraySplit, StreamSplit, Task, TaskData, TaskSpec, data_rng

MAX_BITS = 512


@dataclass(frozen=True)
class BitXorOptions:
    n_bits: int = 5
    test_size: int = 1024  # fixed held-out examples (seed-independent)

    def __post_init__(self) -> None:
        if not 1 <= self.n_bits <= MAX_BITS:
            raise ValueError(f"n_bits must be in [1, {MAX_BITS}], got {self.n_bits}")
        if self.test_size < 1:
            raise ValueError(f"test_size must be >= 1, got {self.test_size}")


def sample_xor(n: int, n_bits: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    bits = rng.integers(0, 2, size=(n, 2, n_bits), dtype=np.int64)  # (N, 2, n)
    x = bits.reshape(n, 2 * n_bits, 1).astype(np.float32)  # (N, 2n, 1): one bit per token
    y = bits[:, 0] ^ bits[:, 1]  # (N, n)
    return x, y


@register_task
class BitXor(Task):
    name = "bit_xor"
    Options = BitXorOptions

    def spec(self, opts: BitXorOptions) -> TaskSpec:
        return TaskSpec("dense", 1, 2 * opts.n_bits, n_classes=2, n_outputs=opts.n_bits, output_tokens=opts.n_bits,
                        streamed=True)

    def load(self, opts: BitXorOptions, data_dir) -> TaskData:
        test_x, test_y = sample_xor(opts.test_size, opts.n_bits, data_rng(1, opts.n_bits, opts.test_size))
        return TaskData(
            spec=self.spec(opts),
            train=StreamSplit(lambda n, rng: sample_xor(n, opts.n_bits, rng)),
            test=ArraySplit(test_x, test_y),
            description=f"XOR of two {opts.n_bits}-bit strings (generated)",
        )
