"""Which stored trials are a spec's cells, read from what the store recorded when they were swept, never
from how this machine would resolve data sources today.

A sweep records each cell's config as resolved where it ran (`source = "auto"` becomes the source found
there). A report on another machine (other data folders, other installed packages) must find the same
trials, so a spec cell is matched to a stored trial by its identity (`RunConfig.identity`, the task
section aside) plus its task options where the cell names them: an option the cell leaves to resolution
("auto", or unset as None) matches whatever the sweep resolved. The trials an experiment's own sweep
linked are tried first; a cell shared with another spec (Table 6 is Table 2's runs, a `[sources]` run
serves many tables) is found among every stored trial.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

UNRESOLVED = ("auto", None)  # task option values a sweep resolves where it runs


@dataclass(frozen=True)
class Stored:
    config_hash: str
    task_options: dict[str, Any]
    config: dict[str, Any]  # the full stored config (resolved at sweep time)


class StoredIndex:
    """The stored trials by (task, identity without the task section)."""

    def __init__(self, configs: dict[str, Any]) -> None:
        from fptlab.config import config_from_dict
        from fptlab.errors import FptlabError, FptlabWarning

        self.by_key: dict[tuple[str, str], list[Stored]] = {}
        skipped = []
        for config_hash, config in configs.items():
            if not isinstance(config, dict):
                continue  # the store warned: not a JSON object
            try:
                cfg = config_from_dict(config, origin=f"trial {config_hash}")
            except (FptlabError, ValueError, TypeError):
                skipped.append(config_hash)  # a backbone or option this fptlab does not know
                continue
            stored = Stored(config_hash, dict(config.get(cfg.task) or {}), config)
            self.by_key.setdefault(key_of(cfg), []).append(stored)
        if skipped:
            warnings.warn(f"{len(skipped)} stored trial(s) have configs this fptlab cannot read (e.g. {skipped[0]}); no "
                          "report can show them.", FptlabWarning, stacklevel=2)

    @classmethod
    def of(cls, store: Any) -> StoredIndex:
        return cls(store.trial_configs() if store is not None else {})

    def find(self, cfg: Any, preferred: Iterable[str] = ()) -> Stored | None:
        """The stored trial of cell config `cfg` (unresolved, as the spec writes it): `preferred` hashes
        first (the experiment's own sweep), then any."""
        wanted = _options(cfg)
        candidates = [s for s in self.by_key.get(key_of(cfg), []) if _resolves(wanted, s.task_options)]
        preferred = set(preferred)
        candidates.sort(key=lambda s: (s.config_hash not in preferred, s.config_hash))
        return candidates[0] if candidates else None


def key_of(cfg: Any) -> tuple[str, str]:
    identity = cfg.identity()
    identity.pop(cfg.task, None)
    return cfg.task, json.dumps(identity, sort_keys=True, separators=(",", ":"))


def _options(cfg: Any) -> dict[str, Any]:
    return json.loads(cfg.record_json()).get(cfg.task) or {}


def _resolves(wanted: dict[str, Any], stored: dict[str, Any]) -> bool:
    """Whether `stored` task options are a resolution of `wanted`: equal wherever `wanted` is concrete."""
    return all(stored.get(k, v) == v for k, v in wanted.items() if v not in UNRESOLVED)  # absent: predates the option
