"""Typed values from raw data (TOML tables, --set strings, JSON read back from disk): a frozen dataclass
filled from a mapping, each value converted to its field's type where that is lossless, every unknown
key and wrong type refused with its dotted path. Run configs (`fptlab.config`), their task and
`[model]` sections, and a saved body's description (`fptlab.bodies`) are all built here.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

from fptlab.errors import ConfigError
from fptlab.escape import quoted


def build_dataclass(cls: type, raw: Mapping[str, Any], *, prefix: str, origin: str) -> Any:
    """Fill dataclass `cls` from `raw`, rejecting unknown keys and wrong types with their path."""
    hints = field_types(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        if key not in names:
            raise ConfigError(unknown_key_message(origin, prefix + key, [prefix + n for n in names]))
        kwargs[key] = coerce(value, hints[key], prefix + key)
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{origin}: invalid {prefix.rstrip('.')} options: {e}") from None
    return obj


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def coerce(value: Any, typ: Any, path: str) -> Any:
    """Convert `value` to `typ` where lossless (int -> float, "a,b" -> tuple, "none" -> None)."""
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], path)
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ConfigError(f"'{path}' must be one of {allowed}; got {quoted(value)}.")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"'{path}' must be a list, got {quoted(value)}. Example: {path} = [\"input\", \"output\"].")
        return tuple(coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
    if typ is Any:
        return value
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"'{path}' must be true or false, got {quoted(value)}.")
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"'{path}' must be an integer, got {quoted(value)}.")
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"'{path}' must be a finite number, got {quoted(value)}.")
            return float(value)
        raise ConfigError(f"'{path}' must be a number, got {quoted(value)}.")
    if typ is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"'{path}' must be a string, got {quoted(value)}.")
    raise AssertionError(f"unsupported config type {typ!r} at {path}")  # internal: a field we declared


def unknown_key_message(origin: str, key: str, available: list[str]) -> str:
    from fptlab.registry import did_you_mean

    return f"{origin}: unknown key '{key}'.{did_you_mean(key, available)} Valid keys: {', '.join(sorted(available))}."


