"""Helpers for sweep-spec tests: write a spec (and its bases) into a temporary folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

SMOKE = """\
[experiment]
name = "smoke"

[defaults]
task = "bit_xor"
backbone = "minilm"
steps = 20
eval_every = 10

[grid]
init = ["pretrained", "random"]
lr = [1e-3, 3e-4]
seed = [0, 1]
"""


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    def _write(text: str, name: str = "spec.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return _write
