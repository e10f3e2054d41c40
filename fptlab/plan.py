"""From a validated config to a runnable plan, without torch: resolve "auto" sources, check that the
choices combine (input kind, sequence length vs positions, groups), say what this machine lacks to run
it (data, packages, pretrained weights: `missing_here`), and count parameters on the meta device for
`--dry-run`."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from fptlab.assets import data_dir as default_data_dir
from fptlab.backbones import BACKBONES
from fptlab.bodies import trial_hash
from fptlab.config import RunConfig
from fptlab.errors import DataNotFoundError, IncompatibleError
from fptlab.groups import ALL, block_index, check_available, parse_all
from fptlab.tasks import TASKS
from fptlab.tasks.base import Missing, TaskSpec


def resolve_config(cfg: RunConfig, data_dir: Path | None = None) -> RunConfig:
    """Resolve the task's "auto" choices to what is available here; the result is what gets recorded."""
    task = TASKS.get(cfg.task)
    options = task.resolve(cfg.task_options, Path(data_dir) if data_dir else default_data_dir())
    resolved = cfg.replace(task_options=options)
    check_compatible(resolved, task_spec(resolved))
    return resolved


def missing_here(cfg: RunConfig, data_dir: Path | None = None) -> tuple[Missing, ...]:
    """What this machine lacks to run `cfg` (resolved, or with "auto" sources), decided from files and
    installed packages alone, reading no data and no weights: the task's data (`Task.missing`), a package
    the backbone needs, the pretrained weights the init reads. Empty when the run can start here.
    `weights = "trial:<hash>"` is never missing: a sweep's source trial makes that body."""
    from fptlab.inits import INITS

    data_dir = Path(data_dir) if data_dir else default_data_dir()
    backbone = BACKBONES.get(cfg.backbone)
    found = [TASKS.get(cfg.task).missing(cfg.task_options, data_dir), backbone.missing_requirements()]
    if INITS.get(cfg.init).reads_weights and trial_hash(cfg.weights) is None:
        found.append(backbone.missing_weights(cfg.weights))
    return tuple(m for m in found if m is not None)


def resolve_here(cfg: RunConfig, data_dir: Path | None = None) -> tuple[RunConfig, tuple[Missing, ...]]:
    """`resolve_config` and `missing_here` together, for planning many runs: a config whose "auto" source
    finds no data here is kept unresolved, with what it lacks, instead of raising. Config mistakes (an
    incompatible choice, an unknown group) still raise."""
    try:
        resolved = resolve_config(cfg, data_dir)
    except DataNotFoundError as e:
        try:
            check_compatible(cfg, task_spec(cfg))
        except DataNotFoundError:
            pass  # the spec itself needs the data (e.g. mnist "auto" sizes its images by source)
        return cfg, missing_here(cfg, data_dir) or (Missing(str(e)),)
    return resolved, missing_here(resolved, data_dir)


def task_spec(cfg: RunConfig) -> TaskSpec:
    return TASKS.get(cfg.task).spec(cfg.task_options)


def check_compatible(cfg: RunConfig, spec: TaskSpec) -> None:
    """Choices that are valid alone but not together with this task and backbone."""
    backbone = BACKBONES.get(cfg.backbone)
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
    _check_weights(cfg, backbone)
    _check_groups(cfg, backbone)
    if cfg.cache_features:
        _check_cacheable(cfg, spec)
    if cfg.attention_maps and not backbone.attention_maps:
        raise IncompatibleError(
            f"attention_maps = {cfg.attention_maps}: backbone '{cfg.backbone}' ({backbone.family}) cannot report attention "
            "probabilities. Set attention_maps = 0, or use a gpt2, bert, t5 or vit backbone."
        )


def _check_weights(cfg: RunConfig, backbone: Any) -> None:
    from fptlab.inits import INITS

    if INITS.get(cfg.init).reads_weights and cfg.weights == "auto" and not backbone.has_pretrained:
        raise IncompatibleError(
            f"Backbone '{cfg.backbone}' has no pretrained weights of its own, and init = \"{cfg.init}\" reads them. "
            "Use init = \"random\", a full-size backbone, or weights = \"trial:<config hash>\" (a saved body)."
        )


def _check_groups(cfg: RunConfig, backbone: Any) -> None:
    """`train` against the groups this backbone has (without building it): a group it lacks, or a
    block beyond the depth the run keeps, is an error now rather than a run that trains nothing."""
    options = cfg.model_options if cfg.model_options is not None else backbone.Options()
    declared = backbone.declared_groups(options)
    blocks = backbone.depth_of(options)
    for ref in parse_all(cfg.train):
        if ref.group == ALL:
            continue
        check_available(ref, cfg.backbone, declared)
        for index in ref.layers or ():
            block_index(ref, index, blocks, cfg.backbone)


def _check_cacheable(cfg: RunConfig, spec: TaskSpec) -> None:
    if spec.augments:
        raise IncompatibleError(
            f"cache_features = true computes each example's features once, but task '{cfg.task}' augments its training "
            "examples (a new random view every time). Turn its augmentation off (e.g. cifar10.augment = false)."
        )
    if spec.streamed:
        raise IncompatibleError(
            f"cache_features = true needs a finite training set to compute features for, but task '{cfg.task}' generates "
            "fresh examples at every step. Use a task with a fixed training split (listops, mnist, cifar10_lra, ...)."
        )


@dataclass(frozen=True)
class Summary:
    config: RunConfig
    spec: TaskSpec
    trainable_params: int
    total_params: int
    params_by_group: dict[str, int]
    trainable_by_group: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "config_hash": self.config.hash,
            "config": self.config.to_dict(),
            "task_spec": {f.name: getattr(self.spec, f.name) for f in fields(self.spec)},
            "trainable_params": self.trainable_params,
            "total_params": self.total_params,
            "params_by_group": self.params_by_group,
            "trainable_by_group": self.trainable_by_group,
        }


def summarize(cfg: RunConfig) -> Summary:
    """Parameter counts of the resolved config, on the meta device (no weights, no data)."""
    from fptlab.model import apply_trainable, build_model, count_parameters

    spec = task_spec(cfg)
    model = build_model(spec, cfg, meta=True)
    groups = apply_trainable(model, BACKBONES.get(cfg.backbone), cfg.train)
    counts = count_parameters(model, groups)
    trainable: dict[str, int] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            trainable[groups[name]] = trainable.get(groups[name], 0) + param.numel()
    return Summary(cfg, spec, counts.trainable, counts.total, counts.by_group, trainable)
