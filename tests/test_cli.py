"""End-to-end CLI contracts: listings, dry-run counts, a real run with --json, and clean errors
(one message, exit code 1, no traceback) for every kind of bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from fptlab.cli import app
from fptlab.sinks import read_jsonl
from fptlab.tasks import TASKS

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_help_does_not_import_heavy_modules():
    code = "import sys; from fptlab.cli import app; print(sorted(m for m in ('torch','transformers','ray','numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    helped = subprocess.run([sys.executable, "-m", "fptlab.cli", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "run" in helped.stdout and "ls" in helped.stdout


@pytest.mark.parametrize("what", ["tasks", "backbones", "groups", "inits"])
def test_ls(what):
    result = invoke("ls", what)
    assert result.exit_code == 0
    names = result.stdout.split()
    if what == "tasks":
        assert names == TASKS.names()
    if what == "groups":
        assert names[:4] == ["input", "output", "positions", "layernorm"]
    if what == "backbones":
        assert {"gpt2", "gpt2-xl", "minilm", "bert-tiny"} <= set(names)
    if what == "inits":
        assert names == ["pretrained", "random", "stats"]


def test_dry_run_json_cifar10_gpt2_random():
    result = invoke("run", "--task", "cifar10", "--backbone", "gpt2", "--init", "random", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["status"] == "dry_run" and len(payload["config_hash"]) == 16
    assert payload["params_by_group"]["positions"] == 64 * 768
    assert payload["trainable_params"] == (48 * 768 + 768) + (768 * 10 + 10) + (4 * 768 * 12 + 2 * 768) + 64 * 768


def test_run_json_end_to_end(tmp_path, data_dir):
    result = invoke(
        "run", "--task", "bit_xor", "--backbone", "bert-tiny", "--init", "random", "--steps", "4", "--eval-every", "2",
        "--batch-size", "4", "--set", "bit_xor.n_bits=3", "--set", "bit_xor.test_size=8", "--json", "--no-progress",
        "--out", str(tmp_path), "--data-dir", str(data_dir),
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("config_hash", "status", "steps", "test_accuracy", "train_accuracy", "trainable_params", "total_params"):
        assert key in payload
    assert payload["status"] == "completed" and payload["steps"] == 4
    records = read_jsonl(tmp_path / payload["config_hash"] / "metrics.jsonl")
    assert records[0]["trainable_params"] == payload["trainable_params"]


def test_config_file_and_flags(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('task = "bit_xor"\nbackbone = "gpt2-tiny"\ninit = "random"\nlr = 0.01\n[bit_xor]\nn_bits = 7\n')
    result = invoke("run", "--config", str(path), "--lr", "0.02", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    cfg = json.loads(result.stdout.strip().splitlines()[-1])["config"]
    assert cfg["lr"] == 0.02 and cfg["bit_xor"]["n_bits"] == 7


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--task", "lstops"], "Unknown task 'lstops'. Did you mean 'listops'?"),
        (["run", "--task", "bit_xor", "--backbone", "gtp2"], "Did you mean 'gpt2'?"),
        (["run", "--task", "bit_xor", "--set", "lr=fast"], "'lr' must be a number"),
        (["run", "--task", "bit_xor", "--set", "lr"], "expected KEY=VALUE"),
        (["run", "--task", "bit_xor", "--set", "bit_xor.nbits=3"], "Did you mean 'bit_xor.n_bits'?"),
        (["run", "--task", "bit_xor", "--train", "input,attn"], "Unknown parameter group 'attn'. Did you mean 'attention'?"),
        (["run", "--task", "bit_xor", "--init", "pretrianed"], "Unknown init 'pretrianed'. Did you mean 'pretrained'?"),
        (["run", "--task", "bit_xor", "--train", "input,attention@9"], "block 9 does not exist; this run keeps 6 blocks"),
        (["run", "--task", "bit_xor", "--set", "model.layers=12"], "'model.layers' is an option of the lstm backbones"),
        (["run", "--task", "bit_xor", "--set", "model.depth=7"], "model.depth = 7, but backbone 'minilm' has 6 blocks"),
        (["run", "--task", "bit_xor", "--init", "random", "--set", "weights=x"], "only read by init = \"pretrained\""),
        (["run", "--task", "cifar10", "--train", "output", "--set", "cache_features=true", "--set", "cifar10.augment=true"],
         "augments its training examples"),
        (["run", "--task", "bit_xor", "--train", "input,output", "--set", "cache_features=true"], "only the read-out may train"),
        (["run", "--task", "listops", "--set", "input_layer=linear"], "gives token ids"),
        (["run", "--task", "bit_xor", "--backbone", "gpt2-tiny"], "no pretrained weights"),
        (["run", "--task", "bit_xor", "--set", "bit_xor.n_bits=400"], "800 tokens but backbone 'minilm' has 512"),
        (["run", "--task", "listops", "--set", "listops.source=lra"], "listops.source = \"generated\""),
        (["run"], "missing required key 'task'"),
        (["ls", "tsks"], "Did you mean 'tasks'?"),
    ],
)
def test_bad_input_exits_1_with_one_clear_message(args, message, tmp_path, monkeypatch):
    monkeypatch.setenv("FPTLAB_DATA", str(tmp_path))  # an empty data folder: official datasets are missing
    result = invoke(*args)
    assert result.exit_code == 1, result.output
    assert message in result.output.replace("\n", " ")
    assert "Traceback" not in result.output


def test_missing_dataset_in_a_real_process(tmp_path):
    env = {**os.environ, "FPTLAB_DATA": str(tmp_path), "FPTLAB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "fptlab.cli", "run", "--task", "cifar10", "--steps", "1"], capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: ") and "Traceback" not in proc.stderr
    assert str(tmp_path) in proc.stderr and "mnist" in proc.stderr  # where it looked, and the offline alternative
