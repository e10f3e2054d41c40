"""What a backbone family declares (paper Section 2.2, Appendix B).

A backbone is the transformer (or LSTM) body: it maps input embeddings (B, T, d) to hidden states
(B, T, d) with its own attention mask (causal for GPT-2, bidirectional for BERT-style models). Each
family declares regexes that put every one of its parameters into exactly one group (`positions`,
`layernorm`, `attention`, `feedforward`, `recurrent`, `embeddings`, `other`); the FPT model adds
`input` and `output`. Freezing is then a matter of naming groups, never of `if 'ln' in name` chains.

A family also declares its `[model]` options (a frozen dataclass deriving from `ModelOptions`, so
every family honours `depth`), the dotted path of its list of blocks (for `depth` and per-block
groups such as `attention@-1`) and of its learned position tables, and two constructors: `build`
(random init, the family's reference scheme, from known hyperparameters: works offline) and `load`
(pretrained weights from a hub id or a folder). Both return the full-depth body with full-length
position tables; `fptlab.model` then keeps the first `depth` blocks and the task's positions.
`missing_requirements` and `missing_weights` say, without building or reading anything, what this
machine lacks to build the body (an optional package) or to load its pretrained weights (offline,
hub weights must be in the Hugging Face cache; a folder must exist).
This module imports no torch: registering a family is free, building one is not.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fptlab.assets import offline_disabled
from fptlab.backbones._hf import WEIGHTS_HOW_TO_GET, hub_cache_dir, hub_cached
from fptlab.errors import ConfigError, IncompatibleError
from fptlab.groups import ALL_GROUPS, BACKBONE_GROUPS, FPT_GROUPS, PAPER_GROUPS

if TYPE_CHECKING:
    from fptlab.tasks.base import Missing

__all__ = ["ALL_GROUPS", "BACKBONE_GROUPS", "FPT_GROUPS", "BackboneSpec", "ModelOptions"]


@dataclass(frozen=True)
class ModelOptions:
    """The `[model]` options every family has. Families extend this dataclass with their own."""

    depth: int = 0  # keep the first `depth` blocks (0 = all): Tables 11-12, 3-layer "Full" baselines

    def __post_init__(self) -> None:
        if self.depth < 0:
            raise ValueError(f"depth must be >= 0 (0 keeps every block), got {self.depth}")


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    family: str
    d_model: int
    n_layers: int  # blocks at full depth (a family whose options set it overrides via `layers_of`)
    max_positions: int | None  # None: no learned absolute position table limits the length
    groups: tuple[tuple[str, str], ...]  # (group, regex searched in the body's parameter names)
    blocks: str  # dotted path, inside the body, of the ModuleList of blocks
    build: Callable[..., Any]  # build(spec, options) -> body, randomly initialised
    load: Callable[..., Any] | None = None  # load(spec, options, location) -> body with pretrained weights
    Options: type = ModelOptions
    default_weights: str | None = None  # hub id (or offline resolver key) of the pretrained weights
    causal: bool = False
    attention_maps: bool = True  # whether the body can return its first layer's attention probabilities
    run_defaults: dict[str, Any] = field(default_factory=dict)  # family defaults for run keys, e.g. lr
    requires: tuple[str, ...] = ()  # modules of optional extras the family needs (vit-timm: timm)
    install_hint: str = ""  # how to get `requires` (default: pip install them)
    # locate_weights(name, weights) -> the folder or hub repo id `load` reads for `weights` ("auto", a
    # folder or a name); None: default_weights for "auto", else `weights` itself.
    locate_weights: Callable[[str, str], str] | None = None
    description: str = ""

    @property
    def has_pretrained(self) -> bool:
        return self.default_weights is not None

    def weights_location(self, weights: str) -> str | None:
        """The folder or hub repo id that `load` reads for `weights` (None: no pretrained weights)."""
        if weights == "auto" and not self.has_pretrained:
            return None
        if self.locate_weights is not None:
            return self.locate_weights(self.name, weights)
        return self.default_weights if weights == "auto" else weights

    def missing_requirements(self) -> Missing | None:
        """Optional packages this family needs to build at all (any init) that are not installed."""
        from fptlab.tasks.base import Missing  # a plain value type; imported here to keep the registries apart

        absent = [m for m in self.requires if not _installed(m)]
        if not absent:
            return None
        hint = self.install_hint or f"Install it: pip install {' '.join(absent)}."
        return Missing(f"backbone '{self.name}' needs the {', '.join(absent)} package, which is not installed", hint)

    def missing_weights(self, weights: str) -> Missing | None:
        """Why the pretrained weights `weights` ("auto", a folder or a hub id; not "trial:<hash>") could not
        be read here, decided from the file system alone: a folder that does not exist, or hub weights
        absent from the Hugging Face cache while downloads are disabled. None when they can be read."""
        from fptlab.files import kind_of
        from fptlab.tasks.base import Missing

        location = self.weights_location(weights)
        if location is None:
            return None  # no weights of its own: plan.check_compatible reports that as a config mistake
        kind = kind_of(Path(location).expanduser())
        if kind in ("file", "folder"):
            return None
        if kind != "missing":
            return Missing(
                f"weights = {weights!r} is a {kind}, not a checkpoint folder or file",
                "weights names a checkpoint folder (or a saved body's folder), a hub id, \"auto\" or \"trial:<config hash>\"; "
                "fix the path.",
            )
        if _looks_like_path(location):
            return Missing(
                f"weights = {weights!r}: no such folder or file",
                "weights names a checkpoint folder (or a saved body's folder), a hub id, \"auto\" or \"trial:<config hash>\"; "
                "fix the path.",
            )
        if not offline_disabled() or hub_cached(location):
            return None
        return Missing(
            f"pretrained weights '{location}' not in the Hugging Face cache, downloads disabled (offline)",
            f"Looked in {hub_cache_dir()}. {WEIGHTS_HOW_TO_GET}",
        )

    def layers_of(self, options: Any) -> int:
        """Blocks at full depth under `options` (an LSTM's `layers` option sets it)."""
        return int(getattr(options, "layers", self.n_layers))

    def depth_of(self, options: Any) -> int:
        """Blocks the run keeps."""
        full = self.layers_of(options)
        return options.depth or full

    def check_options(self, options: Any) -> None:
        full = self.layers_of(options)
        if options.depth > full:
            raise ConfigError(
                f"model.depth = {options.depth}, but backbone '{self.name}' has {full} blocks. "
                f"Use a depth from 1 to {full} (0 keeps all)."
            )

    def defaults_for(self, options: Any) -> dict[str, Any]:
        """Run keys this family sets when a config leaves them unset: its own `run_defaults` and the
        paper's FPT groups that exist in it (an LSTM without positions has no `positions` group)."""
        out = dict(self.run_defaults)
        declared = self.declared_groups(options)
        out.setdefault("train", tuple(g for g in PAPER_GROUPS if g in declared))
        return out

    def declared_groups(self, options: Any) -> list[str]:
        """Groups this backbone has parameters in under `options`, plus FPT's input and output (an
        LSTM declares `positions` only with `model.positions = true`)."""
        declared = {group for group, _ in self.groups} | set(FPT_GROUPS)
        if not getattr(options, "positions", True):
            declared.discard("positions")
        return [g for g in ALL_GROUPS if g in declared]

    def check_length(self, seq_len: int, task: str | None = None) -> None:
        """Raise IncompatibleError when a task's sequences exceed this backbone's learned positions."""
        if self.max_positions is None or seq_len <= self.max_positions:
            return
        who, options = (f"Task '{task}'", f"`{task}.*` options") if task else ("The task", "its length options")
        raise IncompatibleError(
            f"{who} has sequences of {seq_len} tokens but backbone '{self.name}' has {self.max_positions} positions. "
            f"Shorten the task (see {options}) or use a backbone with more positions (gpt2: 1024)."
        )

    def group_of(self, param_name: str) -> list[str]:
        """All groups whose regex matches `param_name` (a correct declaration yields exactly one)."""
        return [group for group, pattern in self.groups if re.search(pattern, param_name)]

    def layer_of(self, param_name: str) -> int | None:
        """The block index of a body parameter (None for parameters outside the blocks)."""
        match = re.match(rf"{re.escape(self.blocks)}\.(\d+)\.", param_name)
        return int(match.group(1)) if match else None


def _looks_like_path(location: str) -> bool:
    """A location no hub id can be: absolute or relative-looking (./, ../, ~), or with more than one "/"
    (hub ids are `name` or `owner/name`). Such a string is read from disk only."""
    return location.startswith(("/", ".", "~")) or location.count("/") > 1 or "\\" in location


def _installed(module: str) -> bool:
    """Whether `module` can be imported, found without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
