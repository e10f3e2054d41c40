"""TAPE's amino-acid vocabulary and tokenisation, shared by the protein tasks (paper Section 2.1,
"Remote homology detection"; vocabulary from Rao et al. 2019, "Evaluating Protein Transfer Learning
with TAPE", `IUPAC_VOCAB`).

A protein is encoded as `<cls>` + one token per residue + `<sep>` and right-padded with `<pad>` = 0
to a fixed length T. The reference embedded these 30 ids with an Embedding(30, d) input layer.

Read-out (`readout` option of the protein tasks). Padded to a fixed T, the last position is a pad
for every sequence shorter than T: a read-out there sees the protein only through attention from a
pad token. `readout = "sep"` (default) reads the output layer from each sequence's last real token,
its `<sep>` (under GPT-2's causal mask, exactly what an unpadded sequence gives; a bidirectional body
still lets tokens attend to the pads). `readout = "last"` reads the last position, as fptlab 0.1.0
did (the 0.2.0 store migration pins it on trials stored before).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from fptlab.errors import ConfigError

SPECIAL_TOKENS = ("<pad>", "<mask>", "<cls>", "<sep>", "<unk>")
# TAPE's order: the 25 IUPAC letters alphabetically, so the uncommon B (Asx), O (Pyl), U (Sec),
# X (any) and Z (Glx) sit between the 20 common amino acids. Written out, never derived from a set.
AMINO_ACIDS = (
    "A", "B", "C", "D", "E", "F", "G", "H", "I", "K", "L", "M", "N",
    "O", "P", "Q", "R", "S", "T", "U", "V", "W", "X", "Y", "Z",
)  # fmt: skip
VOCAB: tuple[str, ...] = SPECIAL_TOKENS + AMINO_ACIDS
VOCAB_SIZE = len(VOCAB)  # 30
PAD, MASK, CLS, SEP, UNK = range(5)
TOKEN_ID = {token: i for i, token in enumerate(VOCAB)}

LongPolicy = Literal["skip", "truncate"]
LONG_POLICIES = ("skip", "truncate")
Readout = Literal["sep", "last"]
READOUTS = ("sep", "last")

assert VOCAB_SIZE == 30 and TOKEN_ID["A"] == 5 and TOKEN_ID["Z"] == 29


def _byte_table() -> np.ndarray:
    """Byte -> token id; every byte that is not an amino-acid letter maps to `<unk>`."""
    table = np.full(256, UNK, dtype=np.int64)
    for letter in AMINO_ACIDS:
        table[ord(letter)] = TOKEN_ID[letter]
    return table


_BYTE_TO_ID = _byte_table()


def encode(sequence: str) -> np.ndarray:
    """`<cls>` + residues + `<sep>` as int64 ids (L + 2,). Case-insensitive; whitespace is stripped;
    any other symbol (J, *, -, digits, non-ASCII) becomes `<unk>` (TAPE itself raised on those)."""
    raw = sequence.strip().upper().encode("ascii", errors="replace")  # non-ASCII -> "?" -> <unk>
    residues = _BYTE_TO_ID[np.frombuffer(raw, dtype=np.uint8)]  # (L,)
    return np.concatenate(([CLS], residues, [SEP])).astype(np.int64)


def decode(ids: Sequence[int] | np.ndarray) -> str:
    """Inverse of `encode` for inspection: special tokens other than `<unk>` are dropped."""
    return "".join(VOCAB[i] if i >= len(SPECIAL_TOKENS) else ("?" if i == UNK else "") for i in ids)


def token_length(sequence: str) -> int:
    """Tokens `encode` produces for `sequence` (residues + `<cls>` + `<sep>`)."""
    return len(sequence.strip()) + 2


def pack(sequences: Sequence[str], max_len: int, long: LongPolicy) -> tuple[np.ndarray, np.ndarray]:
    """Encode and right-pad to a fixed length; returns (x (N_kept, max_len) int64, kept indices (N_kept,)).

    Sequences longer than `max_len` tokens are dropped (`long="skip"`, the reference's choice) or cut
    to `<cls>` + their first `max_len - 2` residues + `<sep>` (`long="truncate"`).
    """
    assert long in LONG_POLICIES and max_len >= 3, (long, max_len)
    x = np.zeros((len(sequences), max_len), dtype=np.int64)  # (N, T), <pad> = 0
    keep = np.ones(len(sequences), dtype=bool)
    for i, sequence in enumerate(sequences):
        ids = encode(sequence)
        if len(ids) > max_len:
            if long == "skip":
                keep[i] = False
                continue
            ids = np.concatenate((ids[: max_len - 1], [SEP]))
        x[i, : len(ids)] = ids
    kept = np.flatnonzero(keep)
    return x[kept], kept


def subsample(n_total: int, n: int, rng: np.random.Generator, *, option: str) -> np.ndarray:
    """Sorted indices of a seeded random subset of size `n` of range(n_total); all when n == 0."""
    if n == 0:
        return np.arange(n_total)
    if n > n_total:
        raise ConfigError(
            f"'{option}' = {n} asks for more examples than the {n_total} available. "
            f"Use at most {n_total}, or 0 for all."
        )
    return np.sort(rng.permutation(n_total)[:n])


def readout_spec(readout: str) -> dict[str, Any]:
    """TaskSpec read-out fields for a protein task's `readout` option (see the module docstring)."""
    return {"readout": "last_real", "pad_id": PAD} if readout == "sep" else {}


def check_options(max_len: int, long: str, counts: dict[str, int], readout: str = "sep") -> None:
    """Validation shared by the protein tasks' Options (raises ValueError, as Options must)."""
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {', '.join(map(repr, READOUTS))}, got {readout!r}")
    if max_len < 3:
        raise ValueError(f"max_len must be >= 3 (<cls> + one residue + <sep>), got {max_len}")
    if long not in LONG_POLICIES:
        raise ValueError(f"long must be one of {', '.join(map(repr, LONG_POLICIES))}, got {long!r}")
    for name, value in counts.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0 (0 = all examples), got {value}")
