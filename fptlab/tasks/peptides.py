"""Antimicrobial peptides: an offline protein-sequence classification task in the spirit of the
paper's remote homology (Section 2.1), with the same TAPE tokenisation, for machines without TAPE.

Data: modlamp's `AMPvsUniProt.csv` (Müller et al., modlAMP; install with `pip install --no-deps
modlamp`): 2,600 antimicrobial peptides from APD3 (label 1, "AMP") and 2,600 random UniProt
sequences of 10-50 residues (label 0, "UniProt"). Its first line is a scikit-learn style header
`5200,1,UniProt,AMP` (rows, features, then the class names in label order); then `sequence, label`.

Measured on that file: lengths 7-174 residues (median 32, 99th percentile 96); every sequence longer
than 50 residues is an AMP, so length alone separates part of the data. 558 rows repeat an earlier
sequence (most in the UniProt class, one sequence 25 times) and 22 sequences occur with both labels;
`dedupe = true` (default) keeps one copy of each sequence and drops the contradictory ones, leaving
4,620 sequences (2,080 UniProt, 2,540 AMP), so no test sequence is also a training sequence.
The default split is stratified 80/20 (seeded by the options): 3,696 train, 924 test.
`max_len = 176` tokens covers the longest sequence plus `<cls>` and `<sep>`.
"""

from __future__ import annotations

import csv
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from fptlab import assets
from fptlab.errors import DataNotFoundError, FptlabError
from fptlab.tasks import register_task
from fptlab.tasks._amino import VOCAB_SIZE, LongPolicy, Readout, check_options, pack, readout_spec, subsample, token_length
from fptlab.tasks.base import ArraySplit, Missing, Task, TaskData, TaskSpec, data_rng

MODLAMP_FILE = ("modlamp", "data/AMPvsUniProt.csv")
N_CLASSES = 2
_SEED_KEY = zlib.crc32(b"peptides")
_INSTALL = "pip install --no-deps modlamp"


@dataclass(frozen=True)
class PeptidesOptions:
    source: Literal["auto", "modlamp", "csv"] = "auto"  # auto: "csv" when path is set, else "modlamp"
    path: str | None = None  # CSV for source = "csv", in modlamp's format (see module docstring)
    max_len: int = 176  # T, tokens including <cls> and <sep>; 176 keeps every modlamp sequence
    long: LongPolicy = "skip"  # sequences over max_len: "skip" or "truncate"
    dedupe: bool = True  # one copy per distinct sequence; sequences seen with both labels dropped
    test_fraction: float = 0.2  # per-class share held out for testing
    n_train: int = 0  # seeded subsample of the train split; 0 = all
    n_test: int = 0  # seeded subsample of the test split; 0 = all
    readout: Readout = "sep"  # read the output at each sequence's <sep> ("sep") or the last position ("last")

    def __post_init__(self) -> None:
        if self.source not in ("auto", "modlamp", "csv"):
            raise ValueError(f"source must be 'auto', 'modlamp' or 'csv', got {self.source!r}")
        if self.source == "csv" and not (self.path or "").strip():
            raise ValueError("source = 'csv' needs path = the CSV file to read")
        if self.source == "modlamp" and self.path is not None:
            raise ValueError(f"path ({self.path!r}) is only read with source = 'csv'; drop it or set source = 'csv'")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        check_options(self.max_len, self.long, {"n_train": self.n_train, "n_test": self.n_test}, self.readout)


# ---- reading ------------------------------------------------------------------------------------
def modlamp_file() -> Path | None:
    return assets.package_file(*MODLAMP_FILE)


MISSING_MODLAMP = Missing(
    f"The peptides task reads {MODLAMP_FILE[1]} from the modlamp package, which is not installed",
    f'Install it with `{_INSTALL}` (--no-deps: only its data file is used), or set source = "csv" and '
    "path = a CSV of the same format (header `sequence,label`, labels 0/1).",
)


def _missing_modlamp() -> DataNotFoundError:
    return DataNotFoundError(str(MISSING_MODLAMP))


def _parse_header(header: list[str], path: Path) -> tuple[int | None, tuple[str, str]]:
    """Expected row count (or None) and the class names, from modlamp's or a plain header."""
    fields = [h.strip() for h in header]
    if fields and fields[0].isdigit() and len(fields) == 2 + N_CLASSES:  # modlamp: rows, features, names
        return int(fields[0]), (fields[2], fields[3])
    if [f.lower() for f in fields] == ["sequence", "label"]:
        return None, ("0", "1")
    raise FptlabError(
        f"{path}: unrecognised header {','.join(fields)!r}. Expected modlamp's "
        "`<rows>,1,<name of 0>,<name of 1>` or `sequence,label`."
    )


def _parse_row(row: list[str], where: str) -> tuple[str, int]:
    if len(row) != 2 or not row[0].strip() or row[1].strip() not in ("0", "1"):
        raise FptlabError(
            f"{where}: expected `sequence,label` with a non-empty sequence and label 0 or 1, got {','.join(row)!r}."
        )
    return row[0].strip(), int(row[1])


def read_csv(path: Path) -> tuple[list[str], np.ndarray, tuple[str, str]]:
    """Sequences, labels (N,) int64 and class names of a modlamp-format CSV, in file order."""
    try:
        with open(path, newline="") as f:
            rows = [row for row in csv.reader(f) if row and any(cell.strip() for cell in row)]
    except OSError as e:
        raise DataNotFoundError(f"Cannot read peptide CSV {path} ({e.strerror}). Check peptides.path.") from None
    if not rows:
        raise FptlabError(f"{path} is empty; expected a header and `sequence,label` rows.")
    expected, names = _parse_header(rows[0], path)
    parsed = [_parse_row(row, f"{path} line {i}") for i, row in enumerate(rows[1:], start=2)]
    if expected is not None and expected != len(parsed):
        raise FptlabError(f"{path}: the header announces {expected} rows but the file has {len(parsed)}.")
    return [s for s, _ in parsed], np.array([label for _, label in parsed], dtype=np.int64), names


def dedupe(sequences: list[str], labels: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Indices keeping the first copy of each sequence, minus sequences seen with both labels;
    also the counts of repeated rows and of contradictory sequences."""
    seen: dict[str, set[int]] = {}
    first: dict[str, int] = {}
    for i, (sequence, label) in enumerate(zip(sequences, labels.tolist())):
        seen.setdefault(sequence, set()).add(label)
        first.setdefault(sequence, i)
    conflicting = sum(len(ls) > 1 for ls in seen.values())
    keep = sorted(i for s, i in first.items() if len(seen[s]) == 1)
    return np.array(keep, dtype=np.int64), len(sequences) - len(first), conflicting


# ---- splitting ----------------------------------------------------------------------------------
def stratified_split(labels: np.ndarray, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) indices: each class's examples shuffled by a data seed, the first
    round(test_fraction * n_class) of them held out. Depends only on the labels and the fraction."""
    test = []
    for c in range(N_CLASSES):
        members = np.flatnonzero(labels == c)
        rng = data_rng(_SEED_KEY, 1, c, round(test_fraction * 10**6))
        test.append(rng.permutation(members)[: round(test_fraction * len(members))])
    test_idx = np.sort(np.concatenate(test))
    return np.setdiff1d(np.arange(len(labels)), test_idx), test_idx


# ---- the task -----------------------------------------------------------------------------------
@register_task
class Peptides(Task):
    name = "peptides"
    Options = PeptidesOptions

    def spec(self, opts: PeptidesOptions) -> TaskSpec:
        return TaskSpec("tokens", VOCAB_SIZE, opts.max_len, n_classes=N_CLASSES, **readout_spec(opts.readout))

    def resolve(self, opts: PeptidesOptions, data_dir: Path) -> PeptidesOptions:
        """Resolve source "auto": "csv" when a path is given, else "modlamp" when its file is here."""
        if opts.source != "auto":
            return opts
        if opts.path is not None:
            return replace(opts, source="csv")
        if modlamp_file() is None:
            raise _missing_modlamp()
        return replace(opts, source="modlamp")

    def missing(self, opts: PeptidesOptions, data_dir: Path) -> Missing | None:
        if opts.path is not None:  # source "csv" (or "auto", which then reads it)
            path = Path(opts.path).expanduser()
            if path.is_file():
                return None
            how = f"Point peptides.path at a CSV in modlamp's format, or drop source and path to read modlamp's file ({_INSTALL})."
            return Missing(f"peptides.path = {opts.path!r}: no such file", how)
        return None if modlamp_file() is not None else MISSING_MODLAMP

    def load(self, opts: PeptidesOptions, data_dir: Path) -> TaskData:
        opts = self.resolve(opts, data_dir)
        path = Path(opts.path).expanduser() if opts.source == "csv" else modlamp_file()
        if path is None:
            raise _missing_modlamp()
        sequences, labels, names = read_csv(path)
        keep, repeated, conflicting = dedupe(sequences, labels) if opts.dedupe else (np.arange(len(labels)), 0, 0)
        chosen = [sequences[i] for i in keep]
        n_long = sum(token_length(s) > opts.max_len for s in chosen)
        x, kept = pack(chosen, opts.max_len, opts.long)  # (N, T)
        y = labels[keep][kept]  # (N,)
        train_idx, test_idx = stratified_split(y, opts.test_fraction)
        train_idx = train_idx[
            subsample(len(train_idx), opts.n_train, data_rng(_SEED_KEY, 2, opts.n_train), option="peptides.n_train")
        ]
        test_idx = test_idx[
            subsample(len(test_idx), opts.n_test, data_rng(_SEED_KEY, 3, opts.n_test), option="peptides.n_test")
        ]
        dropped = f"{repeated} repeated rows and {conflicting} contradictory sequences dropped, " if opts.dedupe else ""
        return TaskData(
            spec=self.spec(opts),
            train=ArraySplit(x[train_idx], y[train_idx]),
            test=ArraySplit(x[test_idx], y[test_idx]),
            description=(
                f"Peptides {names[1]} (1) vs {names[0]} (0) from {path.name}: {len(labels)} rows, {dropped}"
                f"{n_long} over {opts.max_len} tokens {'skipped' if opts.long == 'skip' else 'truncated'}; "
                f"train {len(train_idx)}, test {len(test_idx)} (label 1 share "
                f"{y[test_idx].mean() if len(test_idx) else 0:.3f})."
            ),
        )
