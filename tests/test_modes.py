"""Training modes and what runs leave behind: the protein read-out at <sep>, output-only training on
cached features (Section 3.9), attention maps and parameter statistics (Figures 3-6), and the
Bit-pretrained transfer through a saved body (Section 3.2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from fptlab.backbones import BACKBONES
from fptlab.cached import cached_task, output_head
from fptlab.cli import app
from fptlab.config import config_from_dict
from fptlab.model import apply_trainable, build_model
from fptlab.sinks import JsonlSink, read_jsonl
from fptlab.tasks import TASKS, TaskSpec
from fptlab.train import train
from tests.conftest import TINY_OPTIONS


def tiny(task="bit_xor", **raw):
    return config_from_dict({"task": task, task: TINY_OPTIONS[task], "backbone": "gpt2-tiny", "init": "random", "steps": 4,
                             "eval_every": 2, "batch_size": 4, **raw})


def test_protein_readout_is_the_last_real_token():
    """Under GPT-2's causal mask, reading at <sep> gives exactly the unpadded sequence's output."""
    spec = TaskSpec("tokens", 30, 12, n_classes=3, readout="last_real", pad_id=0)
    torch.manual_seed(0)
    model = build_model(spec, config_from_dict({"task": "peptides", "backbone": "gpt2-tiny", "init": "random"})).eval()
    seq = torch.tensor([[2, 7, 9, 11, 3]])  # <cls> ... <sep>
    padded = torch.nn.functional.pad(seq, (0, 7))  # (1, 12), pads = 0
    with torch.no_grad():
        h = model.backbone(model.input(seq))[:, -1]
        torch.testing.assert_close(model(padded)[:, 0], model.output(h))
    old = build_model(TaskSpec("tokens", 30, 12, n_classes=3), config_from_dict({"task": "peptides", "backbone": "gpt2-tiny", "init": "random"}))
    assert old.task.readout == "last"  # readout = "last": the last (pad) position, as fptlab 0.1.0
    assert TASKS.get("peptides").spec(config_from_dict({"task": "peptides"}).task_options).readout == "last_real"


@pytest.mark.parametrize("backbone", ["gpt2-tiny", "bert-tiny"])
def test_cached_features_give_the_same_logits_as_the_body(backbone, data_dir):
    cfg = tiny("mnist", backbone=backbone, train=["output"], cache_features=True)
    assert cfg.dropout == 0.0  # the default under caching
    data = TASKS.get("mnist").load(cfg.task_options, data_dir)
    torch.manual_seed(0)
    model = build_model(data.spec, cfg)
    apply_trainable(model, BACKBONES.get(backbone), cfg.train)
    features, seconds = cached_task(model, data, torch.device("cpu"), batch_size=7)
    assert features.train.x.shape == (len(data.train), 1, BACKBONES.get(backbone).d_model) and seconds > 0
    model.eval()
    head = output_head(model)
    assert [n for n, _ in head.named_parameters()] == ["output.weight", "output.bias"]
    with torch.no_grad():
        x = data.encode(data.test.x, False, np.random.default_rng(0))
        torch.testing.assert_close(head(torch.from_numpy(features.test.x)), model(x), atol=1e-5, rtol=1e-5)


def test_a_cached_run_trains_only_the_read_out(data_dir, tmp_path):
    cfg = tiny("mnist", train=["output"], cache_features=True, steps=6, eval_every=3)
    result = train(cfg, JsonlSink(tmp_path / "m.jsonl"), data_dir=data_dir)
    assert result.status == "completed" and result.feature_seconds > 0
    assert result.trainable_params == result.params_by_group["output"]
    assert [r["step"] for r in read_jsonl(tmp_path / "m.jsonl") if r["event"] == "log" and "test_accuracy" in r] == [3, 6]


def test_artifacts_of_a_run(data_dir, tmp_path):
    cfg = tiny(attention_maps=3, param_stats=True)
    result = train(cfg, JsonlSink(tmp_path / "m.jsonl"), data_dir=data_dir, run_dir=tmp_path / "run")
    records = {r["kind"]: r for r in read_jsonl(tmp_path / "m.jsonl") if r["event"] == "artifact"}
    assert set(records) == {"attention", "param_stats"} and result.status == "completed"
    maps = load_file(records["attention"]["location"])
    attention = maps["attention"]  # (3, T, T): first block, mean over heads
    assert attention.shape == (3, 6, 6) and maps["inputs"].shape == (3, 6, 1)
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, 6))
    assert torch.all(attention.triu(1) == 0)  # GPT-2 is causal: no weight on later tokens
    stats = json.loads(open(records["param_stats"]["location"]).read())["rows"]
    assert {(r["block"], r["group"], r["kind"]) for r in stats} == {(b, g, k) for b in (0, 1) for g in ("attention", "feedforward")
                                                                        for k in ("weight", "bias")}
    weights = [r["std"] for r in stats if r["kind"] == "weight"]
    assert all(abs(s - 0.02) < 0.005 for s in weights)  # the reference init: N(0, 0.02)
    assert all(r["std"] == 0.0 for r in stats if r["kind"] == "bias")


def test_bit_pretrained_transfer(data_dir, tmp_path):
    """Section 3.2 "Bit": a body fully trained on bit_memory, saved, then frozen for bit_xor."""
    source = tiny("bit_memory", train=["all"], save_body=True, lr=1e-2)
    result = train(source, JsonlSink(tmp_path / "src.jsonl"), data_dir=data_dir, run_dir=tmp_path / "runs" / source.hash)
    (body,) = [r for r in read_jsonl(tmp_path / "src.jsonl") if r["event"] == "artifact"]
    assert result.status == "completed" and body["kind"] == "body"
    target = tiny("bit_xor", init="pretrained", weights=f"trial:{source.hash}")
    assert target.train == ("input", "output", "positions", "layernorm")
    out = CliRunner().invoke(app, ["run", *_flags(target), "--out", str(tmp_path / "runs"), "--json", "--no-progress",
                                   "--data-dir", str(data_dir)])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout.strip().splitlines()[-1])["status"] == "completed"
    # The frozen attention is the source's trained attention, not a fresh init.
    saved = load_file(str(tmp_path / "runs" / source.hash / "body" / "body.safetensors"))
    fresh = build_model(TaskSpec("dense", 1, 6, n_classes=2, n_outputs=3, output_tokens=3), target.replace(init="random", weights="auto"))
    key = "model.h.0.attn.c_attn.weight"
    loaded = build_model(TaskSpec("dense", 1, 6, n_classes=2, n_outputs=3, output_tokens=3), target,
                         weights_path=tmp_path / "runs" / source.hash / "body")
    torch.testing.assert_close(dict(loaded.backbone.named_parameters())[key], saved[key])
    assert not torch.equal(dict(fresh.backbone.named_parameters())[key], saved[key])


def test_a_missing_source_body_is_a_clear_error(tmp_path):
    cfg = tiny("bit_xor", init="pretrained", weights="trial:0123456789abcdef")
    out = CliRunner().invoke(app, ["run", *_flags(cfg), "--out", str(tmp_path / "runs"), "--no-progress"])
    assert out.exit_code == 1 and "no saved body found" in out.output and "save_body = true" in out.output


def _flags(cfg) -> list[str]:
    """The config as `fptlab run` flags, as a user would type them: --set KEY=VALUE per non-default value."""
    flags = ["--task", cfg.task]
    for key, value in cfg.identity().items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, v in items:
            if key != "task":
                flags += ["--set", f"{key}.{sub}={json.dumps(v)}" if sub else f"{key}={json.dumps(v)}"]
    return flags
