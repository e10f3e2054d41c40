"""From a validated config to a runnable plan, without torch: resolve "auto" sources, check that the
choices combine (input kind, sequence length vs positions, groups), and count parameters on the meta
device for `--dry-run`."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from fptlab.assets import data_dir as default_data_dir
from fptlab.backbones import BACKBONES
from fptlab.config import RunConfig
from fptlab.errors import ConfigError, IncompatibleError
from fptlab.model import check_groups
from fptlab.tasks import TASKS
from fptlab.tasks.base import TaskSpec


def resolve_config(cfg: RunConfig, data_dir: Path | None = None) -> RunConfig:
    """Resolve the task's "auto" choices to what is available here; the result is what gets recorded."""
    task = TASKS.get(cfg.task)
    options = task.resolve(cfg.task_options, Path(data_dir) if data_dir else default_data_dir())
    resolved = cfg.replace(task_options=options)
    check_compatible(resolved, task_spec(resolved))
    return resolved


def task_spec(cfg: RunConfig) -> TaskSpec:
    return TASKS.get(cfg.task).spec(cfg.task_options)


def check_compatible(cfg: RunConfig, spec: TaskSpec) -> None:
    backbone = BACKBONES.get(cfg.backbone)
    check_groups(cfg.train)
    if cfg.input_layer == "linear" and spec.input_kind == "tokens":
        raise IncompatibleError(
            f"Task '{cfg.task}' gives token ids (vocabulary {spec.input_dim}), but input_layer = \"linear\" needs "
            "dense vectors (tasks like bit_xor, mnist, cifar10). Use input_layer = \"embedding\" or \"auto\"."
        )
    if cfg.input_layer == "embedding" and spec.input_kind == "dense":
        raise IncompatibleError(
            f"Task '{cfg.task}' gives dense {spec.input_dim}-dim vectors, but input_layer = \"embedding\" needs token "
            "ids (tasks like listops, peptides). Use input_layer = \"linear\" or \"auto\"."
        )
    backbone.check_length(spec.seq_len, task=cfg.task)
    if cfg.init == "pretrained" and not backbone.has_pretrained:
        raise IncompatibleError(
            f"Backbone '{cfg.backbone}' has no pretrained weights (it is a tiny variant for tests). "
            "Use init = \"random\" or a full-size backbone."
        )
    if cfg.micro_batch_size is not None and cfg.micro_batch_size > cfg.batch_size:
        raise ConfigError(
            f"micro_batch_size ({cfg.micro_batch_size}) is larger than batch_size ({cfg.batch_size}); "
            "set it to at most batch_size, or to none for no accumulation."
        )


@dataclass(frozen=True)
class Summary:
    config: RunConfig
    spec: TaskSpec
    trainable_params: int
    total_params: int
    params_by_group: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "config_hash": self.config.hash,
            "config": self.config.to_dict(),
            "task_spec": {f.name: getattr(self.spec, f.name) for f in fields(self.spec)},
            "trainable_params": self.trainable_params,
            "total_params": self.total_params,
            "params_by_group": self.params_by_group,
        }


def summarize(cfg: RunConfig) -> Summary:
    """Parameter counts of the resolved config, on the meta device (no weights, no data)."""
    from fptlab.model import apply_trainable, build_model, count_parameters

    spec = task_spec(cfg)
    model = build_model(spec, cfg.backbone, cfg.init, cfg.weights, cfg.dropout, meta=True)
    groups = apply_trainable(model, BACKBONES.get(cfg.backbone), cfg.train)
    counts = count_parameters(model, groups)
    return Summary(cfg, spec, counts.trainable, counts.total, counts.by_group)
