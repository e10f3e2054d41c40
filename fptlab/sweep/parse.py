"""Checking a sweep spec's tables (see `fptlab.sweep.grid` for the format) into a `Plan`: defaults,
axes, variants, conditional overrides and exclusions, every value checked where it is written.

`parse(raw, origin, partial=True)` checks one file on its own (a base file may lack a name and refer
to variants another file declares); `partial=False` checks the merged spec as a whole.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fptlab.escape import quoted
from fptlab.sweep.keys import VARIANT, check_axis, check_choices, check_table, check_value, fail, spec_entries, unknown_key
from fptlab.sweep.tuning import TuneDecl, parse_tune

TABLES = ("experiment", "defaults", "grid", "seeds", "variants", "sources", "zip", "when", "exclude", "tune")
SOURCE_PREFIX = "source:"  # weights = "source:NAME" names the body a [sources.NAME] run saves
EXPERIMENT_KEYS = ("name", "description", "base", "pack")
WHEN_KEYS = ("match", "set")
NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")


_NO_GRID: Mapping[str, Any] = {}  # a spec without a [grid] table (an empty one is a mistake)


@dataclass(frozen=True)
class Axis:
    key: str  # dotted run-config key, or "variant"
    path: str  # where the spec declares it: "grid.lr", "zip[0].task", "seeds"
    values: tuple[Any, ...]  # checked values


@dataclass
class Plan:
    name: str = ""
    description: str = ""
    base: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    groups: list[list[Axis]] = field(default_factory=list)  # axes in one group advance together
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)  # runs whose saved bodies cells use
    when: list[tuple[dict[str, list[Any]], dict[str, Any]]] = field(default_factory=list)
    exclude: list[dict[str, list[Any]]] = field(default_factory=list)
    tune: TuneDecl | None = None  # a tuned comparison: its key is one more axis, after every other but the seeds
    pack: int | None = None  # [experiment] pack = K: the sweep's default --pack

    def axes(self) -> list[Axis]:
        return [axis for group in self.groups for axis in group]


def parse(raw: Mapping[str, Any], origin: str, *, partial: bool = False) -> Plan:
    for key in raw:
        if key not in TABLES:
            raise unknown_key(origin, "", key, list(TABLES), "top-level key")
    plan = Plan()
    _experiment(plan, raw.get("experiment"), origin, partial)
    if "defaults" in raw:
        plan.defaults = check_table(_table(raw["defaults"], "defaults", origin), "defaults", origin)
    if "variants" in raw:
        plan.variants = _variants(raw["variants"], origin)
    if "sources" in raw:
        plan.sources = _named_tables(raw["sources"], "sources", origin)
    grid = _grid(raw.get("grid", _NO_GRID), origin)
    zips = [_zip(t, f"zip[{i}]", origin) for i, t in enumerate(_array(raw.get("zip", []), "zip", origin))]
    seeds = [[Axis("seed", "seeds", _seeds(raw["seeds"], origin))]] if "seeds" in raw else []
    implicit = [[Axis(VARIANT, "variants", tuple(plan.variants))]] if plan.variants and not _declares_variant(grid, zips) else []
    plan.tune = parse_tune(raw["tune"], origin) if "tune" in raw else None
    tuned = [[Axis(plan.tune.key, "tune", plan.tune.values)]] if plan.tune is not None else []
    if plan.tune is not None and plan.tune.seeds:
        seeds.append([Axis("seed", "tune.seeds", plan.tune.seeds)])  # with top-level seeds too: refused below
    plan.groups = implicit + grid + zips + tuned + seeds
    plan.when = [_when(t, f"when[{i}]", origin) for i, t in enumerate(_array(raw.get("when", []), "when", origin))]
    plan.exclude = [_exclude(t, f"exclude[{i}]", origin) for i, t in enumerate(_array(raw.get("exclude", []), "exclude", origin))]
    _check_axis_keys(plan, origin)
    _check_variant_refs(plan, origin, partial)
    _check_source_refs(plan, origin, partial)
    return plan


# ---- tables -----------------------------------------------------------------------------------------
def _table(value: Any, path: str, origin: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise fail(origin, path, f"must be a table ([{path}] with key = value lines), got {quoted(value)}.")
    return value


def _array(value: Any, path: str, origin: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(t, Mapping) for t in value):
        raise fail(origin, path, f"must be an array of tables: write each entry under its own [[{path}]] header; got {quoted(value)}.")
    return value


def _experiment(plan: Plan, value: Any, origin: str, partial: bool) -> None:
    if value is None:
        if partial:
            return
        raise fail(origin, "experiment", 'missing [experiment] table. Add it with a name, e.g. [experiment] name = "smoke".')
    table = _table(value, "experiment", origin)
    for key in table:
        if key not in EXPERIMENT_KEYS:
            raise unknown_key(origin, f"experiment.{key}", key, list(EXPERIMENT_KEYS), "experiment key")
    if "name" not in table and not partial:
        raise fail(origin, "experiment.name", 'missing: every spec names itself, e.g. name = "smoke" (letters, digits, _ . -).')
    if "name" in table:
        name = table["name"]
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise fail(origin, "experiment.name", f"must be letters, digits, '_', '.' or '-' (pattern [A-Za-z0-9_.-]+), got {quoted(name)}.")
        plan.name = name
    for key in ("description", "base"):
        if key in table and not isinstance(table[key], str):
            raise fail(origin, f"experiment.{key}", f"must be a string, got {quoted(table[key])}.")
    plan.description = table.get("description", "")
    plan.base = table.get("base")
    if "pack" in table:
        pack = table["pack"]
        if not isinstance(pack, int) or isinstance(pack, bool) or not 1 <= pack <= 256:
            raise fail(origin, "experiment.pack", f"must be an integer from 1 (no packing) to 256, got {quoted(pack)}.")
        plan.pack = pack


def _variants(value: Any, origin: str) -> dict[str, dict[str, Any]]:
    return _named_tables(value, "variants", origin)


def _named_tables(value: Any, path: str, origin: str) -> dict[str, dict[str, Any]]:
    """[variants] / [sources]: NAME = { run-config keys }."""
    table = _table(value, path, origin)
    if not table:
        raise fail(origin, path, "is empty: declare at least one, e.g. fpt = { init = \"pretrained\" }, or remove the table.")
    out = {}
    for name, body in table.items():
        if not NAME_RE.fullmatch(name):
            raise fail(origin, f"{path}.{name}", f"a {path.rstrip('s')} name must be letters, digits, '_', '.' or '-'.")
        out[name] = check_table(_table(body, f"{path}.{name}", origin), f"{path}.{name}", origin)
    return out


def _grid(value: Any, origin: str) -> list[list[Axis]]:
    table = _table(value, "grid", origin)
    if value is not _NO_GRID and not table:
        raise fail(origin, "grid", "is empty: give it at least one axis (e.g. lr = [1e-3, 3e-4]), or remove the [grid] table "
                   "for a spec of one cell.")
    return [[Axis(key, where, tuple(_axis_values(key, values, where, origin)))]
            for key, values, where in spec_entries(table, "grid", origin, allow_variant=True)]


def _axis_values(key: str, values: Any, where: str, origin: str) -> list[Any]:
    if key == VARIANT and not isinstance(values, list):
        raise fail(origin, where, f'must be a list of variant names, e.g. variant = ["fpt"]; got {quoted(values)}.')
    return check_axis(key, values, where, origin)


def _zip(table: Mapping[str, Any], path: str, origin: str) -> list[Axis]:
    axes = [Axis(key, where, tuple(_axis_values(key, values, where, origin)))
            for key, values, where in spec_entries(table, path, origin, allow_variant=True)]
    if not axes:
        raise fail(origin, path, "is empty: give two or more keys with lists of equal length, e.g. task = [...] and steps = [...].")
    lengths = {axis.path: len(axis.values) for axis in axes}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{p} has {n}" for p, n in lengths.items())
        raise fail(origin, path, f"zipped lists must have equal lengths ({shown}).")
    return axes


def _seeds(value: Any, origin: str) -> tuple[int, ...]:
    ok = isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)
    if not ok:
        raise fail(origin, "seeds", f"must be a non-empty list of integers >= 0, e.g. seeds = [0, 1, 2]; got {quoted(value)}.")
    return tuple(value)


def _when(table: Mapping[str, Any], path: str, origin: str) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    for key in table:
        if key not in WHEN_KEYS:
            raise unknown_key(origin, f"{path}.{key}", key, list(WHEN_KEYS), "when key")
    for key in WHEN_KEYS:
        if key not in table:
            raise fail(origin, f"{path}.{key}", 'missing: a [[when]] needs both, e.g. match = { task = "remote_homology" } and set = { lr = 1e-4 }.')
    match = _choices(table["match"], f"{path}.match", origin)
    settings = check_table(_table(table["set"], f"{path}.set", origin), f"{path}.set", origin)
    if not settings:
        raise fail(origin, f"{path}.set", "is empty: give the keys to set, e.g. set = { lr = 1e-4 }.")
    return match, settings


def _exclude(table: Mapping[str, Any], path: str, origin: str) -> dict[str, list[Any]]:
    return _choices(table, path, origin)


def _choices(value: Any, path: str, origin: str) -> dict[str, list[Any]]:
    table = _table(value, path, origin)
    out = {key: check_choices(key, v, where, origin) for key, v, where in spec_entries(table, path, origin, allow_variant=True)}
    if not out:
        raise fail(origin, path, 'is empty: it would match every cell. Give keys and values, e.g. { task = "listops" }.')
    return out


# ---- cross-table checks --------------------------------------------------------------------------------
def _declares_variant(grid: list[list[Axis]], zips: list[list[Axis]]) -> bool:
    return any(axis.key == VARIANT for group in grid + zips for axis in group)


def _check_axis_keys(plan: Plan, origin: str) -> None:
    seen: dict[str, str] = {}
    for axis in plan.axes():
        if axis.key in seen:
            hint = " (`seeds` is the axis `seed`: drop one of them)" if "seeds" in (axis.path, seen[axis.key]) else ""
            raise fail(origin, axis.path, f"key '{axis.key}' is already an axis at {seen[axis.key]}; a key may vary in one axis only{hint}.")
        seen[axis.key] = axis.path
    for name, body in plan.variants.items():
        for key in body:
            if key in seen:
                raise fail(origin, f"variants.{name}.{key}", f"'{key}' is set by this variant and is also an axis at {seen[key]}; "
                           "set it in every variant, or vary it on the axis, not both.")


def _check_variant_refs(plan: Plan, origin: str, partial: bool) -> None:
    names = list(plan.variants)
    for axis in plan.axes():
        if axis.key != VARIANT or axis.path == "variants":
            continue
        for i, value in enumerate(axis.values):
            if names and value not in names:
                raise unknown_key(origin, f"{axis.path}[{i}]", value, names, "variant")
            if not names and not partial:
                raise fail(origin, axis.path, "names variants, but the spec declares no [variants] table.")
    refs = [(f"when[{i}].match", m) for i, (m, _) in enumerate(plan.when)] + [(f"exclude[{i}]", e) for i, e in enumerate(plan.exclude)]
    for path, choices in refs:
        for value in choices.get(VARIANT, []):
            if not names and not partial:
                raise fail(origin, f"{path}.variant", "names a variant, but the spec declares no [variants] table.")
            if names and value not in names:
                raise unknown_key(origin, f"{path}.variant", value, names, "variant")


def _weights_refs(plan: Plan) -> list[tuple[str, Any]]:
    """(path, value) of every `weights` the spec writes outside [sources]."""
    refs = [("defaults.weights", plan.defaults.get("weights"))]
    refs += [(f"variants.{n}.weights", body.get("weights")) for n, body in plan.variants.items()]
    refs += [(f"{axis.path}[{i}]", v) for axis in plan.axes() if axis.key == "weights" for i, v in enumerate(axis.values)]
    refs += [(f"when[{i}].set.weights", settings.get("weights")) for i, (_, settings) in enumerate(plan.when)]
    return [(path, value) for path, value in refs if isinstance(value, str)]


def _check_source_refs(plan: Plan, origin: str, partial: bool) -> None:
    for name, body in plan.sources.items():
        weights = body.get("weights", "")
        if isinstance(weights, str) and weights.startswith(SOURCE_PREFIX):
            raise fail(origin, f"sources.{name}.weights", "a source cannot start from another source's body; name a trial or folder instead.")
        if body.get("save_body") is False:
            raise fail(origin, f"sources.{name}.save_body", "a source exists to save its body: drop save_body = false.")
    for path, value in _weights_refs(plan):
        if not value.startswith(SOURCE_PREFIX):
            continue
        name = value[len(SOURCE_PREFIX):]
        if plan.sources and name not in plan.sources:
            raise unknown_key(origin, path, name, list(plan.sources), "source")
        if not plan.sources and not partial:
            raise fail(origin, path, f"names source '{name}', but the spec declares no [sources.{name}] table.")


__all__ = ["SOURCE_PREFIX", "Axis", "Plan", "check_value", "parse"]
