"""`fptlab sweep`: expand a spec, register its cells in the store, run what is not finished."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from fptlab.errors import FptlabError
from fptlab.plan import resolve_config
from fptlab.store import new_owner_id
from fptlab.sweep.executor import FINISHED_STATUSES, SweepOptions, init_ray, owner_is_dead_here
from fptlab.sweep.grid import Cell


@dataclass
class SweepOutcome:
    cells: int
    skipped: int  # already finished before this sweep
    ran: dict[str, str]  # config hash -> final status of the trials this sweep ran
    interrupted: bool = False


def prepare_cells(spec: Any, data_dir: Any) -> list[Cell]:
    """Resolve every cell's config here (data sources), so hashes name what will really run. Cells
    that resolve to the same config are run once."""
    out: dict[str, Cell] = {}
    for cell in spec.cells:
        try:
            cfg = resolve_config(cell.config, data_dir)
        except FptlabError as e:
            raise type(e)(f"{spec.origin}: cell {cell.label}: {e}") from None
        out.setdefault(cfg.hash, Cell(cfg, dict(cell.labels)))
    return list(out.values())


def register(store: Any, spec: Any, cells: list[Cell]) -> None:
    experiment_id = store.upsert_experiment(spec.name, spec.description, spec.text, spec.hash)
    store.add_trials(experiment_id, [c.config for c in cells])


def reclaim_dead_local_drivers(store: Any) -> int:
    """Trials left `running` by a driver on this host whose process is gone: hand them back now."""
    owners = {t["owner"] for t in store.trials(status="running") if owner_is_dead_here(t.get("owner"))}
    for owner in owners:
        store.release(owner, "interrupted")
    return len(owners)


def run_sweep(spec: Any, store: Any, opts: SweepOptions, *, cells: list[Cell] | None = None, show_progress: bool = True) -> SweepOutcome:
    from fptlab.sweep.view import SweepView

    cells = cells if cells is not None else prepare_cells(spec, opts.data_dir)
    register(store, spec, cells)
    reclaim_dead_local_drivers(store)
    statuses = store.statuses([c.hash for c in cells])
    todo = [c for c in cells if statuses.get(c.hash) not in FINISHED_STATUSES]
    outcome = SweepOutcome(cells=len(cells), skipped=len(cells) - len(todo), ran={})
    if not todo:
        return outcome
    view = SweepView(len(cells), outcome.skipped, enabled=show_progress)
    try:
        outcome.ran, outcome.interrupted = _run_on_ray(store, todo, opts, view)
    finally:
        view.close()
    return outcome


def _run_on_ray(store: Any, todo: list[Cell], opts: SweepOptions, view: Any) -> tuple[dict[str, str], bool]:
    owner, host = new_owner_id(), socket.gethostname()
    ray = init_ray(opts)
    from ray import tune

    from fptlab.sweep.trainable import fpt_trainable
    from fptlab.sweep.tune_glue import ClaimingSearcher, StoreCallback

    callback = StoreCallback(store, owner, opts, view)
    searcher = ClaimingSearcher(store, todo, owner, host, opts, view)
    trainable = tune.with_resources(fpt_trainable, {"cpu": opts.cpus_per_trial, "gpu": opts.gpus_per_trial})
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher, num_samples=len(todo),
            max_concurrent_trials=opts.max_concurrent, reuse_actors=True,  # keeps torch imported between trials
        ),
        run_config=tune.RunConfig(
            name=f"sweep-{owner.rsplit(':', 1)[-1]}", storage_path=str((opts.storage / "tune").resolve()),
            failure_config=tune.FailureConfig(max_failures=opts.retries), callbacks=[callback], verbose=0,
        ),
    )
    interrupted = False
    try:
        tuner.fit()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        released = store.release(owner, "interrupted")
        interrupted = interrupted or bool(released)
        ray.shutdown()
    return {**searcher.refused, **callback.finished}, interrupted
