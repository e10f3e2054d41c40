"""What every task declares and builds (paper Section 2.1).

A task is one registered object with a frozen `Options` dataclass (its config section), a cheap
`spec()` (shapes, classes: enough for `--dry-run` and parameter counts without touching data),
`resolve()` (turn `source = "auto"` into the concrete source found here, without loading it),
`missing()` (what this machine lacks to load it: files, a package; checked without reading data) and
`load()` (the data itself). Data is a function of the options alone, never of the run seed, so every
seed of a sweep sees the same train/test split; the run seed drives order, dropout and augmentation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

# Seeds for data generation are derived from the options plus this tag, so they never collide with
# a run seed's streams.
DATA_SEED_TAG = 0xF97


@dataclass(frozen=True)
class TaskSpec:
    input_kind: Literal["dense", "tokens"]
    input_dim: int  # feature size per token (dense) or vocabulary size (tokens)
    seq_len: int  # tokens per example, T
    n_classes: int  # classes per predicted label
    n_outputs: int = 1  # labels per example (1 for classification, n bits for the bit tasks)
    output_tokens: int = 1  # how many final tokens the output layer reads
    # "last": the last `output_tokens` positions. "last_real": the last token that is not `pad_id`
    # (right-padded token sequences, e.g. proteins read at their <sep>).
    readout: Literal["last", "last_real"] = "last"
    pad_id: int | None = None
    augments: bool = False  # training examples are randomly transformed (features cannot be cached)
    streamed: bool = False  # the train split is generated without end (no finite set to cache)

    def __post_init__(self) -> None:
        assert (self.n_outputs * self.n_classes) % self.output_tokens == 0, "labels must split evenly over output tokens"
        assert self.readout == "last" or (self.pad_id is not None and self.output_tokens == 1), "last_real reads one token"


@dataclass(frozen=True)
class Missing:
    """Something a run needs that is not here. `what` is one short line (a sweep plan prints it next to
    each cell); `how` says how to get it (a download, a package, an offline alternative), printed once."""

    what: str
    how: str = ""

    def __str__(self) -> str:
        return f"{self.what}. {self.how}" if self.how else self.what


@dataclass
class ArraySplit:
    """A finite split: `x` raw examples (first axis = examples), `y` int labels (N,) or (N, n_outputs)."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        assert len(self.x) == len(self.y), "x and y must have the same number of examples"

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class StreamSplit:
    """An endless generated split: `sample(n, rng)` returns n fresh (x, y) examples."""

    sample: Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def identity_encode(x: np.ndarray, train: bool, rng: np.random.Generator) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(x))


@dataclass
class TaskData:
    spec: TaskSpec
    train: ArraySplit | StreamSplit
    test: ArraySplit
    # Raw batch -> model input tensor: float (B, T, d) for dense tasks, int64 (B, T) for token tasks.
    # `train` turns on augmentation; `rng` is the only randomness it may use.
    encode: Callable[[np.ndarray, bool, np.random.Generator], Any] = identity_encode
    description: str = ""
    val: ArraySplit | None = None  # the validation split (`with_validation`): selection reads it, never `test`
    test_kept: float = 1.0  # share of the evaluation split kept (homology skips sequences over 1024 tokens)


class Task:
    """Base class for tasks. Subclasses set `name`, `Options`, and implement `spec` and `load`."""

    name: ClassVar[str]
    Options: ClassVar[type]

    def spec(self, opts: Any) -> TaskSpec:
        raise NotImplementedError

    def resolve(self, opts: Any, data_dir: Path) -> Any:
        """Return options with every "auto" resolved to what is available here (no data loaded)."""
        return opts

    def missing(self, opts: Any, data_dir: Path) -> Missing | None:
        """What `load(opts, data_dir)` would not find here (resolved or "auto" options), decided from
        file and package presence alone: no data is read. Data that can be downloaded counts as present
        unless downloads are disabled (`fptlab.assets.offline_disabled`). None: nothing is missing
        (always, for generated tasks)."""
        return None

    def load(self, opts: Any, data_dir: Path) -> TaskData:
        raise NotImplementedError

    def validation(self, opts: Any, data_dir: Path) -> ArraySplit | None:
        """The task's official validation split, prepared as its test split is, when it has one that is
        not the split it evaluates on (LRA's basic_val, TAPE's valid); None: carve one from train."""
        return None


VAL_TAG = 0x7A1  # the data stream that carves validation splits


def with_validation(task: Task, opts: Any, data: TaskData, fraction: float | None, data_dir: Path) -> TaskData:
    """`data` with its validation split (Section 6 of issue 16), decided by the task's data alone:
    - the task's official validation split, when it has one it does not evaluate on;
    - a generated task (endless train stream): a fixed set drawn from the generator with its own seed,
      as large as the test split;
    - otherwise `fraction` of the train split, seeded and stratified by label, removed from training.
    `fraction` None: no validation split (the data as before)."""
    import dataclasses

    if fraction is None:
        return data
    official = task.validation(opts, data_dir)
    if official is not None:
        return dataclasses.replace(data, val=official, description=f"{data.description}; validation: official split ({len(official)})")
    if isinstance(data.train, StreamSplit):
        x, y = data.train.sample(len(data.test), np.random.default_rng([DATA_SEED_TAG, VAL_TAG, len(data.test)]))
        val = ArraySplit(np.asarray(x), np.asarray(y))
        return dataclasses.replace(data, val=val, description=f"{data.description}; validation: {len(val)} fixed generated examples")
    train, val = stratified_split(data.train, fraction, data.spec.n_classes, getattr(task, "name", "task"))
    return dataclasses.replace(data, train=train, val=val,
                               description=f"{data.description}; validation: {len(val)} of the {len(data.train)} training examples")


def stratified_split(split: ArraySplit, fraction: float, n_classes: int, task: str) -> tuple[ArraySplit, ArraySplit]:
    """(train, validation): `fraction` of each class's examples (at least one of every class present)
    for validation, seeded by the split's size; labels of several outputs (bits) are split at random."""
    from fptlab.errors import ConfigError

    y = np.asarray(split.y)
    rng = np.random.default_rng([DATA_SEED_TAG, VAL_TAG, len(split)])
    if y.ndim == 1:
        labels = np.unique(y)
        if fraction * len(y) < len(labels):
            raise ConfigError(
                f"val_fraction = {fraction} of the {len(y)} training examples of {task} is {fraction * len(y):.1f} examples, "
                f"too few to hold one of each of its {len(labels)} classes. Raise val_fraction (at least "
                f"{len(labels) / len(y):.3g}), use more training data, or leave val_fraction unset."
            )
        picked = []
        for label in labels:  # a class with one example keeps it for training
            members = np.flatnonzero(y == label)
            k = min(len(members) - 1, max(1, round(fraction * len(members))))
            if k > 0:
                picked.append(rng.choice(members, size=k, replace=False))
        val_idx = np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=int)
    else:
        k = round(fraction * len(y))
        if not 0 < k < len(y):
            raise ConfigError(f"val_fraction = {fraction} of {len(y)} training examples of {task} leaves no validation or no "
                              "training example. Choose a fraction that keeps both.")
        val_idx = np.sort(rng.choice(len(y), size=k, replace=False))
    keep = np.ones(len(y), dtype=bool)
    keep[val_idx] = False
    return ArraySplit(split.x[keep], split.y[keep]), ArraySplit(split.x[val_idx], split.y[val_idx])


def chance_accuracy(y: np.ndarray) -> float:
    """The accuracy of always predicting the most common label (per output, averaged over outputs):
    the floor a model that learned nothing reaches on this split."""
    y = np.asarray(y)
    columns = y.reshape(len(y), -1)
    if len(columns) == 0:
        return float("nan")
    rates = [np.unique(c, return_counts=True)[1].max() / len(c) for c in columns.T]
    return float(np.mean(rates))


def data_rng(*parts: int) -> np.random.Generator:
    """A generator for data building, keyed by integers derived from the options."""
    return np.random.default_rng([DATA_SEED_TAG, *parts])


def data_fingerprint(data: TaskData) -> str:
    """A short digest of the data a run trained and evaluated on: the test split, and the train split
    (or, for generated tasks, a fixed probe batch of the generator). Two runs with the same config hash
    but different fingerprints saw different data (e.g. another release of a dataset)."""
    import hashlib

    digest = hashlib.sha256()
    splits = [data.test]
    if isinstance(data.train, ArraySplit):
        splits.append(data.train)
    else:
        splits.append(ArraySplit(*data.train.sample(8, np.random.default_rng(DATA_SEED_TAG))))
    for split in splits:
        for array in (np.ascontiguousarray(split.x), np.ascontiguousarray(split.y)):
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()[:16]
