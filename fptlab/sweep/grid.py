"""Sweep specs: a TOML file declaring a grid of runs -> the run configurations it contains (pure).

A spec is data: it is expanded here without Ray, a database, torch or any dataset, so the same spec
always yields the same cells, in the same order, with the same config hashes. Growing a spec (more
seeds, more values) keeps the hashes of the cells it already had, so a sweep re-runs only new cells.

Format
------
    [experiment]
    name = "smoke"                # required; letters, digits, _ . -
    description = "..."           # optional
    base = "base.toml"            # optional: inherit from this file (path relative to this one)
    pack = 8                      # optional: the default of `fptlab sweep --pack` (fptlab.packing)

    [defaults]                    # run-config keys shared by every cell, as `fptlab run --set` takes them
    task = "bit_xor"
    steps = 20
    [defaults.bit_xor]            # a task's options live in a section named after the task
    n_bits = 5

    [grid]                        # the Cartesian product of these axes (each a non-empty list)
    init = ["pretrained", "random"]
    lr = [1e-3, 3e-4]
    bit_xor.n_bits = [5, 10]      # a task option ("bit_xor.n_bits" quoted works too)
    train = [["input", "output"], ["input", "output", "layernorm"]]  # a list-valued key: a list of lists

    seeds = [0, 1, 2]             # top level (before any table): the axis `seed`; not with grid.seed

    [variants]                    # named bundles of keys forming the axis `variant`: every variant,
    fpt = { backbone = "gpt2", init = "pretrained" }      # or the ones grid.variant = [...] lists
    random = { backbone = "gpt2", init = "random" }

    [[zip]]                       # lists advanced together (equal lengths), crossed with the rest;
    task = ["listops", "mnist"]   # any number of [[zip]] groups; `variant` may be zipped too
    steps = [200, 100]

    [[when]]                      # conditional overrides, applied to every cell in file order; each
    match = { task = "remote_homology" }   # sees the cell as earlier ones left it
    set = { lr = 1e-4 }

    [[exclude]]                   # drop cells matching all these keys; a list means "any of"
    task = "bit_memory"           # (for a list-valued key such as train, a list of lists)
    init = ["random"]

    [sources.bit]                 # a run whose trained body other cells start from (paper "Bit"):
    task = "bit_memory"           # [defaults] + these keys + matching [[when]] sets, save_body = true
    init = "random"
    train = ["all"]
    [variants]
    bit = { init = "pretrained", weights = "source:bit" }   # -> weights = "trial:<the source's hash>"

    [tune]                        # a tuned comparison (`fptlab.sweep.tuning`): its key is one more axis,
    key = "lr"                    # after every other but the seeds, set over any [[when]]; the report
    values = [1e-4, 3e-4, 1e-3]   # picks each arm's best on validation. `Spec.fixed` gives each cell
                                  # the key's value without tuning; that cell is in the spec too.

Semantics
---------
- A cell's keys: [defaults], then its variant's keys, then its axis values, then matching [[when]]
  sets. A key may be an axis once (grid, a zip group or seeds); a variant may not set an axis key.
- Task sections (`[defaults.listops]`, `variants.x.listops`, `grid.listops.max_len`) apply only to
  cells whose task is that task; the others are dropped for that cell. A section must name a
  registered task.
- [[when]] match and [[exclude]] compare against the cell's full configuration (unset keys at their
  defaults; a task option matches only cells of that task) and its variant name. Exclusions apply
  after the [[when]] overrides. Excluding every cell is an error.
- Order: product with the first axis outermost; axes in the order variant (when implicit), [grid]
  in file order, [[zip]] groups in file order, seeds. Cells whose config hash repeats an earlier
  cell's are dropped (the first is kept).
- A cell's labels are its axis values (`{"init": "random", "lr": 0.001, "seed": 0}`), read from the
  final config (so a [[when]] override shows), `None` for a task option the cell's task lacks.
- Sources: each [sources.NAME] is one run (not crossed with the axes; no seeds axis) that saves its
  body, kept only if some cell uses it. A cell whose `weights` is "source:NAME" gets weights = "trial:<that run's config hash>", so
  its hash names exactly the body it starts from. Sources come first among the cells, labelled
  {"source": NAME} (unless a grid cell is the very same run: it then takes the source's place, with
  its own labels, and is kept); a sweep runs a cell that needs a source only once the source has saved its body,
  and fails it clearly when the source cannot (see fptlab.sweep.tune_glue).
- Inheritance: the base file (itself possibly inheriting) is loaded first; this file's tables are
  merged over it (tables merge key by key, deeply; any other value, lists and [[arrays]] included,
  replaces). [experiment] is never inherited: each file names itself. Cycles are errors.
- `Spec.text`, the canonical text, is the merged spec (inheritance resolved, `base` dropped) as
  compact JSON in file order; `Spec.hash` is its SHA-256 prefix (16 hex digits), so comments and
  layout do not change it. `expand(json.loads(spec.text))` gives the same cells.
- Cells are validated, not resolved: "auto" choices (e.g. a task's `source`) stay "auto" here and
  are resolved where the cell runs (`fptlab.plan.resolve_config`).

Every mistake raises `ConfigError` as `FILE: KEY: problem`, with the key's full path (`grid.lr[1]`,
`when[0].set.lr`, `zip[0]`), the expected form, and a did-you-mean where one applies.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fptlab.bodies import TRIAL_PREFIX
from fptlab.config import MODEL_SECTION, RunConfig, config_from_dict
from fptlab.errors import ConfigError, FptlabError
from fptlab.files import not_a_file, read_toml
from fptlab.sweep.keys import VARIANT, fail
from fptlab.sweep.parse import SOURCE_PREFIX, Plan, parse
from fptlab.sweep.tuning import TuneDecl, check_cells

MAX_CELLS = 100_000  # a guard against a typo multiplying axes into millions of cells
SOURCE = "source"  # the label of a [sources] cell
_MISSING = object()


@dataclass(frozen=True, eq=False)
class Cell:
    """One run of a sweep: its validated config and the axis values that distinguish it. The one cell
    type: expansion makes them, `fptlab.sweep.run.prepare_cells` resolves their configs, the
    executor runs them."""

    config: RunConfig
    labels: dict[str, Any]

    @property
    def hash(self) -> str:
        return self.config.hash

    @property
    def label(self) -> str:
        """"init=random lr=0.001 seed=0" (empty for a spec without axes)."""
        return " ".join(f"{k}={_text(v)}" for k, v in self.labels.items())


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    text: str  # canonical text: the merged spec as compact JSON, inheritance resolved
    hash: str  # sha256(text)[:16]
    cells: tuple[Cell, ...]
    origin: str = "spec"  # the file it was loaded from
    sources: tuple[str, ...] = ()  # every file read, bases first
    excluded: int = 0  # cells dropped by [[exclude]]
    duplicates: int = 0  # cells dropped because an earlier cell had the same config hash
    tune: TuneDecl | None = None  # a tuned comparison's [tune] (`fptlab.sweep.tuning`)
    fixed: dict[str, Any] = field(default_factory=dict)  # tuned: cell hash -> the key's value without tuning
    pack: int | None = None  # [experiment] pack: the default largest pack (`fptlab.packing`)

    @property
    def hashes(self) -> list[str]:
        return [cell.hash for cell in self.cells]

    @property
    def axes(self) -> list[str]:
        """The labels of the grid's cells (sources aside)."""
        return next((list(c.labels) for c in self.cells if SOURCE not in c.labels), [])


# ---- public entry points ---------------------------------------------------------------------------
def load_spec(path: str | Path, *, tune_values: list[float] | None = None) -> Spec:
    """Read a spec file (and its bases), check it, and expand it into cells. `tune_values` replaces the
    candidates of its [tune] table (`fptlab sweep --tune-values`: widening a range the report flags)."""
    origin = str(path)
    merged, sources = _load(Path(path), origin, [])
    if tune_values is not None:
        merged = _with_candidates(merged, tune_values, origin)
    experiment = merged.pop("experiment", None)
    if isinstance(experiment, Mapping):  # first, as in the file; `base` is resolved now
        merged = {"experiment": {k: v for k, v in experiment.items() if k != "base"}, **merged}
    return spec_from_dict(merged, origin=origin, sources=tuple(sources))


def spec_from_dict(raw: Mapping[str, Any], *, origin: str = "spec", sources: tuple[str, ...] = ()) -> Spec:
    """Check and expand an already-merged spec (a file's tables, inheritance resolved)."""
    plan = parse(raw, origin)
    if plan.base is not None:
        raise fail(origin, "experiment.base", "inheritance needs a file to resolve the path against; use load_spec(path).")
    cells, excluded, duplicates, fixed = _expand(plan, origin)
    if plan.tune is not None:
        check_cells(plan.tune, [c.config for c in cells], origin)
    canonical = json.dumps(raw, separators=(",", ":"), ensure_ascii=False, default=str)
    return Spec(
        name=plan.name, description=plan.description, text=canonical,
        hash=hashlib.sha256(canonical.encode()).hexdigest()[:16], cells=tuple(cells),
        origin=origin, sources=sources, excluded=excluded, duplicates=duplicates, tune=plan.tune, fixed=fixed,
        pack=plan.pack,
    )


def _with_candidates(merged: dict[str, Any], values: list[float], origin: str) -> dict[str, Any]:
    tune = merged.get("tune")
    if not isinstance(tune, Mapping):
        raise fail(origin, "tune", "--tune-values replaces the candidates of a [tune] table, and this spec has none.")
    table = {k: v for k, v in tune.items() if k not in ("values", "range")}
    return {**merged, "tune": {**table, "values": list(values)}}


def expand(spec_dict: Mapping[str, Any], *, origin: str = "spec") -> list[Cell]:
    """The cells of a spec given as a dict (as `tomllib` reads it), in order, duplicates dropped."""
    return list(spec_from_dict(spec_dict, origin=origin).cells)


# ---- inheritance -----------------------------------------------------------------------------------------
def _read(path: Path, origin: str) -> dict[str, Any]:
    return read_toml(path, "spec file")


def _load(path: Path, origin: str, chain: list[Path]) -> tuple[dict[str, Any], list[str]]:
    """The file's tables merged over its base's (recursively), and the files read, bases first."""
    raw = _read(path, origin)
    plan = parse(raw, origin, partial=True)  # every value is checked in the file that writes it
    here = path.resolve()
    if plan.base is None:
        return raw, [origin]
    base_path = path.parent / plan.base
    problem = not_a_file(base_path)
    if problem is not None:
        raise fail(origin, "experiment.base", f"base spec '{plan.base}' {problem} (looked for {base_path}); the path is relative to this file.")
    if base_path.resolve() in chain + [here]:
        cycle = " -> ".join(str(p) for p in chain + [here, base_path.resolve()])
        raise fail(origin, "experiment.base", f"inheritance cycle: {cycle}. Remove one of the `base` keys.")
    base, sources = _load(base_path, str(base_path), chain + [here])
    base.pop("experiment", None)  # each file names itself
    return _merge(base, raw), sources + [origin]


def _merge(base: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


# ---- expansion --------------------------------------------------------------------------------------------
def _expand(plan: Plan, origin: str) -> tuple[list[Cell], int, int, dict[str, Any]]:
    lengths = [len(group[0].values) for group in plan.groups]
    total = 1
    for n in lengths:
        total *= n
    if total > MAX_CELLS:
        raise fail(origin, "grid", f"declares {total} cells (over {MAX_CELLS}); split the spec or trim its axes.")
    cells = _source_cells(plan, origin)
    refs = {cell.labels[SOURCE]: cell.hash for cell in cells}
    seen: set[str] = {cell.hash for cell in cells}
    sources = {cell.hash: i for i, cell in enumerate(cells)}  # a grid cell may BE a source's run
    excluded = duplicates = 0
    fixed: dict[str, Any] = {}  # tuned: every cell's value of the key without tuning
    for choice in itertools.product(*(range(n) for n in lengths)):
        flat, labels = _assign(plan, choice)
        points = [(flat, labels, _MISSING, False)]
        if plan.tune is not None:
            points = _tuned_points(plan, choice, flat, labels, origin, refs)
        for flat, labels, untuned, repeats in points:
            tuned = labels.get(plan.tune.key, _MISSING) if plan.tune is not None else _MISSING
            config = _apply_when(plan, flat, labels, origin, refs, tuned=tuned)
            if any(_matches(config, labels, rule) for rule in plan.exclude):
                excluded += not repeats
                continue
            if untuned is not _MISSING:
                fixed.setdefault(config.hash, untuned)
            if config.hash in sources:  # the grid names the source's very run: one trial, the grid's labels
                cells[sources.pop(config.hash)] = Cell(config, {k: _label(config, labels, k) for k in labels})
                continue
            if config.hash in seen:
                duplicates += not repeats  # an arm's fixed cell comes with every candidate: no duplicate
                continue
            seen.add(config.hash)
            cells.append(Cell(config, {k: _label(config, labels, k) for k in labels}))
    if len(cells) == len(refs):
        raise fail(origin, "exclude", f"the exclusions remove all {excluded} cells; nothing would run. Loosen an [[exclude]] entry.")
    used = {c.config.weights for c in cells}
    cells = [c for c in cells if SOURCE not in c.labels or f"{TRIAL_PREFIX}{c.hash}" in used]  # a source no cell uses: not run
    return cells, excluded, duplicates, fixed


def _tuned_points(plan: Plan, choice: tuple[int, ...], flat: dict[str, Any], labels: dict[str, Any], origin: str,
                  refs: Mapping[str, str]) -> list[tuple[dict[str, Any], dict[str, Any], Any, bool]]:
    """A tuned spec's point of the product: its candidate cell, preceded by the arm's cell at its fixed
    value (the key's value without tuning: defaults, variant, [[when]]) when that is not a candidate.
    Each as (flat keys, labels, the fixed value, whether it repeats for every candidate)."""
    assert plan.tune is not None
    key = plan.tune.key
    untuned_flat, _ = _assign(plan, choice, skip=key)
    untuned = _value(_apply_when(plan, untuned_flat, labels, origin, refs), labels, key)
    points: list[tuple[dict[str, Any], dict[str, Any], Any, bool]] = []
    if isinstance(untuned, (int, float)) and not any(math.isclose(untuned, v, rel_tol=1e-9) for v in plan.tune.values):
        points.append(({**flat, key: untuned}, {**labels, key: untuned}, untuned, True))
    points.append((flat, labels, untuned, False))
    return points


def _assign(plan: Plan, choice: tuple[int, ...], skip: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Flat keys (defaults, variant, axis values but `skip`'s) and labels for one point of the product."""
    flat = dict(plan.defaults)
    labels: dict[str, Any] = {}
    axis_values: dict[str, Any] = {}
    for group, i in zip(plan.groups, choice):
        for axis in group:
            labels[axis.key] = axis.values[i]
            if axis.key == VARIANT:
                flat.update(plan.variants[axis.values[i]])
            elif axis.key != skip:
                axis_values[axis.key] = axis.values[i]
    flat.update(axis_values)  # axes over variants (they never share a key) and defaults
    return flat, labels


def _source_cells(plan: Plan, origin: str) -> list[Cell]:
    """One cell per [sources.NAME]: [defaults] (but not a default `weights = "source:..."`), the
    source's keys, the matching [[when]] sets, and save_body = true."""
    cells = []
    for name, body in plan.sources.items():
        flat = {k: v for k, v in plan.defaults.items() if not (k == "weights" and str(v).startswith(SOURCE_PREFIX))}
        flat.update(body)
        flat["save_body"] = True
        labels = {SOURCE: name}
        cells.append(Cell(_apply_when(plan, flat, labels, origin, {}), labels))
    return cells


def _apply_when(plan: Plan, flat: dict[str, Any], labels: dict[str, Any], origin: str, refs: Mapping[str, str],
                tuned: Any = _MISSING) -> RunConfig:
    """The cell's config after the [[when]] sets; a tuned value is set last, over them."""
    flat = dict(flat)
    config = _build(flat, labels, origin, refs)
    for match, settings in plan.when:
        if _matches(config, labels, match):
            flat.update(settings)
            config = _build(flat, labels, origin, refs)
    if tuned is not _MISSING and plan.tune is not None and flat.get(plan.tune.key, _MISSING) != tuned:
        flat[plan.tune.key] = tuned
        config = _build(flat, labels, origin, refs)
    return config


def _build(flat: Mapping[str, Any], labels: Mapping[str, Any], origin: str, refs: Mapping[str, str]) -> RunConfig:
    """Flat dotted keys -> RunConfig, keeping only the chosen task's section; weights = "source:NAME"
    becomes "trial:<hash of that source>"."""
    where = f"{origin}: cell [{' '.join(f'{k}={_text(v)}' for k, v in labels.items())}]"
    weights = flat.get("weights")
    if isinstance(weights, str) and weights.startswith(SOURCE_PREFIX):
        flat = {**flat, "weights": f"{TRIAL_PREFIX}{refs[weights[len(SOURCE_PREFIX):]]}"}
    task = flat.get("task")
    if task is None:
        raise ConfigError(f"{where}: no task. Set defaults.task, or vary it with grid.task = [...].")
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        section, dot, option = key.partition(".")
        if not dot:
            nested[key] = value
        elif section in (task, MODEL_SECTION):
            nested.setdefault(section, {})[option] = value
    try:
        return config_from_dict(nested, origin=where)
    except FptlabError as e:
        message = str(e)
        raise ConfigError(message if message.startswith(where) else f"{where}: {message}") from None


def _value(config: RunConfig, labels: Mapping[str, Any], key: str) -> Any:
    if key in (VARIANT, SOURCE):
        return labels.get(key, _MISSING)
    section, dot, option = key.partition(".")
    if dot and section == MODEL_SECTION:
        return getattr(config.model_options, option, _MISSING)
    if dot:
        return getattr(config.task_options, option) if section == config.task else _MISSING
    return getattr(config, key)


def _matches(config: RunConfig, labels: Mapping[str, Any], rule: Mapping[str, list[Any]]) -> bool:
    return all(_value(config, labels, key) in choices for key, choices in rule.items())


def _label(config: RunConfig, labels: Mapping[str, Any], key: str) -> Any:
    value = _value(config, labels, key)
    return None if value is _MISSING else value


def _text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)
