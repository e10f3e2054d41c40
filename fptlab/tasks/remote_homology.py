"""Remote homology detection (paper Section 2.1): predict a protein's SCOP fold (1,195 classes) from
its amino-acid sequence, with TAPE's data (Rao et al. 2019) and TAPE's 30-token vocabulary.

TAPE splits: train 12,312, valid 736, test_fold_holdout 718, test_superfamily_holdout 1,254,
test_family_holdout 1,272. The reference evaluated on `valid`. It skipped every batch whose padded
length exceeded 1,024 tokens (97.39% of examples kept) and scaled its reported accuracies by 0.9739,
i.e. it counted the skipped examples as wrong. `long = "skip"` drops over-long sequences one by one
(so the kept set does not depend on batching); multiply accuracy by the kept fraction of the eval
split, printed in the task description, to compare with the paper. `long = "truncate"` keeps all.

Files: `remote_homology_{split}.json` (a list of records) or `remote_homology_{split}.lmdb` (values
are pickled records, key b"num_examples" the count, other keys str(index)); fields used: `primary`
(sequence) and `fold_label` (int). Looked for in `<data dir>/remote_homology` or `path`; with internet
TAPE's archive is downloaded and extracted there once.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fptlab import assets
from fptlab.errors import DataNotFoundError, FptlabError
from fptlab.tasks import register_task
from fptlab.tasks._amino import VOCAB_SIZE, LongPolicy, Readout, check_options, pack, readout_spec, subsample
from fptlab.tasks.base import ArraySplit, Missing, Task, TaskData, TaskSpec, data_rng

N_FOLDS = 1195
PAPER_KEPT_FRACTION = 0.9739  # reference: fraction of examples in batches of <= 1024 tokens
EVAL_SPLITS = ("valid", "test_fold_holdout", "test_superfamily_holdout", "test_family_holdout")
FORMATS = (".json", ".lmdb")  # JSON first: it needs no extra package and holds no pickles
SUBDIR = "remote_homology"
# TAPE README: LMDB release (md5 as published by TorchDrug's `Fold` dataset) and raw JSON release.
ARCHIVES = {
    "lmdb": ("http://s3.amazonaws.com/songlabdata/proteindata/data_pytorch/remote_homology.tar.gz",
             "1d687bdeb9e3866f77504d6079eed00a"),
    "json": ("http://s3.amazonaws.com/songlabdata/proteindata/data_raw_pytorch/remote_homology.tar.gz", None),
}  # fmt: skip
_SEED_KEY = zlib.crc32(b"remote_homology")


@dataclass(frozen=True)
class RemoteHomologyOptions:
    source: Literal["auto", "tape"] = "auto"  # "auto" resolves to "tape", the only source
    path: str | None = None  # folder with the remote_homology_* files; None = <data dir>/remote_homology
    max_len: int = 1024  # T, tokens including <cls> and <sep> (the reference's limit)
    long: LongPolicy = "skip"  # sequences over max_len: "skip" (reference) or "truncate"
    eval_split: Literal["valid", "test_fold_holdout", "test_superfamily_holdout", "test_family_holdout"] = "valid"
    n_train: int = 0  # seeded subsample of the train split for quick runs; 0 = all
    n_eval: int = 0  # seeded subsample of the eval split; 0 = all
    readout: Readout = "sep"  # read the output at each sequence's <sep> ("sep") or the last position ("last")

    def __post_init__(self) -> None:
        if self.source not in ("auto", "tape"):
            raise ValueError(f"source must be 'auto' or 'tape', got {self.source!r}")
        if self.eval_split not in EVAL_SPLITS:
            raise ValueError(f"eval_split must be one of {', '.join(EVAL_SPLITS)}, got {self.eval_split!r}")
        if self.path is not None and not self.path.strip():
            raise ValueError("path must name a folder, or be left unset for <data dir>/remote_homology")
        check_options(self.max_len, self.long, {"n_train": self.n_train, "n_eval": self.n_eval}, self.readout)


# ---- finding the files ---------------------------------------------------------------------------
def default_root(data_dir: Path) -> Path:
    return Path(data_dir) / SUBDIR


def _candidate_roots(opts: RemoteHomologyOptions, data_dir: Path) -> list[Path]:
    if opts.path is None:
        return [default_root(data_dir)]
    given = Path(opts.path).expanduser()
    return [given, given / SUBDIR]  # the folder itself, or TAPE's data folder holding it


def split_file(root: Path, split: str) -> Path | None:
    """`root/remote_homology_{split}.json` or `.lmdb`, whichever exists (JSON first)."""
    for suffix in FORMATS:
        candidate = root / f"remote_homology_{split}{suffix}"
        if candidate.exists():
            return candidate
    return None


def find_root(opts: RemoteHomologyOptions, data_dir: Path) -> Path | None:
    """The first candidate folder holding both the train split and the chosen eval split."""
    for root in _candidate_roots(opts, data_dir):
        if split_file(root, "train") and split_file(root, opts.eval_split):
            return root
    return None


def _how_to_get(opts: RemoteHomologyOptions, data_dir: Path) -> str:
    url = ARCHIVES["lmdb"][0]
    return (
        f"Get TAPE's remote-homology data: run once with internet (fptlab downloads it into "
        f"{default_root(data_dir)}), or download {url} (or the JSON release, same path with data_raw_pytorch) "
        f"and extract it into {data_dir} (it unpacks to {SUBDIR}/), or set remote_homology.path to a folder "
        f"holding remote_homology_{{train,{opts.eval_split}}}.{{json,lmdb}}. "
        f"Offline alternative: --task peptides (a real protein-sequence task shipped by "
        f"`pip install --no-deps modlamp`)."
    )


def _not_found(opts: RemoteHomologyOptions, data_dir: Path, why: str = "") -> DataNotFoundError:
    looked = ", ".join(str(r) for r in _candidate_roots(opts, data_dir))
    files = f"remote_homology_{{train,{opts.eval_split}}}.{{json,lmdb}}"
    return DataNotFoundError(
        f"TAPE remote-homology data not found: looked for {files} in {looked}.{why} " + _how_to_get(opts, data_dir)
    )


# ---- download and safe extraction ----------------------------------------------------------------
def _lmdb_available() -> bool:
    return assets.package_dir("lmdb") is not None


def fetch(opts: RemoteHomologyOptions, data_dir: Path) -> Path:
    """Download TAPE's archive (LMDB when `lmdb` is installed, else JSON) and extract it safely."""
    data_dir = Path(data_dir)
    with assets.file_lock(default_root(data_dir)):  # trials fetching at once take turns
        if find_root(opts, data_dir) is not None:
            return default_root(data_dir)
        return _fetch_unlocked(opts, data_dir)


def _fetch_unlocked(opts: RemoteHomologyOptions, data_dir: Path) -> Path:
    variant = "lmdb" if _lmdb_available() else "json"
    url, md5 = ARCHIVES[variant]
    archive = data_dir / f"remote_homology_{variant}.tar.gz"
    assets.download(url, archive, what="TAPE remote-homology archive", how_to_get=_how_to_get(opts, data_dir))
    digest = _md5(archive) if md5 is not None else None
    if digest != md5:
        archive.unlink()
        raise DataNotFoundError(
            f"{url} downloaded with md5 {digest}, expected {md5}; the file was removed. "
            "Retry, or get it by hand. " + _how_to_get(opts, data_dir)
        )
    extract_archive(archive, data_dir)
    archive.unlink()
    return default_root(data_dir)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _safe_members(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    """Regular files and folders with relative paths that stay inside the target; anything else is refused."""
    members = []
    for member in tar.getmembers():
        parts = Path(member.name).parts
        if member.name.startswith(("/", "\\")) or ".." in parts or not (member.isfile() or member.isdir()):
            raise FptlabError(
                f"{archive} holds an unsafe entry {member.name!r} (absolute path, '..', link "
                "or device); refusing to extract it. Delete the file and download it again."
            )
        members.append(member)
    return members


def extract_archive(archive: Path, data_dir: Path) -> Path:
    """Extract into a temporary folder, then move the folder holding the split files to
    `data_dir/remote_homology` in one rename, so a half-extracted archive is never taken as data."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".extract-") as tmp:
        staging = Path(tmp) / "x"  # found files' folder is always strictly inside tmp, so it can move out
        with tarfile.open(archive, "r:*") as tar:
            members = _safe_members(tar, archive)
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(staging, members=members, **kwargs)
        found = sorted(staging.rglob("remote_homology_train.*"), key=lambda p: len(p.parts))
        if not found:
            raise FptlabError(
                f"{archive} holds no remote_homology_train.json or .lmdb; is it TAPE's "
                "remote_homology.tar.gz? Delete it and download it again."
            )
        target = default_root(data_dir)
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(found[0].parent), str(target))
    return target


# ---- reading records -----------------------------------------------------------------------------
class _RecordUnpickler(pickle.Unpickler):
    """Unpickles TAPE's records (dicts of str, numbers, lists and numpy arrays) and nothing else, so a
    tampered LMDB file cannot run code."""

    ALLOWED = frozenset({
        ("collections", "OrderedDict"), ("_codecs", "encode"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    })  # fmt: skip

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: not part of a TAPE record")
        return super().find_class(module, name)


def safe_loads(data: bytes) -> Any:
    return _RecordUnpickler(io.BytesIO(data)).load()


def _label(value: Any) -> int | None:
    if isinstance(value, np.ndarray) and value.size == 1 and np.issubdtype(value.dtype, np.integer):
        value = value.item()  # TAPE's TFRecord->LMDB conversion may keep 1-element arrays
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= value < N_FOLDS:
        return int(value)
    return None


def _record(item: Any, where: str) -> tuple[str, int]:
    """(sequence, fold label) of one TAPE record, checked."""
    if not isinstance(item, dict) or "primary" not in item or "fold_label" not in item:
        raise FptlabError(
            f"{where}: expected a record with 'primary' and 'fold_label' (TAPE's format), "
            f"got {str(item)[:80]!r}. Is this TAPE's remote-homology data?"
        )
    sequence, label = item["primary"], _label(item["fold_label"])
    if isinstance(sequence, bytes):
        sequence = sequence.decode("ascii", errors="replace")
    if not isinstance(sequence, str) or label is None:
        raise FptlabError(
            f"{where}: 'primary' must be a string and 'fold_label' an integer in "
            f"[0, {N_FOLDS}); got {str(item['primary'])[:40]!r} and {item['fold_label']!r}."
        )
    return sequence, label


def _read_json(path: Path) -> list[tuple[str, int]]:
    try:
        items = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise FptlabError(f"{path} is not readable JSON ({e}). Delete it and download it again.") from None
    if not isinstance(items, list):
        raise FptlabError(f"{path}: expected a JSON list of records (TAPE's format), got {type(items).__name__}.")
    return [_record(item, f"{path} record {i}") for i, item in enumerate(items)]


def _read_lmdb(path: Path) -> list[tuple[str, int]]:
    try:
        import lmdb
    except ImportError:
        raise DataNotFoundError(
            f"{path} is an LMDB database, and reading it needs the `lmdb` package: "
            "pip install lmdb (or use TAPE's JSON release of the same data)."
        ) from None
    try:
        env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, meminit=False, subdir=path.is_dir())
    except lmdb.Error as e:
        raise FptlabError(f"{path} is not a readable LMDB database ({e}). Delete it and download it again.") from None
    try:
        with env.begin(write=False) as txn:  # records are decoded one at a time: they also hold big PSSMs
            return [_record(safe_loads(value), f"{path} record {i}") for i, value in _lmdb_values(txn, path)]
    finally:
        env.close()


def _lmdb_values(txn: Any, path: Path) -> Iterator[tuple[int, bytes]]:
    raw_count = txn.get(b"num_examples")
    if raw_count is None:
        raise FptlabError(f"{path}: no b'num_examples' key, so this is not a TAPE LMDB file.")
    count = int(safe_loads(raw_count))
    for i in range(count):
        value = txn.get(str(i).encode())
        if value is None:
            raise FptlabError(f"{path}: record {i} is missing (num_examples says {count}).")
        yield i, value


def read_split(path: Path) -> tuple[list[str], np.ndarray]:
    """Sequences and fold labels (N,) of one split file, in file order."""
    records = _read_json(path) if path.suffix == ".json" else _read_lmdb(path)
    return [s for s, _ in records], np.array([label for _, label in records], dtype=np.int64)


# ---- the task ------------------------------------------------------------------------------------
def _build_split(path: Path, opts: RemoteHomologyOptions, code: int, n: int, option: str) -> tuple[ArraySplit, str, float]:
    """The split's examples within `max_len` (or all, truncated), a note, and the share of the file kept."""
    sequences, labels = read_split(path)
    x, kept = pack(sequences, opts.max_len, opts.long)  # (N_kept, T)
    chosen = subsample(len(kept), n, data_rng(_SEED_KEY, code, n, opts.max_len), option=option)
    share = len(kept) / max(len(sequences), 1)
    note = f"{len(kept)}/{len(sequences)} within {opts.max_len} tokens ({share:.4f})"
    return ArraySplit(x[chosen], labels[kept][chosen]), f"{path.stem}: {len(chosen)} used, {note}", share


@register_task
class RemoteHomology(Task):
    name = "remote_homology"
    Options = RemoteHomologyOptions

    def spec(self, opts: RemoteHomologyOptions) -> TaskSpec:
        return TaskSpec("tokens", VOCAB_SIZE, opts.max_len, n_classes=N_FOLDS, **readout_spec(opts.readout))

    def resolve(self, opts: RemoteHomologyOptions, data_dir: Path) -> RemoteHomologyOptions:
        """Resolve source "auto" to "tape" when the files are here or can be downloaded (online, no path)."""
        if opts.source != "auto":
            return opts
        if find_root(opts, data_dir) is None and (opts.path is not None or assets.offline_disabled()):
            raise _not_found(opts, data_dir, " Downloads are disabled (offline mode)." if opts.path is None else "")
        return replace(opts, source="tape")

    def missing(self, opts: RemoteHomologyOptions, data_dir: Path) -> Missing | None:
        """The files are here, or (no explicit path, online) TAPE's archive can be downloaded."""
        if find_root(opts, data_dir) is not None or (opts.path is None and not assets.offline_disabled()):
            return None
        looked = ", ".join(str(r) for r in _candidate_roots(opts, data_dir))
        why = "" if opts.path is not None else ", downloads disabled (offline)"
        return Missing(f"TAPE remote-homology data not found in {looked}{why}", _how_to_get(opts, data_dir))

    def load(self, opts: RemoteHomologyOptions, data_dir: Path) -> TaskData:
        root = find_root(opts, data_dir)
        if root is None:
            if opts.path is not None:  # an explicit folder is the user's: never download into it
                raise _not_found(opts, data_dir)
            if assets.offline_disabled():
                raise _not_found(opts, data_dir, " Downloads are disabled (offline mode).")
            root = fetch(opts, data_dir)
            if find_root(opts, data_dir) is None:
                raise _not_found(opts, data_dir, " The downloaded archive lacks these files.")
        train, train_note, _ = _build_split(split_file(root, "train"), opts, 0, opts.n_train, "remote_homology.n_train")
        code = 1 + EVAL_SPLITS.index(opts.eval_split)
        test, test_note, kept = _build_split(
            split_file(root, opts.eval_split), opts, code, opts.n_eval, "remote_homology.n_eval"
        )
        return TaskData(
            spec=self.spec(opts),
            train=train,
            test=test,
            description=(
                f"TAPE remote homology, {N_FOLDS} folds, from {root} ({opts.long} over {opts.max_len} "
                f"tokens): {train_note}; {test_note}. The paper scaled accuracy by {PAPER_KEPT_FRACTION}."
            ),
            test_kept=kept,
        )

    def validation(self, opts: RemoteHomologyOptions, data_dir: Path) -> ArraySplit | None:
        """TAPE's `valid` split when the run evaluates on a test holdout; with the reference's
        eval_split = "valid" that split is the evaluation, and validation is carved from train."""
        root = find_root(opts, data_dir)
        if opts.eval_split == "valid" or root is None:
            return None
        val, _, _ = _build_split(split_file(root, "valid"), opts, 1, 0, "remote_homology.n_eval")
        return val
