"""Registry and run-configuration contracts: did-you-mean errors, typed frozen config, key paths in
errors, --set parsing, canonical JSON and a hash that is stable across processes."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from fptlab.config import apply_overrides, config_from_dict, config_from_toml, parse_override
from fptlab.errors import ConfigError, FptlabError, UnknownNameError
from fptlab.registry import Registry


def test_registry_unknown_name_suggests_and_lists():
    reg: Registry[int] = Registry("task")
    reg.register("listops", 1)
    reg.register("mnist", 2)
    with pytest.raises(UnknownNameError, match=r"Unknown task 'lstops'\. Did you mean 'listops'\? Available: listops, mnist\."):
        reg.get("lstops")
    with pytest.raises(FptlabError, match="Duplicate task 'mnist'"):
        reg.register("mnist", 3)
    assert reg.names() == ["listops", "mnist"] and "mnist" in reg and len(reg) == 2


def test_defaults_are_the_papers():
    cfg = config_from_dict({"task": "bit_xor"})
    assert cfg.train == ("input", "output", "positions", "layernorm")
    assert (cfg.lr, cfg.grad_clip, cfg.optimizer, cfg.init) == (1e-3, 1.0, "adam", "pretrained")
    assert cfg.task_options.n_bits == 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 0.1  # type: ignore[misc]


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"task": "bit_xor", "lrr": 1}, r"unknown key 'lrr'\. Did you mean 'lr'\?"),
        ({"task": "bit_xor", "lr": "fast"}, r"'lr' must be a number, got 'fast'"),
        ({"task": "bit_xor", "steps": 1.5}, r"'steps' must be an integer"),
        ({"task": "bit_xor", "init": "pretrianed"}, r"Unknown init 'pretrianed'\. Did you mean 'pretrained'\? Available: pretrained, random, stats"),
        ({"task": "bit_xor", "bit_xor": {"nbits": 3}}, r"unknown key 'bit_xor\.nbits'\. Did you mean 'bit_xor\.n_bits'\?"),
        ({"task": "bit_xor", "bit_xor": {"n_bits": "x"}}, r"'bit_xor\.n_bits' must be an integer"),
        ({"task": "bit_xor", "bit_xor": {"n_bits": 0}}, r"invalid bit_xor options: n_bits must be in"),
        ({"task": "bit_xor", "listops": {"max_len": 3}}, r"unknown key 'listops'"),
        ({"task": "bit_xor", "train": []}, r"'train' names no parameter group"),
        ({"task": "bit_xor", "steps": 0}, r"'steps' must be a positive integer"),
        ({"backbone": "gpt2"}, r"missing required key 'task'"),
    ],
)
def test_bad_config_names_the_key(raw, message):
    with pytest.raises(FptlabError, match=message):
        config_from_dict(raw)


def test_unknown_task_is_a_did_you_mean():
    with pytest.raises(UnknownNameError, match="Did you mean 'listops'"):
        config_from_dict({"task": "lstops"})


def test_overrides_parse_toml_values_and_sections():
    assert parse_override("lr=3e-4") == (["lr"], 3e-4)
    assert parse_override("bit_xor.n_bits=8") == (["bit_xor", "n_bits"], 8)
    assert parse_override("backbone=gpt2") == (["backbone"], "gpt2")
    assert parse_override("train=[\"input\", \"output\"]") == (["train"], ["input", "output"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override("lr")
    with pytest.raises(ConfigError, match="is a value, not a section"):
        apply_overrides({"task": "bit_xor"}, ["task.n=1"])
    cfg = config_from_dict(apply_overrides({"task": "bit_xor"}, ["train=input,output", "micro_batch_size=none", "bit_xor.n_bits=8"]))
    assert cfg.train == ("input", "output") and cfg.micro_batch_size is None and cfg.task_options.n_bits == 8


def test_toml_loading_and_override_precedence(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('task = "bit_xor"\nlr = 0.01\n[bit_xor]\nn_bits = 7\n')
    cfg = config_from_toml(path, ["lr=0.02"])
    assert cfg.lr == 0.02 and cfg.task_options.n_bits == 7
    path.write_text("task = [unclosed")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config_from_toml(path)
    with pytest.raises(ConfigError, match="config file not found"):
        config_from_toml(tmp_path / "missing.toml")


def test_canonical_form_and_hash():
    a = config_from_dict({"task": "bit_xor", "lr": 1e-3, "seed": 0})
    b = config_from_dict({"seed": 0, "lr": 0.001, "task": "bit_xor", "bit_xor": {"n_bits": 5}, "model": {"depth": 0}})
    c = config_from_dict({"task": "bit_xor", "lr": 1})  # an int where a float is expected is coerced
    assert a.canonical_json() == b.canonical_json() and a.hash == b.hash
    assert c.lr == 1.0 and c.hash == config_from_dict({"task": "bit_xor", "lr": 1.0}).hash
    assert config_from_dict({"task": "bit_xor", "seed": 1}).hash != a.hash
    # Execution-only keys don't change what is computed, so they don't change the hash.
    assert config_from_dict({"task": "bit_xor", "device": "cpu", "checkpoint_every": 5}).hash == a.hash
    # The hash covers the values that differ from their defaults; the record holds everything.
    assert json.loads(a.canonical_json()) == {"task": "bit_xor"}
    d = config_from_dict({"task": "bit_xor", "lr": 3e-4, "bit_xor": {"n_bits": 8}, "model": {"depth": 3}})
    assert json.loads(d.canonical_json()) == {"task": "bit_xor", "lr": 3e-4, "bit_xor": {"n_bits": 8}, "model": {"depth": 3}}
    record = json.loads(a.record_json())
    assert record["bit_xor"] == {"n_bits": 5, "test_size": 1024} and record["lr"] == 1e-3 and "device" not in record
    assert record["model"] == {"depth": 0}


def _grown(cls, name, typ, default):
    """`cls` with one more field that has a default (a new option that keeps the old behaviour)."""
    return dataclasses.make_dataclass(cls.__name__, [(name, typ, dataclasses.field(default=default))], bases=(cls,), frozen=True)


def test_a_new_defaulted_option_leaves_hashes_unchanged():
    from fptlab.config import RunConfig

    cfg = config_from_dict({"task": "bit_xor", "backbone": "gpt2-tiny", "init": "random", "lr": 3e-4, "model": {"depth": 1}})
    kwargs = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    grown_run = _grown(RunConfig, "label_smoothing", float, 0.0)
    grown_task = _grown(type(cfg.task_options), "noise", float, 0.0)
    grown_model = _grown(type(cfg.model_options), "rotary", bool, False)
    for variant in (
        grown_run(**kwargs),
        cfg.replace(task_options=grown_task(**dataclasses.asdict(cfg.task_options))),
        cfg.replace(model_options=grown_model(**dataclasses.asdict(cfg.model_options))),
    ):
        assert variant.hash == cfg.hash
    # ... and a changed value does change it.
    assert grown_run(**kwargs, label_smoothing=0.1).hash != cfg.hash
    assert cfg.replace(task_options=grown_task(**dataclasses.asdict(cfg.task_options), noise=0.5)).hash != cfg.hash
    assert cfg.replace(model_options=grown_model(**dataclasses.asdict(cfg.model_options), rotary=True)).hash != cfg.hash


def test_family_defaults_fill_only_unset_keys():
    lstm = config_from_dict({"task": "bit_xor", "backbone": "lstm-tiny", "init": "random"})
    assert lstm.lr == 3e-4 and lstm.train == ("input", "output", "layernorm")  # the paper's LSTM (Appendix C, D.3)
    explicit = config_from_dict({"task": "bit_xor", "backbone": "lstm-tiny", "init": "random", "lr": 1e-3})
    assert explicit.lr == 1e-3
    with_positions = config_from_dict({"task": "bit_xor", "backbone": "lstm-tiny", "init": "random", "model": {"positions": True}})
    assert with_positions.train == ("input", "output", "positions", "layernorm")


@pytest.mark.parametrize(
    "train, canonical",
    [
        (["output", "input", "attention@-1"], ("input", "output", "attention@-1")),
        (["feedforward@1,0", "feedforward@0"], ("feedforward@0,1",)),
        ("input,feedforward@0,1", ("input", "feedforward@0,1")),  # the command line's commas
        (["attention", "attention@-1"], ("attention",)),
        (["input", "all"], ("all",)),
    ],
)
def test_train_entries_are_canonical(train, canonical):
    assert config_from_dict({"task": "bit_xor", "train": train}).train == canonical


@pytest.mark.parametrize(
    "train, message",
    [(["attn@0"], "Unknown parameter group 'attn'"), (["input@0"], "takes no @LAYERS"), (["attention@x"], "GROUP@LAYERS")],
)
def test_bad_train_entries(train, message):
    with pytest.raises(FptlabError, match=message):
        config_from_dict({"task": "bit_xor", "train": train})


GOLDEN = {"task": "bit_xor", "backbone": "minilm", "steps": 20, "eval_every": 10, "seed": 1}


def test_hash_is_stable_across_processes():
    code = (
        "from fptlab.config import config_from_dict; import json,sys;"
        "print(config_from_dict(json.loads(sys.argv[1])).hash)"
    )
    other = subprocess.run([sys.executable, "-c", code, json.dumps(GOLDEN)], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == config_from_dict(GOLDEN).hash
