"""docs/paper-cells.md stays true: every `fptlab run ... --dry-run` line in it resolves offline (the
paper's every table and figure is expressible), and the Bit transfer names its source's real hash."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fptlab.cli import app

DOC = Path(__file__).resolve().parents[1] / "docs" / "paper-cells.md"


def commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.S)
    lines = [" ".join(shlex.split(line, comments=True)) for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("fptlab run")]


def dry_run(command: str) -> dict:
    args = shlex.split(command)[1:] + ["--json"]
    assert "--dry-run" in args, command
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"{command}\n{result.output}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_document_covers_every_table_and_figure():
    text = DOC.read_text()
    for n in [*range(1, 23), "3-5", "6"]:
        assert re.search(rf"(Tables? [\d, -]*\b{n}\b|Figures? [\d, -]*\b{n}\b)", text), n
    assert len(commands()) >= 40


@pytest.mark.parametrize("command", commands())
def test_every_cell_resolves_offline(command):
    payload = dry_run(command)
    assert payload["status"] == "dry_run" and payload["trainable_params"] > 0


def test_the_bit_transfer_names_its_sources_hash():
    source = next(c for c in commands() if "save_body=true" in c)
    target = next(c for c in commands() if "weights=trial:" in c)
    assert f"weights=trial:{dry_run(source)['config_hash']}" in target
