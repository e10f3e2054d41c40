"""Run-configuration keys as a sweep spec writes them: flattening tables to dotted keys and checking
each value where it is written, so an error names the spec file and the key's full path
(`grid.lr[1]`, `when[0].set.lr`) instead of a cell built far from the mistake.

A key is a `RunConfig` field (`lr`, `backbone`, ...), `<task>.<option>` for a registered task's
option (`bit_xor.n_bits`), or `model.<option>` for a backbone family's option (`model.depth`),
exactly as `fptlab run --set` takes it. A `model.*` key is checked here against every family's
options; whether the cell's backbone has it is checked when the cell is built. Registries (tasks, backbones,
parameter groups) are imported inside functions so `import fptlab.sweep` stays light.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from fptlab.config import MODEL_SECTION, SECTIONS, RunConfig, check_values
from fptlab.errors import ConfigError, FptlabError
from fptlab.escape import quoted
from fptlab.registry import did_you_mean, unknown_name_message
from fptlab.typed import coerce

VARIANT = "variant"  # the axis formed by [variants]; a label, not a run-config key

RUN_KEYS: dict[str, Any] = {
    name: hint for name, hint in typing.get_type_hints(RunConfig).items() if name not in SECTIONS
}


def fail(origin: str, path: str, message: str) -> ConfigError:
    """`FILE: KEY: problem` -- every spec error has this shape."""
    return ConfigError(f"{origin}: {path}: {message}" if path else f"{origin}: {message}")


def unknown_key(origin: str, path: str, name: str, options: list[str], what: str = "key") -> ConfigError:
    return fail(origin, path, f"unknown {what} '{name}'.{did_you_mean(name, options)} Valid: {', '.join(sorted(options))}.")


def task_registry() -> Any:
    from fptlab.tasks import TASKS

    return TASKS


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# ---- flattening -----------------------------------------------------------------------------------
def spec_entries(table: Any, path: str, origin: str, *, allow_variant: bool = False) -> Iterator[tuple[str, Any, str]]:
    """Yield (dotted key, raw value, full path) for each run-config key written in `table`.

    Task options may be nested (`[defaults.bit_xor] n_bits = 5`) or dotted (`"bit_xor.n_bits" = 5`);
    a section must name a registered task. Values are not checked here (see `check_value`)."""
    if not isinstance(table, Mapping):
        raise fail(origin, path, f"must be a table of run-config keys, got {quoted(table)}.")
    for raw_key, value in table.items():
        head, _, rest = raw_key.partition(".")
        if rest:  # a quoted dotted key: treat as nested
            yield from spec_entries({head: {rest: value}}, path, origin, allow_variant=allow_variant)
            continue
        where = join(path, raw_key)
        if raw_key in RUN_KEYS or (allow_variant and raw_key == VARIANT):
            yield raw_key, value, where
        elif raw_key == MODEL_SECTION:
            yield from _model_section(value, where, origin)
        elif raw_key in task_registry():
            yield from _section(raw_key, value, where, origin)
        else:
            options = list(RUN_KEYS) + task_registry().names() + [MODEL_SECTION] + ([VARIANT] if allow_variant else [])
            error = unknown_key(origin, where, raw_key, options, "run-config key")
            if raw_key == "seeds":  # TOML puts a key written after a [table] header inside that table
                error = ConfigError(f"{error} `seeds` is a top-level key: write it above the first [table].")
            raise error


def _section(task: str, value: Any, path: str, origin: str) -> Iterator[tuple[str, Any, str]]:
    if not isinstance(value, Mapping):
        raise fail(origin, path, f"'{task}' is a task section: set its options as {path}.OPTION (e.g. {path}.{_first_option(task)}), got {quoted(value)}.")
    options = [f.name for f in dataclasses.fields(task_registry().get(task).Options)]
    for raw_key, sub in value.items():
        opt, _, rest = raw_key.partition(".")
        where = join(path, raw_key)
        if rest or opt not in options:
            raise unknown_key(origin, where, raw_key, options, f"{task} option")
        yield f"{task}.{opt}", sub, where


def _model_section(value: Any, path: str, origin: str) -> Iterator[tuple[str, Any, str]]:
    if not isinstance(value, Mapping):
        raise fail(origin, path, f"'model' is the backbone options section: set them as {path}.OPTION (e.g. {path}.depth), got {quoted(value)}.")
    options = sorted(model_option_hints())
    for raw_key, sub in value.items():
        where = join(path, raw_key)
        if raw_key not in options:
            raise unknown_key(origin, where, raw_key, options, "model option")
        yield f"{MODEL_SECTION}.{raw_key}", sub, where


@functools.cache
def model_option_hints() -> dict[str, Any]:
    """Every family's `[model]` options and their types (the first family to declare a name wins)."""
    from fptlab.backbones import BACKBONES

    hints: dict[str, Any] = {}
    for name in BACKBONES.names():
        options = BACKBONES.get(name).Options
        declared = typing.get_type_hints(options)
        for f in dataclasses.fields(options):
            hints.setdefault(f.name, declared[f.name])
    return hints


def _first_option(task: str) -> str:
    return dataclasses.fields(task_registry().get(task).Options)[0].name


# ---- types and values -----------------------------------------------------------------------------
def key_type(key: str) -> Any:
    """The declared type of a dotted key (a RunConfig field or a task option)."""
    if key in RUN_KEYS:
        return RUN_KEYS[key]
    section, _, opt = key.partition(".")
    if section == MODEL_SECTION:
        return model_option_hints()[opt]
    return _option_hints(section)[opt]


@functools.cache
def _option_hints(task: str) -> dict[str, Any]:
    return typing.get_type_hints(task_registry().get(task).Options)


def is_list_typed(key: str) -> bool:
    return key != VARIANT and typing.get_origin(_strip_optional(key_type(key))) is tuple


def _strip_optional(typ: Any) -> Any:
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(typ) if a is not type(None)]
        return inner[0] if len(inner) == 1 else typ
    return typ


def check_value(key: str, value: Any, path: str, origin: str) -> Any:
    """Coerce `value` to `key`'s type and check names against the registries; errors name `path`."""
    if key == VARIANT:
        if not isinstance(value, str):
            raise fail(origin, path, f"must be a variant name (a string), got {quoted(value)}.")
        return value
    try:
        out = coerce(value, key_type(key), path)
    except ConfigError as e:
        raise ConfigError(f"{origin}: {e}{_literal_hint(key, value)}") from None
    _check_names(key, out, path, origin)
    if key in RUN_KEYS and key != "task":
        try:  # the single-key rules (lr > 0, steps > 0, ...) on a default config carrying this one value
            check_values(RunConfig(task="-", **{key: out}))
        except FptlabError as e:
            raise fail(origin, path, str(e)) from None
    return out


def _literal_hint(key: str, value: Any) -> str:
    typ = _strip_optional(key_type(key))
    if typing.get_origin(typ) is Literal and isinstance(value, str):
        return did_you_mean(value, [str(a) for a in typing.get_args(typ)])
    return ""


def _check_names(key: str, value: Any, path: str, origin: str) -> None:
    from fptlab.backbones import BACKBONES
    from fptlab.groups import parse_group

    if key == "task" and value not in task_registry():
        raise fail(origin, path, unknown_name_message("task", value, task_registry().names()))
    if key == "backbone" and value not in BACKBONES:
        raise fail(origin, path, unknown_name_message("backbone", value, BACKBONES.names()))
    if key == "train":
        for i, group in enumerate(value):
            try:
                parse_group(group)
            except FptlabError as e:
                raise fail(origin, f"{path}[{i}]", str(e)) from None


def check_table(table: Any, path: str, origin: str) -> dict[str, Any]:
    """A table of fixed values ([defaults], a variant, when.set) -> {dotted key: checked value}."""
    return {key: check_value(key, value, where, origin) for key, value, where in spec_entries(table, path, origin)}


def check_choices(key: str, value: Any, path: str, origin: str) -> list[Any]:
    """A match / exclude value: one value, or a list meaning "any of" (for list-typed keys such as
    `train`, a list of lists)."""
    any_of = isinstance(value, list) and (not is_list_typed(key) or all(isinstance(v, list) for v in value))
    if not any_of:
        return [check_value(key, value, path, origin)]
    if not value:
        raise fail(origin, path, "an empty list matches nothing; give a value or a non-empty list of values.")
    return [check_value(key, v, f"{path}[{i}]", origin) for i, v in enumerate(value)]


def check_axis(key: str, values: Any, path: str, origin: str) -> list[Any]:
    """An axis: a non-empty list of values, each checked with its index in the path."""
    example = '[["input", "output"], ["output"]]' if is_list_typed(key) else "[1, 2]"
    if not isinstance(values, list):
        raise fail(origin, path, f"an axis must be a list of values, e.g. {key} = {example}; got {quoted(values)}.")
    if not values:
        raise fail(origin, path, f"an axis needs at least one value, e.g. {key} = {example}.")
    if is_list_typed(key):
        for i, v in enumerate(values):
            if not isinstance(v, list):
                raise fail(origin, f"{path}[{i}]", f"each value of this axis is itself a list, e.g. {key} = {example}; got {quoted(v)}.")
    return [check_value(key, v, f"{path}[{i}]", origin) for i, v in enumerate(values)]
