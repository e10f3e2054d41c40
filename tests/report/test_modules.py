"""Contracts every analysis module meets (parametrized over the catalog, so a new table is tested by
being added): its rows and columns select the spec's trials, every trial of the spec lands in some
cell, and it renders in every format from a small database built through the store API, its paper
setting and (where one exists) its offline counterpart."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from fptlab.report import catalog, render
from fptlab.report.declare import Table
from fptlab.report.engine import ReportOptions, build, make_report  # noqa: I001
from fptlab.report.html import page
from fptlab.report.source import Snapshot, load_cells
from fptlab.store import Store
from fptlab.sweep.grid import SOURCE
from tests.report.builders import record, register
from tests.report.test_engine import assert_balanced_html

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
ITEMS = catalog.items()
TABLES = [t for t in ITEMS.values() if isinstance(t, Table) and t.spec_name is not None]
OFFLINE = [t for t in TABLES if (EXPERIMENTS / "offline" / f"{t.spec_name}.toml").is_file()]


def _grid_hashes(cells: object) -> set[str]:
    return {c.hash for c in cells.cells if SOURCE not in c.labels}


SETTINGS = ([pytest.param(t, False, id=f"{t.key}-paper") for t in TABLES if not t.offline_only]
            + [pytest.param(t, True, id=f"{t.key}-offline") for t in OFFLINE])


def _spec_path(table: Table) -> Path:
    return EXPERIMENTS / ("offline" if table.offline_only else "") / f"{table.spec_name}.toml"


@pytest.mark.parametrize(("table", "offline"), SETTINGS)
def test_cells_select_the_specs_trials(table: Table, offline: bool, data_dir: Path) -> None:
    cells = load_cells(table.spec_name, offline=offline, folder=EXPERIMENTS, data_dir=data_dir)
    result = build(table, cells, Snapshot({}, {}))
    used: set[str] = set()
    for (r, c), cell in result.cells.items():
        used.update(cell.hashes)
        needs_runs = cell.paper is not None and not cell.literature and cell.state != "derived"
        if needs_runs and not offline:
            assert cell.hashes, f"{table.key}: cell ({r}, {c}) has a paper number but selects no trials"
    assert used, f"{table.key}: no cell selects any trial"
    orphans = _grid_hashes(cells) - used
    assert not orphans, f"{table.key}: {len(orphans)} trial(s) of the spec fall in no cell"


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.key)
def test_renders_from_a_small_database(table: Table, tmp_path: Path, data_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    store = Store(url)
    store.ensure_schema()
    cells = load_cells(table.spec_name, offline=table.offline_only, folder=EXPERIMENTS, data_dir=data_dir)
    from fptlab.sweep import load_spec
    from fptlab.sweep.run import prepare_cells

    prepared = prepare_cells(load_spec(_spec_path(table)), data_dir)
    register(store, table.spec_name, [c.config for c in prepared.cells])
    rng = random.Random(table.key)
    hashes = sorted(_grid_hashes(cells))
    for h in hashes[: max(1, len(hashes) * 2 // 3)]:  # two thirds finished, the rest left queued
        top = rng.uniform(0.2, 1.0)
        curve = [(s, top * min(1.0, s / rng.choice([200, 400, 800]))) for s in range(100, 1001, 100)]
        record(store, h, accuracy=top, curve=curve,
               results={"trainable_params": rng.randint(10**4, 10**6), "total_params": 10**8, "wall_seconds": rng.uniform(5, 50)})
    [out] = make_report([table.key], store, ReportOptions(db_url=url, experiments=EXPERIMENTS, curves=True, data_dir=data_dir))
    result = out.result
    assert any(c.state in ("done", "partial") for c in result.cells.values())
    assert result.unfinished and result.fill and result.fill[0].removeprefix("FPTLAB_OFFLINE=1 ").startswith("fptlab sweep ")
    assert render.to_markdown(result).count("\n|") >= len(result.table.rows) + 1
    assert len(render.to_csv([result]).splitlines()) == 1 + len(result.table.rows) * len(table.columns)
    assert r"\begin{tabular}" in render.to_latex(result)
    assert_balanced_html(page([out], title="t", subtitle="s", offline=False))
