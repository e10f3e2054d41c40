"""Tiny datasets written in each official format (IDX, CIFAR python batches, TAPE JSON), shared by
the parser tests and the task contract tests."""

from __future__ import annotations

import gzip
import json
import pickle
import struct
from pathlib import Path

import numpy as np

from fptlab.tasks import cifar10

IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX as published: 0x0000, type code (0x08 = ubyte), ndim, big-endian uint32 dims, data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_set(directory: Path, n_train: int = 20, n_test: int = 10, gz: bool = True, size: int = 28) -> dict:
    rng = np.random.default_rng(0)
    arrays = {
        IDX_STEMS[0]: rng.integers(0, 256, (n_train, size, size)), IDX_STEMS[1]: np.arange(n_train) % 10,
        IDX_STEMS[2]: rng.integers(0, 256, (n_test, size, size)), IDX_STEMS[3]: np.arange(n_test) % 10,
    }
    directory.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        data = idx_bytes(array)
        (directory / (stem + ".gz")).write_bytes(gzip.compress(data)) if gz else (directory / stem).write_bytes(data)
    return arrays


def cifar_batch_bytes(n: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A batch dict like the official ones: b"data" (N, 3072) uint8 = R, G, B planes; b"labels"."""
    rng = np.random.default_rng(seed)
    planes = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)  # (N, C, H, W)
    labels = [int(v) for v in np.arange(n) % 10]
    batch = {b"batch_label": b"fixture", b"labels": labels, b"data": planes.reshape(n, 3072), b"filenames": [b"f"] * n}
    return pickle.dumps(batch, protocol=2), planes, np.asarray(labels)


def write_cifar(root: Path, n: int = 10) -> None:
    directory = root / "cifar10" / "cifar-10-batches-py"
    directory.mkdir(parents=True)
    for i, name in enumerate([*cifar10.TRAIN_BATCHES, cifar10.TEST_BATCH]):
        (directory / name).write_bytes(cifar_batch_bytes(n, i)[0])



def homology_records(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    return [
        {"id": f"d{i}", "primary": "".join(rng.choice(letters, size=int(rng.integers(3, 12)))),
         "protein_length": 0, "fold_label": int(rng.integers(0, 1195)), "family_label": 7}
        for i in range(n)
    ]  # fmt: skip


def write_homology_json(root: Path, splits=("train", "valid", "test_fold_holdout")) -> dict[str, list[dict]]:
    root.mkdir(parents=True, exist_ok=True)
    data = {split: homology_records(20, i) for i, split in enumerate(splits)}
    for split, records in data.items():
        (root / f"remote_homology_{split}.json").write_text(json.dumps(records))
    return data


