"""A small typed registry: build things by name, never by `if name == ...` chains."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

from fptlab.errors import FptlabError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects of one kind. Duplicate registration is an error."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T) -> T:
        if name in self._items:
            raise FptlabError(f"Duplicate {self.kind} '{name}': a {self.kind} of that name is already registered.")
        self._items[name] = obj
        return obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(unknown_name_message(self.kind, name, self.names())) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


def did_you_mean(name: object, options: list[str]) -> str:
    """" Did you mean 'listops'?" when one of `options` is close to `name`, else "". The one helper every
    unknown-name message (registries, config keys, spec keys, experiments) uses."""
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def unknown_name_message(kind: str, name: object, available: list[str]) -> str:
    """"Unknown task 'lstops'. Did you mean 'listops'? Available: ..." """
    return f"Unknown {kind} '{name}'.{did_you_mean(name, available)} Available: {', '.join(available)}."


def import_submodules(package: str, path: Iterable[str], skip: tuple[str, ...] = ()) -> None:
    """Import every public module of a package (names not starting with "_", minus `skip`), in sorted
    order, so that each registers what it defines: adding a task or backbone is adding a file."""
    for info in sorted(pkgutil.iter_modules(list(path)), key=lambda m: m.name):
        if not info.name.startswith("_") and info.name not in skip:
            importlib.import_module(f"{package}.{info.name}")


# The registries a user names things from, by the word for one of them; imported on first use, so that
# asking costs nothing until a name is looked up (the CLI answers --help without torch or the tasks).
NAMED = {"task": ("fptlab.tasks", "TASKS"), "backbone": ("fptlab.backbones", "BACKBONES"), "init": ("fptlab.inits", "INITS")}


def named_registry(kind: str) -> Registry | None:
    """The registry of `kind` ("task", "backbone", "init"), or None for another word."""
    if kind not in NAMED:
        return None
    module, attribute = NAMED[kind]
    return getattr(importlib.import_module(module), attribute)
