"""`fptlab report`'s engine: pick tables and figures from the catalog, load their specs' cells, read
the store once for all of them, build each TableResult and draw each figure.

An empty or absent database is not an error: every cell is then missing and each table says which
command fills it. A table whose spec has no offline counterpart says so under --offline.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fptlab.errors import FptlabError, FptlabWarning
from fptlab.report import catalog
from fptlab.report.build import TableResult, build_table
from fptlab.report.declare import Figure, Table
from fptlab.report.source import Snapshot, SpecCells, SpecMissing, experiments_dir, load_cells
from fptlab.store.models import DONE


@dataclass
class ReportOptions:
    db_url: str | None = None  # shown in fill commands when not the default
    offline: bool = False  # read experiments/offline/<spec>.toml, the laptop-sized counterparts
    experiments: Path | None = None
    data_dir: Path | None = None
    curves: bool = False  # convergence curves for every table (Table 6 and the quickstart always)
    plots: bool = True  # draw figures at all (terminal tables skip them)
    storage: Path = Path("fptlab-runs")  # the sweep's --storage: artifact locations are relative to it


@dataclass
class Rendered:
    """One table or figure of a report: its result (tables), its drawn figures and notes."""

    key: str
    kind: str
    title: str
    result: TableResult | None = None
    figures: list[tuple[str, Any]] = field(default_factory=list)  # (caption, matplotlib Figure)
    notes: list[str] = field(default_factory=list)
    provenance: str = ""
    error: str | None = None  # its spec could not be read: the report is written, and the command fails


@dataclass
class FigureContext:
    """What a figure module's draw() gets: its spec's cells, the store snapshot, and helpers."""

    item: Figure
    cells: SpecCells | None
    snap: Snapshot
    options: ReportOptions
    tables: dict[str, TableResult]
    store: Any = None
    notes: list[str] = field(default_factory=list)
    cache: dict = field(default_factory=dict)  # the report's spec cells and stored-trial index

    def select(self, where: dict[str, Any]) -> list[str]:
        return [c.hash for c in self.cells.select(where)] if self.cells is not None else []

    def finished(self, hashes: list[str]) -> list[str]:
        return [h for h in hashes if self.snap.states.get(h, {}).get("status") in DONE]

    def artifacts(self, config_hash: str, kind: str) -> list[dict[str, Any]]:
        """The trial's artifact records of `kind`, oldest first, each with `path`: its file resolved inside
        the storage folder (`--storage`), or None when it is not usable here. A record whose location is
        absolute, climbs out (`..`), leads out through a symlink or is not a regular file is refused
        with a warning; a file not there gets a note. Either way its `path` is None and nothing is
        opened."""
        from fptlab.files import NotThere, OutsideError, confined

        found = self.store.artifacts(config_hash, kind) if self.store is not None else []
        out = []
        for artifact in found:
            path = None
            try:
                path = confined(self.options.storage, str(artifact["location"]))
            except NotThere as e:
                self.notes.append(f"trial {config_hash}: its {kind} file is not reachable here: {e}.")
            except OutsideError as e:
                message = f"trial {config_hash}: its {kind} record is refused and not opened: {e}."
                warnings.warn(message, FptlabWarning, stacklevel=2)
                self.notes.append(message)
            out.append({**artifact, "path": path})
        return out

    def table(self, key: str) -> TableResult | None:
        """Another table's result in this report (e.g. Figure 1 draws Table 1's cells)."""
        if key not in self.tables:
            item = catalog.get(key)
            cells = _cells(item, self.options, self.store, self.cache)
            snap = Snapshot.read(self.store, [c.hash for c in cells.cells]) if cells is not None else self.snap
            self.tables[key] = build(item, cells, snap, db_url=self.options.db_url)
        return self.tables[key]


def select_keys(tables: list[str], figures: list[str], names: list[str], everything: bool) -> list[str]:
    keys = [*(f"table{n}" for n in tables), *(f"figure{n}" for n in figures), *names]
    available = catalog.items()
    if everything:
        keys = list(available)
    if not keys:
        raise FptlabError("Say what to report: --table N, --figure N, a name (e.g. quickstart), or --all. "
                          f"Available: {', '.join(available)}.")
    for key in keys:
        catalog.get(key)  # unknown names fail here, with a suggestion
    return list(dict.fromkeys(keys))


def make_report(keys: list[str], store: Any, options: ReportOptions) -> list[Rendered]:
    items = [catalog.get(k) for k in keys]
    cache: dict[Any, SpecCells] = {}
    per_item: dict[str, SpecCells | None] = {}
    notes: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    for item in items:
        notes[item.key] = []
        try:
            per_item[item.key] = _cells(item, options, store, cache)
        except SpecMissing as e:
            notes[item.key].append(str(e))
            per_item[item.key] = None
        except FptlabError as e:
            notes[item.key].append(f"Its spec cannot be read: {e}")
            errors[item.key] = str(e)
            per_item[item.key] = None
    snap = Snapshot.read(store, [c.hash for key, cells in cache.items() if key != INDEX for c in cells.cells])
    tables: dict[str, TableResult] = {}
    out = []
    for item in items:
        cells = per_item[item.key]
        if isinstance(item, Table):
            out.append(_table(item, cells, snap, options, notes[item.key], tables))
        else:
            out.append(_figure(item, cells, snap, options, notes[item.key], tables, store, cache))
        out[-1].error = errors.get(item.key)
    return out


def _cells(item: Any, options: ReportOptions, store: Any, cache: dict) -> SpecCells | None:
    name = item.spec_name
    if name is None:
        return None
    if getattr(item, "offline_only", False) and not options.offline:
        from dataclasses import replace

        options = replace(options, offline=True)
    key = (name, options.offline)
    if key not in cache:
        from fptlab.report.membership import StoredIndex

        folder = experiments_dir(options.experiments)
        if options.offline and folder is not None and not (folder / "offline" / f"{name}.toml").is_file() and (
                store is None or store.experiment_spec(f"{name}-offline") is None):
            raise SpecMissing(f"{item.key} has no offline counterpart (experiments/offline/{name}.toml); run it without --offline.")
        if INDEX not in cache:  # the stored trials, read once per report
            cache[INDEX] = StoredIndex.of(store)
        cache[key] = load_cells(name, offline=options.offline, folder=folder, store=store, data_dir=options.data_dir,
                                index=cache[INDEX])
    return cache[key]


INDEX = "stored trials"  # the cache key of the report's StoredIndex


def _table(item: Table, cells: SpecCells | None, snap: Snapshot, options: ReportOptions, notes: list[str],
           tables: dict[str, TableResult]) -> Rendered:
    from fptlab.report.render import provenance_line

    if cells is None and item.spec_name is not None:
        return Rendered(item.key, "table", f"Table {item.number}: {item.title}", notes=notes)
    result = build(item, cells, snap, db_url=options.db_url)
    tables[item.key] = result
    rendered = Rendered(item.key, "table", result.title, result, notes=notes, provenance=provenance_line(result))
    if options.plots:
        from fptlab.report import plots

        rendered.figures.extend(plots.table_figures(result, snap, curves=options.curves or item.curves))
        if item.tuned:
            from fptlab.report.tuned import sensitivity_figures

            rendered.figures.extend(sensitivity_figures(result))
    return rendered


def build(item: Table, cells: SpecCells | None, snap: Snapshot, *, db_url: str | None = None) -> TableResult:
    """A table's result: a tuned comparison's (`fptlab.report.tuned`) or any other's (`build_table`)."""
    if item.tuned:
        from fptlab.report.tuned import build_tuned

        return build_tuned(item, cells, snap, db_url=db_url)
    return build_table(item, cells, snap, db_url=db_url)


def _figure(item: Figure, cells: SpecCells | None, snap: Snapshot, options: ReportOptions, notes: list[str],
            tables: dict[str, TableResult], store: Any, cache: dict) -> Rendered:
    title = f"Figure {item.number}: {item.title}"
    rendered = Rendered(item.key, "figure", title, notes=notes)
    if not options.plots:
        return rendered
    context = FigureContext(item, cells, snap, options, tables, store, cache=cache)
    rendered.figures = item.draw(context)
    rendered.notes.extend(context.notes)
    rendered.notes.extend(item.notes)
    if cells is not None:
        done = len(context.finished([c.hash for c in cells.cells]))
        rendered.provenance = f"spec {cells.path or cells.name} · {done}/{len(cells.cells)} trials finished"
        if done < len(cells.cells):
            rendered.notes.append(f"{len(cells.cells) - done} trial(s) not finished. Fill with: {cells.fill_command(options.db_url)}")
    return rendered


def report_for_spec(spec: Any, store: Any, console: Any = None) -> bool:
    """After `fptlab sweep SPEC`: print the report of every table that reads this spec (offline
    counterparts are named "<spec>-offline"). False when no analysis module reads it."""
    offline = spec.name.endswith("-offline")
    name = spec.name.removesuffix("-offline")
    keys = [k for k, item in catalog.items().items() if isinstance(item, Table) and item.spec_name == name]
    if not keys:
        return False
    folder = Path(spec.origin).parent
    if offline and folder.name == "offline":
        folder = folder.parent
    from fptlab.report.render import console_for, print_terminal

    console = console or console_for()
    for rendered in make_report(keys, store, ReportOptions(offline=offline, experiments=folder, plots=False)):
        if rendered.result is not None:
            print_terminal(rendered.result, console)
    return True


def figures_for_spec(spec: Any) -> list[str]:
    """The numbers of the paper figures drawn from this spec's runs."""
    name = spec.name.removesuffix("-offline")
    return [item.number for item in catalog.items().values() if isinstance(item, Figure) and item.spec_name == name]
