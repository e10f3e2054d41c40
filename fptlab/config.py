"""Typed, frozen run configuration: TOML / dict / `--set` loading, identity and content hash.

A run is fully described by a `RunConfig`. Keys are flat (`lr`, `steps`, ...) except two sections:
the chosen task's options, in a section named after it (`bit_xor.n_bits = 8`, `listops.tokenizer =
"paper"`; only the chosen task's section may appear), and the backbone family's options in `[model]`
(`model.depth = 2`, `model.layers = 12` for an LSTM). Unknown keys and wrong types are rejected with
the key's path. Keys a config leaves unset take their defaults; a backbone family may set its own
defaults for some keys (an LSTM trains at lr 3e-4, as the paper's Appendix C).

Identity. The hash covers only the values that differ from their defaults (execution keys aside),
so adding an option whose default keeps the old behaviour leaves every stored trial's hash as it was.
A change of what an existing config computes therefore comes as a new option whose default is the
new behaviour, and the store's migration pins the old value on the trials stored before it. The
full resolved config (every default filled) is still what gets recorded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from fptlab.errors import ConfigError
from fptlab.escape import quoted
from fptlab.groups import PAPER_GROUPS, canonical_groups
from fptlab.typed import build_dataclass, coerce, field_types, unknown_key_message

MODEL_SECTION = "model"
SECTIONS = ("task_options", "model_options")  # fields holding a section's dataclass, not a value

# Keys that say *where/how* a run executes, not *what* it computes: left out of the hash so the same
# experiment hashes the same on a laptop and on a GPU node.
EXECUTION_KEYS = frozenset({"device", "checkpoint_every", "eval_batch_size", "capture"})

# Values the results database keeps in 32-bit INTEGER columns (PostgreSQL's INTEGER, as SQLite's
# affinity allows more): the trial's seed, and every logged step (metrics.step, up to `steps`).
# Key -> smallest allowed value; a config that passes the checks is storable on every backend.
INT32_MAX = 2**31 - 1
STORED_INTEGERS = {"seed": 0, "steps": 1}


@dataclass(frozen=True)
class RunConfig:
    task: str
    backbone: str = "minilm"
    init: str = "pretrained"  # a scheme of fptlab.inits: pretrained | random | stats
    weights: str = "auto"  # "auto" = the backbone's canonical weights; a path, hub id, or "trial:<config hash>"
    train: tuple[str, ...] = PAPER_GROUPS  # trainable groups, GROUP@LAYERS entries, or "all" (fptlab.groups)
    input_layer: Literal["auto", "linear", "embedding"] = "auto"  # auto: linear for dense tasks, embedding for tokens
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 16
    micro_batch_size: int | None = None  # None = no gradient accumulation
    steps: int = 1000
    eval_every: int = 100
    eval_batches: int = 0  # 0 = the whole test split; k > 0 = k random test batches (the reference's habit)
    eval_batch_size: int = 128
    target_accuracy: float | None = None  # stop once validation accuracy (test accuracy without a validation split) reaches it
    val_fraction: float | None = None  # carve a validation split (Section 6 of issue 16): None = none, as before
    patience: int | None = None  # stop after this many evaluations without a gain of min_delta in validation accuracy
    min_delta: float = 0.0  # the gain in validation accuracy that counts as improvement (with patience)
    grad_clip: float = 1.0  # max gradient norm; 0 disables clipping
    dropout: float = 0.1  # after the dense input layer
    mask_padding: bool = True  # bidirectional bodies attend to no pad position (false: fptlab 0.3.0, the paper's code)
    seed: int = 0
    precision: Literal["fp32", "bf16"] = "fp32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    capture: Literal["auto", "off"] = "auto"  # on CUDA, replay a packed step as one CUDA graph (fptlab.pack_train)
    checkpoint_every: int = 0  # steps between resumable checkpoints; 0 = none
    cache_features: bool = False  # output-only training on features computed once (Section 3.9)
    save_body: bool = False  # write the trained body for other runs' weights = "trial:<hash>" (Section 3.2 "Bit")
    attention_maps: int = 0  # record the first block's attention on this many test examples (Figures 3-5)
    param_stats: bool = False  # record per-block parameter statistics (Figure 6)
    task_options: Any = field(default=None)  # the task's own frozen Options dataclass
    model_options: Any = field(default=None)  # the backbone family's frozen Options dataclass

    # ---- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Full nested dict: every default filled, task options under the task's name, the family's
        options under "model"."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name not in SECTIONS:
                out[f.name] = _jsonable(getattr(self, f.name))
        out[self.task] = _options_dict(self.task_options)
        out[MODEL_SECTION] = _options_dict(self.model_options)
        return out

    def record_json(self) -> str:
        """What the store records: the full resolved config, execution keys aside."""
        body = {k: v for k, v in self.to_dict().items() if k not in EXECUTION_KEYS}
        return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)

    def identity(self) -> dict[str, Any]:
        """What the hash covers: the task, and every value that differs from its default."""
        out: dict[str, Any] = {"task": self.task}
        for f in fields(self):
            if f.name in SECTIONS or f.name in EXECUTION_KEYS or f.name == "task":
                continue
            value = getattr(self, f.name)
            if not _is_default(f, value):
                out[f.name] = _jsonable(value)
        for name, options in ((self.task, self.task_options), (MODEL_SECTION, self.model_options)):
            changed = _changed_options(options)
            if changed:
                out[name] = changed
        return out

    def canonical_json(self) -> str:
        return json.dumps(self.identity(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)


def _is_default(f: dataclasses.Field, value: Any) -> bool:
    if f.default is not dataclasses.MISSING:
        return value == f.default
    if f.default_factory is not dataclasses.MISSING:
        return value == f.default_factory()
    return False


def _options_dict(options: Any) -> dict[str, Any]:
    if options is None:
        return {}
    return {f.name: _jsonable(getattr(options, f.name)) for f in fields(options)}


def _changed_options(options: Any) -> dict[str, Any]:
    if options is None:
        return {}
    return {f.name: _jsonable(getattr(options, f.name)) for f in fields(options) if not _is_default(f, getattr(options, f.name))}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# ---- building from raw data ---------------------------------------------------------------------
def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict in dotted keys: {"lr": 1e-3, "bit_xor": {"n_bits": 5}} -> {"lr": 1e-3,
    "bit_xor.n_bits": 5}; lists become tuples, so values can be grouped and compared."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = tuple(value) if isinstance(value, list) else value
    return out


def config_from_dict(raw: Mapping[str, Any], *, origin: str = "config") -> RunConfig:
    """Validate a nested mapping (from TOML or overrides) into a RunConfig."""
    from fptlab.backbones import BACKBONES
    from fptlab.tasks import TASKS

    raw = dict(raw)
    if "task" not in raw:
        raise ConfigError(f"{origin}: missing required key 'task'. Set it, e.g. task = \"bit_xor\" (see `fptlab ls tasks`).")
    task_name = coerce(raw.pop("task"), str, "task")
    task = TASKS.get(task_name)
    top = {f.name: f for f in fields(RunConfig) if f.name != "task" and f.name not in SECTIONS}
    kwargs: dict[str, Any] = {"task": task_name}
    sections: dict[str, Mapping[str, Any]] = {task_name: {}, MODEL_SECTION: {}}
    for key, value in raw.items():
        if key in sections:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{origin}: '{key}' must be a table of {key} options, got {quoted(value)}.")
            sections[key] = value
        elif key in top:
            kwargs[key] = coerce(value, field_types(RunConfig)[key], key)
            if key == "train":
                kwargs[key] = canonical_groups(kwargs[key])
        else:
            raise ConfigError(unknown_key_message(origin, key, list(top) + [task_name, MODEL_SECTION]))
    backbone = BACKBONES.get(kwargs.get("backbone", RunConfig.backbone))
    kwargs["model_options"] = model_options(backbone, sections[MODEL_SECTION], origin)
    for key, value in backbone.defaults_for(kwargs["model_options"]).items():
        kwargs.setdefault(key, value)
    if kwargs.get("cache_features"):
        kwargs.setdefault("dropout", 0.0)  # features are computed once, without dropout
    kwargs["task_options"] = build_dataclass(task.Options, sections[task_name], prefix=f"{task_name}.", origin=origin)
    cfg = RunConfig(**kwargs)
    validate(cfg)
    return cfg


def model_options(backbone: Any, raw: Mapping[str, Any], origin: str) -> Any:
    """The backbone family's `[model]` options; an option of another family is named as such."""
    from fptlab.backbones import BACKBONES

    names = {f.name for f in fields(backbone.Options)}
    for key in raw:
        if key not in names:
            owners = sorted({BACKBONES.get(n).family for n in BACKBONES.names()
                             if key in {f.name for f in fields(BACKBONES.get(n).Options)}})
            if owners:
                raise ConfigError(
                    f"{origin}: 'model.{key}' is an option of the {', '.join(owners)} backbones, not of '{backbone.name}' "
                    f"(family {backbone.family}, options: {', '.join('model.' + n for n in sorted(names))})."
                )
    options = build_dataclass(backbone.Options, raw, prefix=f"{MODEL_SECTION}.", origin=origin)
    backbone.check_options(options)
    return options


def validate(cfg: RunConfig) -> None:
    check_values(cfg)
    check_combination(cfg)


def check_values(cfg: RunConfig) -> None:
    """Rules on single values (a sweep spec checks each value where it is written with these)."""
    from fptlab.inits import INITS

    INITS.get(cfg.init)  # an unknown scheme: did-you-mean and the list
    positive = ("batch_size", "steps", "eval_every", "eval_batch_size")
    for key in positive:
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"'{key}' must be a positive integer, got {getattr(cfg, key)}.")
    for key in ("eval_batches", "checkpoint_every", "seed", "attention_maps"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"'{key}' must be >= 0, got {getattr(cfg, key)}.")
    for key, low in STORED_INTEGERS.items():
        value = getattr(cfg, key)
        if not low <= value <= INT32_MAX:
            raise ConfigError(
                f"'{key}' = {value} is out of range: it must be an integer from {low} to {INT32_MAX:,} (the results "
                f"database stores it in a 32-bit INTEGER column, on every backend). Choose a smaller {key}."
            )
    if cfg.micro_batch_size is not None and not 0 < cfg.micro_batch_size:
        raise ConfigError(f"'micro_batch_size' must be a positive integer or none, got {cfg.micro_batch_size}.")
    if not cfg.lr > 0:
        raise ConfigError(f"'lr' must be > 0, got {cfg.lr}.")
    for key in ("weight_decay", "grad_clip"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"'{key}' must be >= 0, got {getattr(cfg, key)} (grad_clip = 0 disables clipping).")
    if not 0 <= cfg.dropout < 1:
        raise ConfigError(f"'dropout' must be in [0, 1), got {cfg.dropout}.")
    if cfg.target_accuracy is not None and not 0 < cfg.target_accuracy <= 1:
        raise ConfigError(f"'target_accuracy' must be in (0, 1], got {cfg.target_accuracy}.")
    if cfg.val_fraction is not None and not 0 < cfg.val_fraction < 1:
        raise ConfigError(f"'val_fraction' must be in (0, 1), the share of the training data held out for validation, got "
                          f"{cfg.val_fraction}. Leave it unset for no validation split.")
    if cfg.patience is not None and cfg.patience < 1:
        raise ConfigError(f"'patience' must be at least 1 evaluation, got {cfg.patience}. Leave it unset to train all steps.")
    if not 0 <= cfg.min_delta < 1:
        raise ConfigError(f"'min_delta' must be in [0, 1), a gain in validation accuracy, got {cfg.min_delta}.")
    if not cfg.train:
        raise ConfigError("'train' names no parameter group; the output layer at least must train. Try train = [\"output\"].")


def check_combination(cfg: RunConfig) -> None:
    """Rules that tie keys together (task-dependent ones live in fptlab.plan.check_compatible)."""
    from fptlab.inits import INITS

    if cfg.weights != "auto" and not INITS.get(cfg.init).reads_weights:
        raise ConfigError(
            f"weights = {quoted(cfg.weights)} is only read by init = \"pretrained\" or \"stats\"; init = {quoted(cfg.init)} "
            "builds its own. Drop weights, or set init = \"pretrained\"."
        )
    if cfg.patience is not None and cfg.val_fraction is None:
        raise ConfigError(f"patience = {cfg.patience} stops on a plateau of validation accuracy, so it needs a validation "
                          "split: set val_fraction (e.g. 0.1). Early stopping never reads the test split.")
    if cfg.min_delta and cfg.patience is None:
        raise ConfigError(f"min_delta = {cfg.min_delta} only matters with patience (early stopping); set patience or drop min_delta.")
    if cfg.micro_batch_size is not None and cfg.micro_batch_size > cfg.batch_size:
        raise ConfigError(
            f"micro_batch_size ({cfg.micro_batch_size}) is larger than batch_size ({cfg.batch_size}); "
            "set it to at most batch_size, or to none for no accumulation."
        )
    if cfg.cache_features:
        if cfg.train != ("output",):
            raise ConfigError(
                f"cache_features = true computes the body's features once, so only the read-out may train: set "
                f"train = [\"output\"] (got {list(cfg.train)})."
            )
        if cfg.dropout:
            raise ConfigError(f"cache_features = true computes features once, without dropout: set dropout = 0 (got {cfg.dropout}).")


# ---- TOML and --set -----------------------------------------------------------------------------
def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=value` -> (["a", "b"], value). The value is read as TOML, else taken as a bare string."""
    if "=" not in text:
        raise ConfigError(f"Bad --set '{text}': expected KEY=VALUE, e.g. --set lr=3e-4 or --set bit_xor.n_bits=8.")
    key, _, raw_value = text.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"Bad --set '{text}': the key is empty. Expected KEY=VALUE, e.g. --set lr=3e-4.")
    try:
        value = tomllib.loads(f"v = {raw_value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw_value.strip()
    return key.split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    out = json.loads(json.dumps(raw))  # deep copy of plain data
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"Bad --set '{text}': '{part}' is a value, not a section.")
            node = child
        node[path[-1]] = value
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    from fptlab.files import read_toml

    return read_toml(path, "config file")


def config_from_toml(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    return config_from_dict(apply_overrides(load_toml(path), list(overrides)), origin=str(path))
