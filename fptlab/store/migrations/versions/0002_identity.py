"""fptlab 0.2.0: config identity that survives growth; torch and transformers versions per trial.

fptlab 0.1.0 hashed the canonical config with every default filled in, so any new option changed
every hash. From 0.2.0 the hash covers only values that differ from their defaults (fptlab.config).
This migration re-keys the stored trials: each trial's stored config (0.1.0's full JSON) becomes
0.2.0's full config and its hash is recomputed. Metrics, results, artifacts and experiment links
follow, as they reference the trial's id. So a 0.1.0 database keeps its finished cells.

Two 0.2.0 fixes change what an existing config computes; their old behaviour is pinned here as an
explicit (non-default) option value, so the old results are never taken for the new computation:
- protein tasks read the output at each sequence's `<sep>`; old trials of `peptides` and
  `remote_homology` get `readout = "last"` (the last padded position, as 0.1.0 did);
- GPT-2's random init is the reference's N(0, 0.02) scheme; old `init = "random"` trials of the
  gpt2 family get `model.random_init = "transformers"` (the installed transformers' own init).
The 0.1.0 tiny test backbone `minilm-tiny` is `bert-tiny` in 0.2.0 (the same architecture).

Everything this needs is frozen below as data (0.2.0's defaults), never imported from fptlab, so
the migration computes the same thing whatever later versions change. The hash function is the one
of fptlab.config (SHA-256 of the sorted compact JSON of the non-default values, first 16 hex digits).
Checkpoints of trials that were unfinished are keyed by their old hash and are not found again: such
trials restart from step 0.

Downgrade restores the 0.1.0 identity (configs and hashes) unless a trial uses something 0.1.0 did
not have (a new backbone, a non-default new option), which it names and refuses.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

EXECUTION_KEYS = ("device", "checkpoint_every", "eval_batch_size")
PAPER_GROUPS = ["input", "output", "positions", "layernorm"]
RUN_DEFAULTS_010: dict[str, Any] = {
    "backbone": "minilm", "init": "pretrained", "weights": "auto", "train": PAPER_GROUPS, "input_layer": "auto",
    "optimizer": "adam", "lr": 0.001, "weight_decay": 0.0, "batch_size": 16, "micro_batch_size": None, "steps": 1000,
    "eval_every": 100, "eval_batches": 0, "eval_batch_size": 128, "target_accuracy": None, "grad_clip": 1.0,
    "dropout": 0.1, "seed": 0, "precision": "fp32", "device": "auto", "checkpoint_every": 0,
}  # fmt: skip
RUN_ADDED_020: dict[str, Any] = {"cache_features": False, "save_body": False, "attention_maps": 0, "param_stats": False}
TASK_DEFAULTS_010: dict[str, dict[str, Any]] = {
    "bit_memory": {"n_strings": 5, "n_bits": 1000, "bits_per_token": 50, "mask_prob": 0.5, "test_size": 512},
    "bit_xor": {"n_bits": 5, "test_size": 1024},
    "cifar10": {"patch": 4, "augment": False, "normalize": True, "n_train": 0, "n_test": 0},
    "cifar10_lra": {"patch": 1, "augment": False, "n_train": 0, "n_test": 0},
    "fashion_mnist": {"source": "auto", "image_size": 28, "patch": 4, "n_train": 0, "n_test": 0},
    "listops": {"source": "auto", "path": None, "tokenizer": "paper", "keep_parens": True, "max_len": 512,
                "eval_split": "val", "n_train": 96000, "n_val": 2000, "n_test": 2000, "min_length": 500,
                "max_length": 2000, "max_depth": 10, "max_args": 10, "data_seed": 0},
    "mnist": {"source": "auto", "image_size": None, "patch": None, "n_train": 0, "n_test": 0},
    "peptides": {"source": "auto", "path": None, "max_len": 176, "long": "skip", "dedupe": True,
                 "test_fraction": 0.2, "n_train": 0, "n_test": 0},
    "remote_homology": {"source": "auto", "path": None, "max_len": 1024, "long": "skip", "eval_split": "valid",
                        "n_train": 0, "n_eval": 0},
}  # fmt: skip
TASK_ADDED_020: dict[str, dict[str, Any]] = {"peptides": {"readout": "sep"}, "remote_homology": {"readout": "sep"}}
TASK_PINS: dict[str, dict[str, Any]] = {"peptides": {"readout": "last"}, "remote_homology": {"readout": "last"}}
GPT2_BACKBONES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "gpt2-tiny")
BERT_BACKBONES = ("minilm", "bert-tiny")
MODEL_DEFAULTS_020: dict[str, dict[str, Any]] = {
    **{name: {"depth": 0, "random_init": "reference"} for name in GPT2_BACKBONES},
    **{name: {"depth": 0} for name in BERT_BACKBONES},
}
RENAMED = {"minilm-tiny": "bert-tiny"}
MODEL = "model"


# ---- the two identities --------------------------------------------------------------------------
def _hash(body: dict[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def identity_020(full: dict[str, Any]) -> dict[str, Any]:
    """0.2.0's hashed form of a 0.2.0 full config: the task and every non-default value."""
    task = full["task"]
    defaults = {**RUN_DEFAULTS_010, **RUN_ADDED_020}
    out: dict[str, Any] = {"task": task}
    for key, value in full.items():
        if key in ("task", task, MODEL) or key in EXECUTION_KEYS:
            continue
        if key not in defaults or value != defaults[key]:
            out[key] = value
    task_defaults = {**TASK_DEFAULTS_010.get(task, {}), **TASK_ADDED_020.get(task, {})}
    sections = ((task, full.get(task, {}), task_defaults), (MODEL, full.get(MODEL, {}), MODEL_DEFAULTS_020.get(full["backbone"], {})))
    for name, values, section_defaults in sections:
        changed = {k: v for k, v in values.items() if k not in section_defaults or v != section_defaults[k]}
        if changed:
            out[name] = changed
    return out


def upgrade_config(old: dict[str, Any]) -> dict[str, Any]:
    """0.1.0's stored config -> 0.2.0's full config, with the pins described in the module docstring."""
    full = dict(old)
    task = full["task"]
    full["backbone"] = RENAMED.get(full["backbone"], full["backbone"])
    for key, value in RUN_ADDED_020.items():
        full.setdefault(key, value)
    full[task] = {**full.get(task, {}), **TASK_ADDED_020.get(task, {}), **TASK_PINS.get(task, {})}
    model = dict(MODEL_DEFAULTS_020.get(full["backbone"], {"depth": 0}))
    if full["backbone"] in GPT2_BACKBONES and full["init"] == "random":
        model["random_init"] = "transformers"
    full[MODEL] = model
    return full


def downgrade_config(full: dict[str, Any], trial: str) -> dict[str, Any]:
    """0.2.0's full config -> 0.1.0's, refusing what 0.1.0 cannot express."""
    task = full["task"]
    backbone = {v: k for k, v in RENAMED.items()}.get(full["backbone"], full["backbone"])
    expected_model = upgrade_config({**full, MODEL: None, task: {}})[MODEL]
    problems = [k for k, v in RUN_ADDED_020.items() if full.get(k, v) != v]
    problems += [f"{task}.{k}" for k, v in full.get(task, {}).items() if k not in TASK_DEFAULTS_010.get(task, {})
                 and v != TASK_PINS.get(task, {}).get(k)]
    problems += [f"model.{k}" for k, v in full.get(MODEL, {}).items() if expected_model.get(k) != v]
    if backbone not in (*GPT2_BACKBONES, "minilm", "minilm-tiny"):
        problems.append(f"backbone = {full['backbone']}")
    if problems:
        raise RuntimeError(
            f"Cannot downgrade trial {trial} to fptlab 0.1.0: it uses {', '.join(problems)}, which 0.1.0 does not have. "
            "Delete such trials first, or keep fptlab 0.2.0."
        )
    old = {k: v for k, v in full.items() if k in RUN_DEFAULTS_010 or k == "task"}
    old["backbone"] = backbone
    old[task] = {k: v for k, v in full.get(task, {}).items() if k in TASK_DEFAULTS_010.get(task, {})}
    return old


# ---- applying them ----------------------------------------------------------------------------------
def _rekey(convert: Any) -> None:
    """Rewrite every trial's config and hash with `convert(config, trial) -> (config, hash)`, in two
    passes so that no intermediate state breaks the unique constraint on config_hash."""
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, config_hash, config FROM trials ORDER BY id")).fetchall()
    updates = []
    for trial_id, old_hash, text in rows:
        try:
            config = json.loads(text)
        except ValueError as e:
            raise RuntimeError(f"Trial {old_hash} (id {trial_id}) has a config that is not JSON ({e}); fix or delete it.") from None
        new_config, new_hash = convert(config, old_hash)
        updates.append({"i": trial_id, "h": new_hash, "c": json.dumps(new_config, sort_keys=True, separators=(",", ":")),
                        "b": new_config["backbone"]})
    if not updates:
        return
    connection.execute(sa.text("UPDATE trials SET config_hash = :t WHERE id = :i"), [{"t": f"~{u['i']}", "i": u["i"]} for u in updates])
    connection.execute(sa.text("UPDATE trials SET config_hash = :h, config = :c, backbone = :b WHERE id = :i"), updates)


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("torch_version", sa.String(64)))
        batch.add_column(sa.Column("transformers_version", sa.String(64)))

    def convert(config: dict[str, Any], trial: str) -> tuple[dict[str, Any], str]:
        full = upgrade_config(config)
        return full, _hash(identity_020(full))

    _rekey(convert)


def downgrade() -> None:
    def convert(config: dict[str, Any], trial: str) -> tuple[dict[str, Any], str]:
        old = downgrade_config(config, trial)
        return old, _hash({k: v for k, v in old.items() if k not in EXECUTION_KEYS})

    _rekey(convert)
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("transformers_version")
        batch.drop_column("torch_version")
