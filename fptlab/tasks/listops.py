"""ListOps (paper Section 2.1 and Table 1; the task of Long Range Arena, Tay et al. 2021): a nested
expression of MIN, MAX, MED (median, rounded down) and SM (sum mod 10) over digits 0-9, e.g.
`[MAX 4 3 [MIN 2 3 ] 1 0 ]` = 4; predict its value (10 classes) from the last token.

Sources (`source`):
- "lra": the official release, TSV files `basic_{train,val,test}.tsv` with header `Source\\tTarget`
  (extract `listops-1000/` of LRA's `lra_release.gz` into `<data_dir>/listops`, or set `path`).
- "generated": our seeded, vectorised version of LRA's generator (`_listops_gen`) with LRA's
  settings by default: operator probability 0.25, depth <= 10, 2..10 arguments, LRA length strictly
  between 500 and 2000, no duplicates, 96k/2k/2k. It writes LRA's text form, parentheses included, and
  caches the splits under `<data_dir>/listops/generated-<hash of the generator options>/`.
- "auto": "lra" when the files are found (always when `path` is set), else "generated".
The data is a function of the options alone (`data_seed`, never the run seed).

Tokenizers (`tokenizer`), both with fixed vocabularies in sorted order, ids padded with 0 at the end
and truncated to `max_len`:
- "paper" (reproduces the reference code, whose numbers the paper reports): keep only alphanumeric
  runs, so brackets and parentheses vanish and `[MAX` becomes `MAX`; vocabulary pad + 0-9 + MAX, MED,
  MIN, SM = 15 ids; `max_len` 512. Later work reports two bugs here: without closing brackets the
  tree is ambiguous, and most LRA sequences are longer than 512 tokens, so their ends are cut off.
- "structured": keeps the tree: `[OP` tokens, closing `]`, and LRA's parentheses when
  `keep_parens` (they add no information; dropping them makes sequences about 3x shorter);
  vocabulary pad + ( ) 0-9 [MAX [MED [MIN [SM ] = 18 ids. Raise `max_len` (LRA uses 2000) to avoid
  truncation.

The reference evaluates on `basic_val`; `eval_split` picks which split is `TaskData.test`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from fptlab.errors import DataNotFoundError, FptlabWarning
from fptlab.tasks import _listops_gen as gen
from fptlab.tasks import register_task
from fptlab.tasks.base import ArraySplit, Missing, Task, TaskData, TaskSpec, data_rng

SPLITS = ("train", "val", "test")
LRA_FILES = {split: f"basic_{split}.tsv" for split in SPLITS}
LRA_SUBDIRS = ("", "listops-1000", "lra_release/listops-1000")  # where an extracted release may land
LRA_URL = "https://storage.googleapis.com/long-range-arena/lra_release.gz"
PAPER_VOCAB = ("<pad>", *"0123456789", "MAX", "MED", "MIN", "SM")
PAD_ID = 0  # both vocabularies start with <pad>; sequences are right-padded with it
STRUCTURED_VOCAB = gen.SOURCE_VOCAB
VOCABS = {"paper": PAPER_VOCAB, "structured": STRUCTURED_VOCAB}
N_CLASSES = 10
_TARGETS = frozenset(str(d) for d in range(N_CLASSES))
TOKENIZER_VERSION = 1  # bump when token ids change (invalidates cached token files)
_TOKENIZE_CHUNK = 4096  # rows per vectorised tokenizer step (bounds temporary memory)


@dataclass(frozen=True)
class ListOpsOptions:
    source: Literal["auto", "lra", "generated"] = "auto"
    path: str | None = None  # folder with basic_*.tsv (default: <data_dir>/listops)
    tokenizer: Literal["paper", "structured"] = "paper"
    keep_parens: bool = True  # structured only: keep LRA's "(" and ")" tokens
    max_len: int = 512  # tokens per example after truncation / padding (T)
    eval_split: Literal["val", "test"] = "val"  # the split TaskData.test holds
    # Generator (source = "generated"); LRA's settings by default.
    n_train: int = 96_000
    n_val: int = 2_000
    n_test: int = 2_000
    min_length: int = 500  # LRA length strictly above this ...
    max_length: int = 2000  # ... and strictly below this
    max_depth: int = 10
    max_args: int = 10
    data_seed: int = 0

    def __post_init__(self) -> None:
        _check_choice("source", self.source, ("auto", "lra", "generated"))
        _check_choice("tokenizer", self.tokenizer, tuple(VOCABS))
        _check_choice("eval_split", self.eval_split, ("val", "test"))
        if self.source == "generated" and self.path is not None:
            raise ValueError(f"path = {self.path!r} names LRA files, but source = 'generated'; drop path or set source = 'lra'")
        if self.max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {self.max_len}")
        for key in ("n_train", "n_val", "n_test"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.max_depth < 2 or self.max_args < 2:
            raise ValueError(f"max_depth and max_args must be >= 2 (LRA: 10 and 10), got {self.max_depth} and {self.max_args}")
        if self.min_length < 0 or self.max_length < self.min_length + 2:
            raise ValueError(
                f"need 0 <= min_length and max_length >= min_length + 2 (lengths are strictly between), "
                f"got min_length={self.min_length}, max_length={self.max_length}; LRA uses 500 and 2000"
            )
        longest = gen.max_reachable_length(self.max_depth, self.max_args)
        if self.min_length + 1 > longest:
            raise ValueError(
                f"min_length={self.min_length} is unreachable: with max_depth={self.max_depth} and "
                f"max_args={self.max_args} no expression is longer than {longest}; lower min_length or raise them"
            )
        if self.data_seed < 0:
            raise ValueError(f"data_seed must be >= 0, got {self.data_seed}")


def _check_choice(key: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{key} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


# ---- tokenizers ---------------------------------------------------------------------------------
def token_table(tokenizer: str, keep_parens: bool = True) -> np.ndarray:
    """Source id -> output id (-1: dropped), shape (len(SOURCE_VOCAB),)."""
    table = np.full(len(gen.SOURCE_VOCAB), -1, dtype=np.int8)
    if tokenizer == "paper":  # alphanumeric runs only: digits and operator names
        table[gen.DIGIT0 : gen.DIGIT0 + 10] = np.arange(1, 11)
        table[gen.OP0 : gen.CLOSE] = np.arange(11, 11 + len(gen.OPS))
    else:
        table[1:] = np.arange(1, len(gen.SOURCE_VOCAB))
        if not keep_parens:
            table[[gen.LPAR, gen.RPAR]] = -1
    return table


def tokenize(rows: gen.Ragged, table: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Map, drop, truncate and pad: -> ids int64 (N, max_len), lengths before truncation (N,)."""
    out = np.zeros((len(rows), max_len), dtype=np.int64)  # (N, T), 0 = pad at the end
    full = np.zeros(len(rows), dtype=np.int64)
    for lo in range(0, len(rows), _TOKENIZE_CHUNK):
        hi = min(lo + _TOKENIZE_CHUNK, len(rows))
        ids = table[rows.flat[rows.offsets[lo] : rows.offsets[hi]]]  # (n_ids,) int8
        row = np.repeat(np.arange(hi - lo, dtype=np.int32), np.diff(rows.offsets[lo : hi + 1]))  # (n_ids,)
        kept = ids >= 0
        ids, row = ids[kept], row[kept]
        first = np.searchsorted(row, np.arange(hi - lo))  # (rows,) first kept id of each row
        rank = np.arange(len(ids), dtype=np.int32) - first[row].astype(np.int32)  # position in its row
        fit = rank < max_len
        out[lo + row[fit], rank[fit]] = ids[fit]
        full[lo:hi] = np.bincount(row, minlength=hi - lo)
    return out, full


@dataclass
class Tokenized:
    x: np.ndarray  # (N, max_len) int64 token ids, 0 = pad
    y: np.ndarray  # (N,) int64 labels
    full: np.ndarray  # (N,) tokens before truncation

    def truncated(self, max_len: int) -> float:
        """Fraction of examples cut at max_len."""
        return float(np.mean(self.full > max_len)) if len(self.full) else 0.0


def encode_texts(texts: list[str], opts: ListOpsOptions) -> np.ndarray:
    """ListOps strings (either text form) -> token ids (N, max_len) with opts' tokenizer."""
    rows = gen.texts_to_ragged(texts)
    return tokenize(rows, token_table(opts.tokenizer, opts.keep_parens), opts.max_len)[0]


# ---- the official LRA files ---------------------------------------------------------------------
def lra_candidates(opts: ListOpsOptions, data_dir: Path) -> list[Path]:
    base = Path(opts.path).expanduser() if opts.path is not None else Path(data_dir) / "listops"
    return [base / sub if sub else base for sub in LRA_SUBDIRS]


def _needed(opts: ListOpsOptions) -> tuple[str, str]:
    return ("train", opts.eval_split)


def find_lra_dir(opts: ListOpsOptions, data_dir: Path) -> Path | None:
    """The first candidate folder holding the TSV files these options need, if any."""
    for folder in lra_candidates(opts, data_dir):
        if all((folder / LRA_FILES[s]).is_file() for s in _needed(opts)):
            return folder
    return None


def _lra_how_to_get(data_dir: Path) -> str:
    return (
        f"Get LRA's release lra_release.gz ({LRA_URL}), extract its listops-1000/ folder into "
        f"{Path(data_dir) / 'listops'} or set listops.path to that folder. Offline alternative: "
        "listops.source = \"generated\" (a seeded generator with LRA's settings)."
    )


def _missing_lra(opts: ListOpsOptions, data_dir: Path) -> DataNotFoundError:
    files = ", ".join(LRA_FILES[s] for s in _needed(opts))
    looked = ", ".join(str(p) for p in lra_candidates(opts, data_dir))
    return DataNotFoundError(f"ListOps source 'lra': {files} not found; looked in {looked}. {_lra_how_to_get(data_dir)}")


def read_tsv(path: Path) -> tuple[gen.Ragged, np.ndarray]:
    """One LRA ListOps TSV file (`Source\tTarget` header) -> source ids and labels int64 (N,)."""
    sources, labels, linenos = [], [], []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\r\n").split("\t")
        if header != ["Source", "Target"]:
            raise DataNotFoundError(
                f"{path}: header {header!r} is not LRA's ListOps header 'Source<TAB>Target'; re-extract the file from lra_release.gz."
            )
        for lineno, line in enumerate(f, start=2):
            if not line.strip():
                continue
            source, _, target = line.rstrip("\r\n").rpartition("\t")
            if target.strip() not in _TARGETS:
                raise DataNotFoundError(
                    f"{path}:{lineno}: target {target!r} is not a digit 0-9; expected '<expression><TAB><digit>' as in LRA's ListOps."
                )
            sources.append(source)
            labels.append(int(target))
            linenos.append(lineno)
    try:
        rows = gen.texts_to_ragged(sources)
    except gen.BadRow as e:
        raise DataNotFoundError(f"{path}:{linenos[e.row]}: not a ListOps expression ({e}).") from None
    return rows, np.array(labels, dtype=np.int64)


def load_lra(opts: ListOpsOptions, data_dir: Path) -> tuple[dict[str, tuple[gen.Ragged, np.ndarray]], Path]:
    folder = find_lra_dir(opts, data_dir)
    if folder is None:
        raise _missing_lra(opts, data_dir)
    return {s: read_tsv(folder / LRA_FILES[s]) for s in _needed(opts)}, folder


# ---- the generated set, cached ------------------------------------------------------------------
def generator_fields(opts: ListOpsOptions) -> dict[str, int]:
    """Everything the generated data depends on (the cache key)."""
    keys = ("n_train", "n_val", "n_test", "min_length", "max_length", "max_depth", "max_args", "data_seed")
    fields = {k: getattr(opts, k) for k in keys}
    return {"version": gen.GEN_VERSION, "batch_roots": gen.BATCH_ROOTS, **fields}


def generator_hash(opts: ListOpsOptions) -> str:
    text = json.dumps(generator_fields(opts), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_file(opts: ListOpsOptions, data_dir: Path) -> Path:
    return Path(data_dir) / "listops" / f"generated-{generator_hash(opts)}" / "splits.npz"


def generate_splits(opts: ListOpsOptions) -> dict[str, tuple[gen.Ragged, np.ndarray]]:
    """Draw n_train + n_val + n_test distinct samples; split them in the order they were drawn."""
    settings = gen.GenSettings(opts.min_length, opts.max_length, opts.max_depth, opts.max_args)
    rng = data_rng(0x1157, int(generator_hash(opts), 16))
    rows, labels = gen.generate(opts.n_train + opts.n_val + opts.n_test, settings, rng)
    bounds = np.cumsum([0, opts.n_train, opts.n_val, opts.n_test])
    return {s: (rows.take(np.arange(bounds[i], bounds[i + 1])), labels[bounds[i] : bounds[i + 1]]) for i, s in enumerate(SPLITS)}


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an .npz atomically (temp file + rename), fast zlib level 1 (the ids are very regular)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
            for name, array in arrays.items():
                with z.open(f"{name}.npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.ascontiguousarray(array))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _try_save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        _save_npz(path, arrays)
    except OSError as e:  # a read-only data dir only costs regenerating next time
        warnings.warn(f"ListOps: could not cache {path} ({e}); it will be rebuilt next time.", FptlabWarning, stacklevel=3)


def _read_cache(path: Path) -> dict[str, tuple[gen.Ragged, np.ndarray]] | None:
    try:
        with np.load(path) as z:
            return {s: (gen.Ragged(z[f"{s}_flat"], z[f"{s}_offsets"]), z[f"{s}_labels"]) for s in SPLITS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # missing or damaged: regenerate


def generated_splits(opts: ListOpsOptions, data_dir: Path) -> tuple[dict[str, tuple[gen.Ragged, np.ndarray]], Path]:
    path = cache_file(opts, data_dir)
    cached = _read_cache(path) if path.exists() else None
    if cached is not None:
        return cached, path
    splits = generate_splits(opts)
    arrays: dict[str, np.ndarray] = {"generator": np.array(json.dumps(generator_fields(opts)))}
    for s, (rows, labels) in splits.items():
        arrays.update({f"{s}_flat": rows.flat, f"{s}_offsets": rows.offsets, f"{s}_labels": labels})
    _try_save(path, arrays)
    return splits, path


def tokens_file(opts: ListOpsOptions, data_dir: Path) -> Path:
    parens = "-parens" if opts.tokenizer == "structured" and opts.keep_parens else ""
    name = f"tokens-v{TOKENIZER_VERSION}-{opts.tokenizer}{parens}-{opts.max_len}.npz"
    return cache_file(opts, data_dir).with_name(name)


def tokenize_split(rows: gen.Ragged, labels: np.ndarray, opts: ListOpsOptions) -> Tokenized:
    ids, full = tokenize(rows, token_table(opts.tokenizer, opts.keep_parens), opts.max_len)
    return Tokenized(ids, labels, full)


def generated_tokens(opts: ListOpsOptions, data_dir: Path) -> tuple[dict[str, Tokenized], Path]:
    """Token ids of the generated splits, cached per tokenizer setting next to the raw splits."""
    path = tokens_file(opts, data_dir)
    try:
        with np.load(path) as z:  # ids stored as uint8 (every vocabulary has < 256 ids)
            return {s: Tokenized(z[f"{s}_x"].astype(np.int64), z[f"{s}_y"], z[f"{s}_full"]) for s in SPLITS}, path
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        pass  # not cached yet (or damaged)
    raw, _ = generated_splits(opts, data_dir)
    tokens = {s: tokenize_split(*raw[s], opts) for s in SPLITS}
    arrays = {}
    for s, t in tokens.items():
        arrays.update({f"{s}_x": t.x.astype(np.uint8), f"{s}_y": t.y, f"{s}_full": t.full})
    _try_save(path, arrays)
    return tokens, path


# ---- the task -----------------------------------------------------------------------------------
@register_task
class ListOps(Task):
    name = "listops"
    Options = ListOpsOptions

    def spec(self, opts: ListOpsOptions) -> TaskSpec:
        return TaskSpec("tokens", len(VOCABS[opts.tokenizer]), opts.max_len, n_classes=N_CLASSES, pad_id=PAD_ID)

    def resolve(self, opts: ListOpsOptions, data_dir: Path) -> ListOpsOptions:
        if opts.source != "auto":
            return opts
        found = opts.path is not None or find_lra_dir(opts, data_dir) is not None
        return dataclasses.replace(opts, source="lra" if found else "generated")

    def missing(self, opts: ListOpsOptions, data_dir: Path) -> Missing | None:
        """LRA's files are never downloaded: source "lra" needs them here; "generated" needs nothing."""
        opts = self.resolve(opts, data_dir)
        if opts.source != "lra" or find_lra_dir(opts, data_dir) is not None:
            return None
        files = ", ".join(LRA_FILES[s] for s in _needed(opts))
        where = lra_candidates(opts, data_dir)[0]
        return Missing(f"ListOps LRA files ({files}) not found in {where}", _lra_how_to_get(data_dir))

    def load(self, opts: ListOpsOptions, data_dir: Path) -> TaskData:
        opts = self.resolve(opts, data_dir)
        if opts.source == "lra":
            raw, where = load_lra(opts, data_dir)
            tokens = {s: tokenize_split(*raw[s], opts) for s in raw}
            origin = f"LRA release at {where}"
        else:
            tokens, where = generated_tokens(opts, data_dir)
            origin = f"generated, cached at {where.parent}"
        train, test = tokens["train"], tokens[opts.eval_split]
        return TaskData(
            spec=self.spec(opts),
            train=ArraySplit(train.x, train.y),
            test=ArraySplit(test.x, test.y),
            description=(
                f"ListOps ({origin}); {opts.tokenizer} tokenizer, {opts.max_len} tokens "
                f"(truncated: {train.truncated(opts.max_len):.0%} of train, "
                f"{test.truncated(opts.max_len):.0%} of {opts.eval_split}); "
                f"{len(train.y)} train, evaluated on {opts.eval_split} ({len(test.y)})"
            ),
        )

    def validation(self, opts: ListOpsOptions, data_dir: Path) -> ArraySplit | None:
        """LRA's `basic_val` (or the generated val split) when the run evaluates on `test`; with the
        reference's eval_split = "val" that split is the evaluation, and validation is carved from train."""
        opts = self.resolve(opts, data_dir)
        if opts.eval_split == "val":
            return None
        if opts.source == "lra":
            raw, _ = load_lra(dataclasses.replace(opts, eval_split="val"), data_dir)
            val = tokenize_split(*raw["val"], opts)
        else:
            val = generated_tokens(opts, data_dir)[0]["val"]
        return ArraySplit(val.x, val.y)
