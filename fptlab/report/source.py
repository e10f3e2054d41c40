"""Where a report's numbers come from: the sweep spec a table reads (its cells, resolved to config
hashes exactly as `fptlab sweep` registers them) and one snapshot of the store for all those hashes.

The store is read in bulk, never per cell: one query (per chunk of hashes) for the trials' states,
one for their final results, and curves only for tables that need them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fptlab.config import flatten
from fptlab.errors import FptlabError
from fptlab.report.declare import AnyOf

OFFLINE_DIR = "offline"


@dataclass(frozen=True)
class SpecCell:
    hash: str
    labels: dict[str, Any]
    values: dict[str, Any]  # flattened resolved config ("lr", "model.depth", "listops.source", ...)

    def get(self, key: str) -> Any:
        """An axis label if the cell has it, else a config value (dotted keys for sections)."""
        return self.labels[key] if key in self.labels else self.values.get(key, _ABSENT)


_ABSENT = object()


@dataclass
class SpecCells:
    name: str
    path: str | None  # the spec file, None when read back from the database
    offline: bool
    cells: list[SpecCell]
    spec_hash: str = ""
    unresolved: list[str] = field(default_factory=list)  # cells kept unresolved here, with why

    def select(self, where: Mapping[str, Any]) -> list[SpecCell]:
        return [c for c in self.cells if all(_same(c.get(k), v) for k, v in where.items())]

    def fill_command(self, db_url: str | None) -> str:
        target = self.path or f"experiments/{OFFLINE_DIR + '/' if self.offline else ''}{self.name}.toml"
        prefix = "FPTLAB_OFFLINE=1 " if self.offline else ""
        from fptlab.store.engine import shown_url

        db = f" --db {shown_url(db_url)}" if db_url else ""  # a password is masked: it never reaches a report
        return f"{prefix}fptlab sweep {target}{db}"


def _same(actual: Any, wanted: Any) -> bool:
    if actual is _ABSENT:
        return False
    if isinstance(wanted, AnyOf):
        return any(_same(actual, w) for w in wanted)
    norm = lambda v: tuple(v) if isinstance(v, list) else v  # noqa: E731
    return norm(actual) == norm(wanted)


def experiments_dir(explicit: Path | None = None) -> Path | None:
    """--experiments, else $FPTLAB_EXPERIMENTS, else ./experiments, else the checkout's experiments/."""
    if explicit is not None:
        return explicit
    env = os.environ.get("FPTLAB_EXPERIMENTS")
    if env:
        return Path(env)
    if Path("experiments").is_dir():
        return Path("experiments")
    from fptlab.report.catalog import analysis_root

    root = analysis_root()
    candidate = root.parent / "experiments" if root is not None else None
    return candidate if candidate is not None and candidate.is_dir() else None


def load_cells(name: str, *, offline: bool, folder: Path | None, store: Any = None, data_dir: Path | None = None) -> SpecCells:
    """The cells of spec `name` (experiments/[offline/]NAME.toml), each resolved to the hash a sweep
    registers. Falls back to the spec text the database recorded when the file is not here."""
    from fptlab.sweep import load_spec
    from fptlab.sweep.grid import spec_from_dict

    path = (folder / OFFLINE_DIR / f"{name}.toml" if offline else folder / f"{name}.toml") if folder else None
    if path is not None and (path.exists() or path.is_symlink()):
        spec = load_spec(path)  # a path that is there but is no spec file is an error, not "not found"
        shown: str | None = str(path)
    else:
        text = store.experiment_spec(_experiment_name(name, offline)) if store is not None else None
        if text is None:
            where = str(path) if path else "no experiments/ folder here (use --experiments DIR)"
            raise SpecMissing(f"Spec '{name}' not found: {where}, and the database holds no sweep of it.")
        spec = spec_from_dict(_stored_spec(text, name), origin=f"database:{_experiment_name(name, offline)}")
        shown = None
    cells, unresolved = _resolve(spec, data_dir)
    return SpecCells(spec.name if shown is None else name, shown, offline, cells, spec.hash, unresolved)


class SpecMissing(FptlabError):
    """Neither the experiments folder nor the database has the spec: its cells are simply missing."""


def _stored_spec(text: Any, name: str) -> dict[str, Any]:
    """The spec a database recorded for experiment `name`: untrusted text, checked to be a JSON object
    (then checked as a spec from disk is: `spec_from_dict`)."""
    from fptlab.escape import quoted

    try:
        raw = json.loads(text) if isinstance(text, str) else None
    except ValueError as e:
        raise FptlabError(f"The database's spec of experiment '{name}' is not JSON ({e}); it was not written by fptlab. "
                          f"Sweep the spec from disk again (fptlab sweep experiments/{name}.toml) to replace it.") from None
    if not isinstance(raw, dict):
        raise FptlabError(f"The database's spec of experiment '{name}' is {quoted(raw)}, not a JSON object of spec tables; "
                          f"it was not written by fptlab. Sweep the spec from disk again to replace it.")
    return raw


def _experiment_name(name: str, offline: bool) -> str:
    return f"{name}-offline" if offline else name


def _resolve(spec: Any, data_dir: Path | None) -> tuple[list[SpecCell], list[str]]:
    """Each cell's config as `fptlab sweep` registers it: resolved, or, when an "auto" source finds no
    data here, the spec's own config (as `fptlab.plan.resolve_here` and the sweep's dry run keep it)."""
    from fptlab.errors import DataNotFoundError
    from fptlab.plan import resolve_config

    out, unresolved, seen = [], [], set()
    for cell in spec.cells:
        try:
            cfg = resolve_config(cell.config, data_dir)
        except DataNotFoundError:
            cfg = cell.config
            unresolved.append(cell.label)
        if cfg.hash in seen:
            continue
        seen.add(cfg.hash)
        out.append(SpecCell(cfg.hash, dict(cell.labels), flatten(json.loads(cfg.record_json()))))
    return out, unresolved


def _known_statuses(states: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The trials whose status is one the schema allows; any other (a row written by something else
    than fptlab) is left out with a warning naming the trial, and its cell counts it as missing."""
    import warnings

    from fptlab.errors import FptlabWarning
    from fptlab.escape import quoted
    from fptlab.store.models import STATUSES

    out = {}
    for h, state in states.items():
        if state.get("status") in STATUSES:
            out[h] = state
        else:
            warnings.warn(f"trial {h} has status {quoted(state.get('status'))}, not one of {', '.join(STATUSES)}; the report "
                          "counts it as missing.", FptlabWarning, stacklevel=2)
    return out


@dataclass
class Snapshot:
    """The store's state for a set of trials, read once: {hash: trial columns} and {hash: results}."""

    states: dict[str, dict[str, Any]]
    results: dict[str, dict[str, float]]
    store: Any = None
    _curves: dict[tuple[str, str], Any] = field(default_factory=dict)

    @classmethod
    def read(cls, store: Any, hashes: Iterable[str]) -> Snapshot:
        wanted = sorted(set(hashes))
        if store is None or not wanted:
            return cls({}, {}, store)
        states = _known_statuses(store.trial_states(wanted))
        finished = [h for h, s in states.items() if s["status"] in ("completed", "diverged")]
        return cls(states, store.results(finished) if finished else {}, store)

    def curves(self, hashes: Iterable[str], key: str = "test_accuracy") -> dict[str, Any]:
        """{hash: frame(step, value)} for the hashes that have a curve; read once per (hash, key)."""
        import pandas as pd

        todo = [h for h in set(hashes) if (h, key) not in self._curves and h in self.states]
        if todo and self.store is not None:
            rows = self.store.curves(todo, [key])
            frame = pd.DataFrame(rows, columns=["config_hash", "key", "step", "value"])
            groups = dict(tuple(frame.groupby("config_hash"))) if not frame.empty else {}
            for h in todo:
                group = groups.get(h)
                self._curves[(h, key)] = None if group is None else group[["step", "value"]].reset_index(drop=True)
        return {h: self._curves.get((h, key)) for h in hashes if self._curves.get((h, key)) is not None}
