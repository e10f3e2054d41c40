"""Shared machinery of the image tasks (paper Section 2.1, "MNIST", "CIFAR-10", "CIFAR-10 LRA").

Parsers for the official formats (IDX for MNIST / Fashion-MNIST, python pickle batches for CIFAR-10),
deterministic stratified splitting / subsampling, and `ImageEncoder`, which turns a batch of raw
uint8 images into the (B, T, d) patch tokens the model reads: pad, augment (train only), scale to
[0, 1], normalise, cut into p×p patches. Raw images stay uint8 in memory; all work is per batch.
"""

from __future__ import annotations

import gzip
import pickle
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from fptlab.errors import DataNotFoundError

# ---- IDX (MNIST, Fashion-MNIST) -------------------------------------------------------------------
# Magic = two zero bytes, a type code, the number of dimensions; then one big-endian uint32 per
# dimension; then the values, big-endian, row-major.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
REDOWNLOAD = "Delete the file and download it again (or restore the original)."


def read_bytes(path: Path) -> bytes:
    """File contents, gunzipped when the file is gzip (detected by its magic, not its name)."""
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as e:
        raise DataNotFoundError(f"{path} is a damaged gzip file ({e}). {REDOWNLOAD}") from None


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (raw or .gz) into a native-endian array of the shape it declares."""
    raw = read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise DataNotFoundError(
            f"{path} is not an IDX file: it starts with bytes {raw[:4].hex()}, expected 0000 then a type code "
            f"and the number of dimensions (e.g. 00000803 for images). {REDOWNLOAD}"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(IDX_TYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataNotFoundError(
            f"{path} declares shape {dims} ({expected} bytes of data) but holds {len(raw) - header}: "
            f"the file is truncated or damaged. {REDOWNLOAD}"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def find_file(directory: Path, stem: str) -> Path | None:
    """`directory/stem` or `directory/stem.gz`, whichever exists (raw preferred)."""
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def idx_present(directory: Path) -> bool:
    return all(find_file(directory, stem) for pair in IDX_FILES.values() for stem in pair)


def read_idx_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, H, W) and labels int64 (N,) of the "train" or "test" split in `directory`."""
    paths = [find_file(directory, stem) for stem in IDX_FILES[split]]
    missing = [stem for stem, p in zip(IDX_FILES[split], paths) if p is None]
    if missing:
        raise DataNotFoundError(f"IDX files {missing} (raw or .gz) are missing from {directory}.")
    x, y = read_idx(paths[0]), read_idx(paths[1])
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or x.dtype != np.uint8:
        raise DataNotFoundError(
            f"{paths[0].name} / {paths[1].name} in {directory} hold {x.dtype} images {x.shape} and labels {y.shape}; "
            f"expected uint8 images (N, H, W) and N labels. {REDOWNLOAD}"
        )
    return x, y.astype(np.int64)


# ---- CIFAR-10 python batches ------------------------------------------------------------------------
# The only globals a CIFAR batch refers to: numpy array reconstruction (old and new module path)
# and, for protocol-2 pickles written by Python 3, the bytes codec.
PICKLE_GLOBALS = frozenset({
    ("_codecs", "encode"), ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
})


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that only builds numpy arrays: a CIFAR batch needs nothing else, so a tampered
    file cannot run code (plain pickle.load would import and call anything the file names)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a CIFAR-10 batch")
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One official batch -> images uint8 (N, 32, 32, 3) (HWC) and labels int64 (N,).

    The file is a (Python 2) pickled dict: b"data" (N, 3072) uint8, each row the R, then G, then B
    32×32 plane, row-major; b"labels" a list of N ints in 0..9."""
    try:
        with open(path, "rb") as f:
            batch = _BatchUnpickler(f, encoding="bytes").load()
        data, labels = np.asarray(batch[b"data"], np.uint8), np.asarray(batch[b"labels"], np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as e:
        raise DataNotFoundError(f"{path} is not a CIFAR-10 python batch ({e!r}). {REDOWNLOAD}") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise DataNotFoundError(
            f"{path}: data {data.shape}, labels {labels.shape}; expected (N, 3072) and (N,). {REDOWNLOAD}"
        )
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (N, C, H, W) planes -> (N, H, W, C)
    return np.ascontiguousarray(x), labels


def safe_extract(archive: Path, dest: Path, top: str) -> None:
    """Extract the regular files under `top/` of a .tar.gz into `dest`, refusing absolute paths,
    `..`, links and devices (a hostile archive cannot write outside `dest`)."""

    def safe(m: tarfile.TarInfo) -> bool:
        parts = PurePosixPath(m.name).parts
        inside = bool(parts) and parts[0] == top and ".." not in parts and not m.name.startswith("/")
        return inside and (m.isfile() or m.isdir())

    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers() if safe(m)]
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(dest, members=members, **extra)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataNotFoundError(f"{archive} could not be extracted ({e}). {REDOWNLOAD}") from None


# ---- splits and subsets -----------------------------------------------------------------------------
def stratified_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A seeded permutation of range(len(y)) in which every prefix is as class-balanced as possible:
    the k-th example of each class (in shuffled order) comes before the (k+1)-th of any class."""
    perm = rng.permutation(len(y))
    ys = y[perm]
    rank = np.zeros(len(y), np.int64)
    for c in np.unique(ys):
        member = ys == c
        rank[member] = np.arange(member.sum())
    return perm[np.argsort(rank, kind="stable")]  # by rank; within a rank, in shuffled order


def stratified_split(y: np.ndarray, n_test: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) index arrays; test takes n_test examples, balanced over classes."""
    order = stratified_order(y, rng)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def subsample(x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A class-balanced subset of n examples in original order; n = 0 or n >= len keeps everything."""
    if n == 0 or n >= len(y):
        return x, y
    keep = np.sort(stratified_order(y, rng)[:n])
    return x[keep], y[keep]


def check_counts(n_train: int, n_test: int) -> None:
    for key, value in (("n_train", n_train), ("n_test", n_test)):
        if value < 0:
            raise ValueError(f"{key} must be >= 0 (0 = the whole split), got {value}")


# ---- per-batch encoding ----------------------------------------------------------------------------
def patchify(x, patch: int):
    """(B, C, H, W) tensor -> (B, (H/p)(W/p), p·p·C) tokens: patches in row-major order, each
    flattened as (row, column, channel), the reference's `b c (h p1) (w p2) -> b (h w) (p1 p2 c)`."""
    b, c, h, w = x.shape
    assert h % patch == 0 and w % patch == 0, "image size must be a multiple of the patch size"
    x = x.reshape(b, c, h // patch, patch, w // patch, patch)  # (B, C, h, p1, w, p2)
    x = x.permute(0, 2, 4, 3, 5, 1)  # (B, h, w, p1, p2, C)
    return x.reshape(b, (h // patch) * (w // patch), patch * patch * c)


def pad_to(x: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad (B, H, W, C) images to (B, size, size, C), centred (extra pixel bottom/right)."""
    dh, dw = size - x.shape[1], size - x.shape[2]
    if dh == 0 and dw == 0:
        return x
    return np.pad(x, ((0, 0), (dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2), (0, 0)))


def random_crop(x: np.ndarray, pad: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-pad (B, H, W, C) by `pad` on each side, then crop a random H×W window per image."""
    b, h, w = x.shape[:3]
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    top = rng.integers(0, 2 * pad + 1, size=b)
    left = rng.integers(0, 2 * pad + 1, size=b)
    rows = (top[:, None] + np.arange(h))[:, :, None]  # (B, H, 1)
    cols = (left[:, None] + np.arange(w))[:, None, :]  # (B, 1, W)
    return padded[np.arange(b)[:, None, None], rows, cols]  # (B, H, W, C)


def random_hflip(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirror each (B, H, W, C) image left-right with probability 1/2."""
    flip = rng.random(len(x)) < 0.5
    out = x.copy()
    out[flip] = x[flip, :, ::-1]
    return out


def rotate(x, degrees: np.ndarray):
    """Rotate each square (B, C, H, W) image counter-clockwise by degrees[i] about its centre,
    nearest-neighbour, zeros outside (torchvision RandomRotation's defaults on tensors)."""
    import torch
    import torch.nn.functional as F

    assert x.shape[2] == x.shape[3], "rotation in normalised coordinates needs square images"
    angle = torch.from_numpy(np.deg2rad(degrees)).to(x.dtype)  # (B,)
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
    # Output (x, y) samples input (cos x - sin y, sin x + cos y); with y pointing down this turns
    # the picture counter-clockwise for positive angles.
    theta = torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


@dataclass(frozen=True)
class ImageEncoder:
    """Raw uint8 batch (B, H, W) or (B, H, W, C) -> float tokens (B, T, p·p·C).

    Steps: pad to `size` -> [train and augment: random crop (zero pad `crop_pad`), horizontal flip,
    rotation uniform in ±`max_degrees`] -> divide by `max_value` -> (x - mean) / std per channel ->
    p×p patches. Augmentation draws only from `rng`, in that order, so a batch is reproducible."""

    patch: int
    size: int
    max_value: float = 255.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    augment: bool = False
    crop_pad: int = 4
    max_degrees: float = 20.0

    def __call__(self, x: np.ndarray, train: bool, rng: np.random.Generator):
        import torch

        x = x[..., None] if x.ndim == 3 else x  # (B, H, W, C)
        x = pad_to(x, self.size)
        if train and self.augment:
            x = random_hflip(random_crop(x, self.crop_pad, rng), rng)
        t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / self.max_value  # (B, C, H, W)
        if train and self.augment:
            t = rotate(t, rng.uniform(-self.max_degrees, self.max_degrees, size=len(t)))
        if self.mean is not None and self.std is not None:
            t = (t - torch.tensor(self.mean).view(1, -1, 1, 1)) / torch.tensor(self.std).view(1, -1, 1, 1)
        return patchify(t, self.patch).contiguous()  # (B, T, p·p·C)
