"""fptlab 0.4.0: two fixes that change what an existing config computes, pinned on the trials stored
before them (so their results are never taken for the new computation):

- `vit-base` and `vit-timm` now load the weights the paper's code loaded (ImageNet-21k fine-tuned on
  1k: hub google/vit-base-patch16-224, timm vit_base_patch16_224.orig_in21k_ft_in1k). The 21k-only
  weights they loaded before are the backbones `vit-base-in21k` / `vit-timm-in21k`: old pretrained
  (and stats) trials with weights = "auto" are renamed to those.
- Bidirectional bodies (BERT, MiniLM, T5, Longformer, ViT) no longer attend to the pad positions of
  right-padded token tasks (ListOps, and the protein tasks read at <sep>): old trials of such cells
  get `mask_padding = false`, the unmasked computation they ran.

A pinned trial's hash is recomputed as fptlab.config computes it (SHA-256 of the sorted compact JSON
of the task and every non-default value; the 0.4.0 defaults are frozen below as data), after checking
that the same function gives the trial's stored hash from its stored config (else the migration stops
and names the trial: nothing is changed). Metrics, results, artifacts and links follow by trial id.
A pinned trial that was unfinished restarts from step 0 (its checkpoints are keyed by the old hash).

Downgrade undoes the pins, and refuses trials that use what 0.3.0 cannot express (a validation
split, early stopping, the masked or the new default ViT computation, an LSTM flavour, ViT dropout).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

EXECUTION_KEYS = ("device", "checkpoint_every", "eval_batch_size")
MODEL = "model"
RUN_DEFAULTS_040: dict[str, Any] = {
    "backbone": "minilm", "init": "pretrained", "weights": "auto", "train": ["input", "output", "positions", "layernorm"],
    "input_layer": "auto", "optimizer": "adam", "lr": 0.001, "weight_decay": 0.0, "batch_size": 16, "micro_batch_size": None,
    "steps": 1000, "eval_every": 100, "eval_batches": 0, "target_accuracy": None, "val_fraction": None, "patience": None,
    "min_delta": 0.0, "grad_clip": 1.0, "dropout": 0.1, "mask_padding": True, "seed": 0, "precision": "fp32",
    "cache_features": False, "save_body": False, "attention_maps": 0, "param_stats": False,
}  # fmt: skip
ADDED_040 = ("val_fraction", "patience", "min_delta", "mask_padding")
TASK_DEFAULTS_040: dict[str, dict[str, Any]] = {
    "bit_memory": {"n_strings": 5, "n_bits": 1000, "bits_per_token": 50, "mask_prob": 0.5, "test_size": 512},
    "bit_xor": {"n_bits": 5, "test_size": 1024},
    "cifar10": {"patch": 4, "augment": False, "normalize": True, "n_train": 0, "n_test": 0},
    "cifar10_lra": {"patch": 1, "augment": False, "n_train": 0, "n_test": 0},
    "fashion_mnist": {"source": "auto", "image_size": 28, "patch": 4, "n_train": 0, "n_test": 0},
    "listops": {"source": "auto", "path": None, "tokenizer": "paper", "keep_parens": True, "max_len": 512,
                "eval_split": "val", "n_train": 96000, "n_val": 2000, "n_test": 2000, "min_length": 500,
                "max_length": 2000, "max_depth": 10, "max_args": 10, "data_seed": 0},
    "mnist": {"source": "auto", "image_size": None, "patch": None, "n_train": 0, "n_test": 0},
    "peptides": {"source": "auto", "path": None, "max_len": 176, "long": "skip", "dedupe": True, "test_fraction": 0.2,
                 "n_train": 0, "n_test": 0, "readout": "sep"},
    "remote_homology": {"source": "auto", "path": None, "max_len": 1024, "long": "skip", "eval_split": "valid",
                        "n_train": 0, "n_eval": 0, "readout": "sep"},
}  # fmt: skip
FAMILIES = {
    **dict.fromkeys(("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "gpt2-tiny"), "gpt2"),
    **dict.fromkeys(("bert-base", "bert-tiny", "minilm"), "bert"),
    **dict.fromkeys(("t5-base", "t5-tiny"), "t5"),
    **dict.fromkeys(("longformer-base", "longformer-tiny"), "longformer"),
    **dict.fromkeys(("vit-base", "vit-base-in21k", "vit-tiny", "vit-timm", "vit-timm-in21k"), "vit"),
    **dict.fromkeys(("lstm", "lstm-tiny"), "lstm"),
}
MODEL_DEFAULTS_040: dict[str, dict[str, Any]] = {
    "bert": {"depth": 0}, "gpt2": {"depth": 0, "random_init": "reference"}, "longformer": {"depth": 0}, "t5": {"depth": 0},
    "lstm": {"depth": 0, "layers": 3, "residual": False, "positions": False, "flavour": "fptlab"},
    "vit": {"depth": 0, "hidden_dropout": 0.0, "attention_dropout": 0.0},
}  # fmt: skip
BIDIRECTIONAL = ("bert", "t5", "longformer", "vit")
RENAMED = {"vit-base": "vit-base-in21k", "vit-timm": "vit-timm-in21k"}
READS_WEIGHTS = ("pretrained", "stats")


def _hash(identity: dict[str, Any]) -> str:
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def identity_040(full: dict[str, Any]) -> dict[str, Any]:
    """fptlab.config's hashed form of a full stored config: the task and every non-default value."""
    task = full["task"]
    out: dict[str, Any] = {"task": task}
    for key, value in full.items():
        if key in ("task", task, MODEL) or key in EXECUTION_KEYS:
            continue
        if key not in RUN_DEFAULTS_040 or value != RUN_DEFAULTS_040[key]:
            out[key] = value
    family = FAMILIES.get(str(full.get("backbone")), "")
    for name, values, defaults in ((task, full.get(task) or {}, TASK_DEFAULTS_040.get(task, {})),
                                   (MODEL, full.get(MODEL) or {}, MODEL_DEFAULTS_040.get(family, {}))):
        changed = {k: v for k, v in values.items() if k not in defaults or v != defaults[k]}
        if changed:
            out[name] = changed
    return out


def pads(full: dict[str, Any]) -> bool:
    """Whether the task right-pads token ids that a bidirectional body now masks."""
    task = full["task"]
    if task == "listops":
        return True
    return task in ("peptides", "remote_homology") and (full.get(task) or {}).get("readout", "sep") == "sep"


def pin(full: dict[str, Any]) -> dict[str, Any] | None:
    """The 0.3.0 computation of `full` spelled out for 0.4.0, or None when nothing changed for it."""
    out = dict(full)
    if out.get("backbone") in RENAMED and out.get("init") in READS_WEIGHTS and out.get("weights", "auto") == "auto":
        out["backbone"] = RENAMED[out["backbone"]]
    if FAMILIES.get(str(out.get("backbone"))) in BIDIRECTIONAL and pads(out) and out.get("mask_padding", True):
        out["mask_padding"] = False
    return None if out == full else out


def unpin(full: dict[str, Any], trial: str) -> dict[str, Any] | None:
    """0.4.0's pinned config back to 0.3.0's form; refuses what 0.3.0 cannot express."""
    out = dict(full)
    problems = [k for k in ADDED_040 if k != "mask_padding" and out.get(k, RUN_DEFAULTS_040[k]) != RUN_DEFAULTS_040[k]]
    family = FAMILIES.get(str(out.get("backbone")))
    model = out.get(MODEL) or {}
    problems += [f"model.{k}" for k in ("flavour", "hidden_dropout", "attention_dropout")
                 if k in model and model[k] != MODEL_DEFAULTS_040.get(family, {}).get(k)]
    if family in BIDIRECTIONAL and pads(out) and out.get("mask_padding", True):
        problems.append("mask_padding = true")
    if out.get("backbone") in RENAMED and out.get("init") in READS_WEIGHTS and out.get("weights", "auto") == "auto":
        problems.append(f"backbone {out['backbone']}'s new default weights")
    if problems:
        raise RuntimeError(f"Cannot downgrade trial {trial} to fptlab 0.3.0: it uses {', '.join(problems)}, which 0.3.0 "
                           "does not have. Delete such trials first, or keep fptlab 0.4.0.")
    back = {v: k for k, v in RENAMED.items()}
    if out.get("backbone") in back:
        out["backbone"] = back[out["backbone"]]
    for key in ADDED_040:  # 0.3.0 knows none of these keys (their values are the defaults here)
        out.pop(key, None)
    out[MODEL] = {k: v for k, v in model.items() if k not in ("flavour", "hidden_dropout", "attention_dropout")}
    return None if out == full else out


def _rekey(convert: Any) -> None:
    """Apply `convert(config, hash) -> new config | None` to every trial, checking first that the stored
    hash is what the frozen identity gives; two passes keep config_hash unique throughout."""
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, config_hash, config FROM trials ORDER BY id")).fetchall()
    updates = []
    for trial_id, old_hash, text in rows:
        try:
            config = json.loads(text)
        except ValueError:
            continue  # not fptlab's: the report warns about it; nothing to pin
        if not isinstance(config, dict) or "task" not in config:
            continue
        new = convert(config, old_hash)
        if new is None:
            continue
        if _hash(identity_040(config)) != old_hash:
            raise RuntimeError(
                f"Trial {old_hash} (id {trial_id}) needs its config pinned for fptlab 0.4.0, but its stored config does not "
                "hash to its stored hash with 0.4.0's defaults, so its new hash cannot be computed safely. Nothing was "
                "changed. Delete the trial (it will run again) and upgrade."
            )
        updates.append({"i": trial_id, "h": _hash(identity_040(new)), "c": json.dumps(new, sort_keys=True, separators=(",", ":")),
                        "b": new["backbone"]})
    if not updates:
        return
    moved = {u["i"] for u in updates}
    staying = {h: i for i, h, _ in rows if i not in moved}
    for u in updates:
        if u["h"] in staying:
            raise RuntimeError(f"Trial id {u['i']} re-keyed for fptlab 0.4.0 hashes to {u['h']}, which trial id {staying[u['h']]} "
                               "already has (the same settings, run since). Delete one of them and upgrade again.")
    connection.execute(sa.text("UPDATE trials SET config_hash = :t WHERE id = :i"), [{"t": f"~{u['i']}", "i": u["i"]} for u in updates])
    connection.execute(sa.text("UPDATE trials SET config_hash = :h, config = :c, backbone = :b WHERE id = :i"), updates)


def upgrade() -> None:
    _rekey(lambda config, trial: pin(config))


def downgrade() -> None:
    _rekey(unpin)
