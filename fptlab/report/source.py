"""Where a report's numbers come from: the sweep spec a table reads (its cells, matched to the trials
the store recorded when they were swept: `fptlab.report.membership`) and one snapshot of the store for
all those hashes.

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
from fptlab.store.models import DONE

OFFLINE_DIR = "offline"


@dataclass(frozen=True)
class SpecCell:
    hash: str
    labels: dict[str, Any]
    values: dict[str, Any]  # flattened resolved config ("lr", "model.depth", "listops.source", ...)
    fixed: Any = None  # a tuned spec's cell: the tuned key's value without tuning (`fptlab.sweep.grid.Spec.fixed`)

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
    unresolved: list[str] = field(default_factory=list)  # cells never swept that cannot resolve their data source here
    notes: list[str] = field(default_factory=list)  # what a table reading these cells should say (a changed spec)
    tune: Any = None  # a tuned spec's [tune] declaration (`fptlab.sweep.tuning.TuneDecl`)

    def select(self, where: Mapping[str, Any]) -> list[SpecCell]:
        return [c for c in self.cells if all(_same(c.get(k), v) for k, v in where.items())]

    def fill_command(self, db_url: str | None) -> str:
        target = self.path or f"experiments/{OFFLINE_DIR + '/' if self.offline else ''}{self.name}.toml"
        prefix = "FPTLAB_OFFLINE=1 " if self.offline else ""
        from fptlab.store.urls import shown_url

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


def load_cells(name: str, *, offline: bool, folder: Path | None, store: Any = None, data_dir: Path | None = None,
               index: Any = None) -> SpecCells:
    """The cells of spec `name` and the stored trials that are them (`fptlab.report.membership`): what
    was swept comes from the database (the spec text it recorded, the configs resolved at sweep time);
    the spec on disk (experiments/[offline/]NAME.toml) adds the cells never swept, which are missing
    (their hash is resolved here, with `data_dir`, only to print them). When the two specs differ the
    result says so once. `index`: a `StoredIndex` shared by several specs of one report."""
    from fptlab.report.membership import StoredIndex
    from fptlab.sweep import load_spec
    from fptlab.sweep.grid import spec_from_dict

    path = (folder / OFFLINE_DIR / f"{name}.toml" if offline else folder / f"{name}.toml") if folder else None
    on_disk = load_spec(path) if path is not None and (path.exists() or path.is_symlink()) else None
    experiment = _experiment_name(name, offline)
    text = store.experiment_spec(experiment) if store is not None else None
    swept, problem = None, None
    if text is not None:
        try:
            swept = spec_from_dict(_stored_spec(text, name), origin=f"database:{experiment}")
        except FptlabError as e:
            if on_disk is None:
                raise
            problem = f"The database's spec of '{experiment}' cannot be read ({e}); its cells are matched from {path} instead."
    if on_disk is None and swept is None:
        where = str(path) if path else "no experiments/ folder here (use --experiments DIR)"
        raise SpecMissing(f"Spec '{name}' not found: {where}, and the database holds no sweep of it.")
    index = index if index is not None else StoredIndex.of(store)
    linked = store.experiment_hashes(experiment) if swept is not None else set()
    out = SpecCells(name, str(path) if on_disk is not None else None, offline, [], (swept or on_disk).hash,
                    tune=(swept or on_disk).tune)
    if problem:
        out.notes.append(problem)
    seen: set[str] = set()
    for spec in (s for s in (swept, on_disk) if s is not None):
        for cell in spec.cells:
            _add_cell(out, cell, index, linked, data_dir, seen, spec.fixed.get(cell.hash))
    if swept is not None and on_disk is not None and swept.hash != on_disk.hash:
        out.notes.append(f"{path} differs from the spec swept into the database as '{experiment}' (spec hash {swept.hash}, "
                         f"the file's {on_disk.hash}): the table shows what was swept; cells only in the file are listed as "
                         "not run.")
    return out


def _add_cell(out: SpecCells, cell: Any, index: Any, linked: set[str], data_dir: Path | None, seen: set[str],
              fixed: Any = None) -> None:
    """One spec cell: its stored trial (values = the config as swept), else its config as resolved here."""
    from fptlab.report.membership import key_of

    found = index.find(cell.config, linked)
    if found is not None:
        config_hash, values = found.config_hash, flatten(found.config)
    else:
        cfg = _resolved_here(cell, data_dir, out)
        config_hash, values = cfg.hash, flatten(json.loads(cfg.record_json()))
    identity = f"{config_hash}|{key_of(cell.config)}"
    if config_hash in seen or identity in seen:
        return
    seen.update((config_hash, identity))
    out.cells.append(SpecCell(config_hash, dict(cell.labels), values, fixed))


def _resolved_here(cell: Any, data_dir: Path | None, out: SpecCells) -> Any:
    """A cell never swept: its config resolved on this machine (for its hash and fill command), or, when an
    "auto" source finds no data here, the spec's own config (as the sweep's dry run keeps it)."""
    from fptlab.errors import DataNotFoundError
    from fptlab.plan import resolve_config

    try:
        return resolve_config(cell.config, data_dir)
    except DataNotFoundError:
        out.unresolved.append(cell.label)
        return cell.config


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
        finished = [h for h, s in states.items() if s["status"] in DONE]
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
