"""`fptlab sweep`: expand a spec, resolve its cells here and check that each can run here (data,
packages, pretrained weights), register them in the store, run what is not finished."""

from __future__ import annotations

import signal
import socket
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fptlab.errors import DataNotFoundError, FptlabError, FptlabWarning
from fptlab.plan import resolve_here
from fptlab.store import DatabaseFileGone, StoreError, new_owner_id
from fptlab.store.models import DONE
from fptlab.sweep.drivers import owner_is_dead_here
from fptlab.sweep.grid import Cell
from fptlab.sweep.options import SweepOptions
from fptlab.sweep.ray_setup import init_ray
from fptlab.tasks.base import Missing


@dataclass
class SweepOutcome:
    cells: int
    skipped: int  # already finished before this sweep
    ran: dict[str, str]  # config hash -> final status of the trials this sweep ran
    interrupted: bool = False
    signal: int | None = None  # the signal that stopped it (SIGTERM), if not Ctrl-C


@dataclass
class PreparedCells:
    """A spec's cells with their configs resolved here, and what this machine lacks to run each."""

    cells: list[Cell]
    missing: dict[str, tuple[Missing, ...]] = field(default_factory=dict)  # config hash -> what is not here

    def missing_for(self, cell: Cell) -> tuple[Missing, ...]:
        return self.missing.get(cell.hash, ())

    def reasons(self) -> list[Missing]:
        """Every distinct thing missing, in cell order."""
        return list(dict.fromkeys(m for cell in self.cells for m in self.missing_for(cell)))

    def require_runnable(self, origin: str) -> list[Cell]:
        """The cells, if every one can run here; else one DataNotFoundError naming what is missing."""
        if not self.missing:
            return self.cells
        listed = "".join(f"\n  - {what}" for what in dict.fromkeys(m.what for m in self.reasons()))
        raise DataNotFoundError(
            f"{origin}: {len(self.missing)} of {len(self.cells)} cells cannot run here (data or weights missing):{listed}\n"
            "Nothing was run or written. Run the same command with --dry-run to list those cells and how to get what they need."
        )


def prepare_cells(spec: Any, data_dir: Any) -> PreparedCells:
    """Resolve every cell's config here (data sources), so hashes name what will really run, and find
    what each cell lacks here (`fptlab.plan.missing_here`). A cell whose data cannot be found keeps its
    unresolved config rather than stopping the others. Cells that resolve to the same config run once."""
    out: dict[str, Cell] = {}
    missing: dict[str, tuple[Missing, ...]] = {}
    for cell in spec.cells:
        try:
            cfg, lacks = resolve_here(cell.config, data_dir)
        except FptlabError as e:
            raise type(e)(f"{spec.origin}: cell {cell.label}: {e}") from None
        if cfg.hash not in out:
            out[cfg.hash] = Cell(cfg, dict(cell.labels))
            if lacks:
                missing[cfg.hash] = lacks
    return PreparedCells(list(out.values()), missing)


def register_cells(store: Any, spec: Any, cells: list[Cell]) -> None:
    _warn_if_shrinking(store, spec, cells)
    experiment_id = store.upsert_experiment(spec.name, spec.description, spec.text, spec.hash)
    store.add_trials(experiment_id, [c.config for c in cells])


def _warn_if_shrinking(store: Any, spec: Any, cells: list[Cell]) -> None:
    """A spec that replaces the experiment's stored one while leaving out cells swept before (an axis
    emptied by mistake, say) says so: the report of that experiment reads the new spec."""
    import warnings

    from fptlab.errors import FptlabWarning

    stored = store.experiment_spec(spec.name)
    if stored is None or stored == spec.text:
        return
    swept = {t["config_hash"] for t in store.trials(experiment=spec.name)}
    dropped = swept - {c.hash for c in cells}
    if dropped:
        warnings.warn(
            f"experiment '{spec.name}': this spec leaves out {len(dropped)} of the {len(swept)} cells swept before under this "
            f"name; it replaces the stored spec, so reports of '{spec.name}' show its {len(cells)} cells. The left-out "
            "trials and their results stay in the database. Give the spec another [experiment] name to keep both.",
            FptlabWarning, stacklevel=2,
        )


def reclaim_dead_local_drivers(store: Any) -> int:
    """Trials left `running` by a driver on this host whose process is gone: hand them back now."""
    owners = {t["owner"] for t in store.trials(status="running") if owner_is_dead_here(t.get("owner"))}
    for owner in owners:
        store.release(owner, "interrupted")
    return len(owners)


def run_sweep(
    spec: Any, store: Any, opts: SweepOptions, *, cells: list[Cell] | None = None, show_progress: bool = True,
    retry_failed: bool = False,
) -> SweepOutcome:
    """Register the spec's cells and run what is not finished. Nothing is written to the database
    before Ray is up and a trial is known to fit it: a sweep that cannot run leaves the database as
    it was (a missing one stays missing). `retry_failed`: failed cells get a fresh set of attempts."""
    from fptlab.sweep.view import SweepView

    cells = cells if cells is not None else prepare_cells(spec, opts.data_dir).require_runnable(spec.origin)
    known = known_statuses(store, [c.hash for c in cells])  # read only
    ray = init_ray(opts) if any(known.get(c.hash) not in DONE for c in cells) else None
    try:
        store.ensure_schema(create_if_empty=True)
        if retry_failed:
            store.requeue([c.hash for c in cells], ("failed",))
        register_cells(store, spec, cells)
        reclaim_dead_local_drivers(store)
        statuses = store.statuses([c.hash for c in cells])
        todo = [c for c in cells if statuses.get(c.hash) not in DONE]
        outcome = SweepOutcome(cells=len(cells), skipped=len(cells) - len(todo), ran={})
        if not todo or ray is None:  # (None: every cell was finished a moment ago, and still is)
            return outcome
        view = SweepView(len(cells), outcome.skipped, enabled=show_progress)
        try:
            halving = None
            if getattr(spec, "tune", None) is not None and spec.tune.halving is not None:
                from fptlab.sweep.halving import arm_rungs, fixed_by_arm

                # every cell of the arms, seeded from what is stored
                halving = arm_rungs(spec.tune, cells, store, fixed_by_arm(spec.tune, spec))
            with _sigterm_as_interrupt() as received:
                outcome.ran, outcome.interrupted = _run_on_ray(ray, store, todo, opts, view, halving)
            outcome.signal = received[0] if received else None
        finally:
            view.close()
        return outcome
    finally:
        if ray is not None:
            ray.shutdown()


@contextmanager
def _sigterm_as_interrupt() -> Iterator[list[int]]:
    """SIGTERM (a scheduler's kill, `docker stop`) ends the sweep the way Ctrl-C does: Tune stops its
    trials, running ones are marked `interrupted`, the summary prints. (Ray's own handler, installed
    by ray.init, raises SystemExit wherever the driver happens to be, which skipped the summary and
    once in six chaos runs aborted the interpreter on the way out.) The list receives the signal."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        received.append(signum)
        handler = signal.getsignal(signal.SIGINT)  # Tune's graceful stop while it runs; a 2nd time: KeyboardInterrupt
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def known_statuses(store: Any, hashes: list[str]) -> dict[str, str]:
    """The statuses the database holds for `hashes`, read without writing anything: a database that
    does not exist yet, or has no fptlab tables, knows none; one at another schema version is an
    error now (StoreError), before Ray starts."""
    if store.is_new():
        return {}  # connecting would create (or stamp) it; one with stray tables fails in ensure_schema
    store.check()
    return store.statuses(hashes)


def _run_on_ray(ray: Any, store: Any, todo: list[Cell], opts: SweepOptions, view: Any,
                halving: Any = None) -> tuple[dict[str, str], bool]:
    owner, host = new_owner_id(), socket.gethostname()
    from ray import tune

    from fptlab.sweep.trainable import fpt_trainable
    from fptlab.sweep.tune_glue import ClaimingSearcher, LostTrialStopper, StoreCallback

    callback = StoreCallback(store, owner, opts, view, halving)
    # Halving stops a trial, and a pack is one trial: a tuned sweep with halving trains its cells alone.
    searcher = ClaimingSearcher(store, todo, owner, host, opts, view, pack=opts.pack if halving is None else 1)
    scheduler = None
    if halving is not None:
        from fptlab.sweep.halving import ArmHalving

        scheduler = ArmHalving(halving)
    trainable = tune.with_resources(fpt_trainable, {"cpu": opts.cpus_per_trial, "gpu": opts.gpus_per_trial})
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher, num_samples=len(todo), scheduler=scheduler,
            max_concurrent_trials=opts.max_concurrent, reuse_actors=True,  # keeps torch imported between trials
        ),
        run_config=tune.RunConfig(
            name=f"sweep-{owner.rsplit(':', 1)[-1]}", storage_path=str((opts.storage / "tune").resolve()),
            failure_config=tune.FailureConfig(max_failures=opts.retries), callbacks=[callback], verbose=0,
            stop=LostTrialStopper(callback),
        ),
    )
    interrupted = False
    try:
        tuner.fit()
    except KeyboardInterrupt:
        interrupted = True
    except (EOFError, OSError) as e:
        # Tune's own files under --storage (its experiment state, a trial's error.pkl) could not be
        # written or read back, e.g. on a full disk: the trials have ended and the database, not
        # Tune's result grid, holds what happened to each, so report that rather than abort.
        warnings.warn(f"Ray Tune could not write or read its own files under {opts.storage}: {type(e).__name__}: {e}. "
                      "Each cell's outcome is in the database (see the summary below).", FptlabWarning, stacklevel=1)
    finally:
        # Trials this driver still holds end 'interrupted'. After a database outage longer than the
        # budget, this one call gets a fresh budget: trials end 'interrupted' if the database returns
        # within it; if not, the error says how the next sweep hands them back.
        try:
            released = store.release(owner, "interrupted", outage_seconds=store.outage_seconds)
        except DatabaseFileGone:
            raise  # there is nothing left to hand back
        except StoreError as e:
            raise StoreError(
                f"{e} The trials this sweep was running are left 'running': the next `fptlab sweep` on this host "
                "hands them back at once; a sweep on another host, after --lease seconds."
            ) from None
        interrupted = interrupted or bool(released)
    return {**searcher.refused, **callback.finished}, interrupted
