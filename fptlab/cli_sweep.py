"""Sweep and store commands: `fptlab sweep`, `status`, `trials`, `db upgrade|check`.
Registered on the main Typer app by fptlab.cli; heavy imports stay inside the commands."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from fptlab.cli_common import DbOpt, existing_store, required_store, say, user_errors
from fptlab.store.models import DONE

SpecArg = Annotated[Path, typer.Argument(help="Sweep spec (TOML), e.g. experiments/smoke.toml.")]


def sweep(
    spec: SpecArg,
    db: DbOpt = None,
    address: Annotated[str | None, typer.Option("--address", help="Join an existing Ray cluster (e.g. auto or HOST:6379) instead of embedded local Ray.")] = None,
    cpus_per_trial: Annotated[float, typer.Option("--cpus-per-trial", help="CPUs reserved per trial.")] = 1.0,
    gpus_per_trial: Annotated[float, typer.Option("--gpus-per-trial", help="GPUs per trial; fractions share a GPU (0.5 = two trials per GPU).")] = 0.0,
    max_concurrent: Annotated[int | None, typer.Option("--max-concurrent", help="At most this many trials at once (default: as resources allow).")] = None,
    retries: Annotated[int, typer.Option("--retries", help="Retry a failed trial up to N more times (resuming from its checkpoint).")] = 1,
    lease: Annotated[float, typer.Option("--lease", help="Seconds without a heartbeat after which a running trial counts as dead and is reclaimed.")] = 120.0,
    storage: Annotated[Path, typer.Option("--storage", help="Folder for trial folders (checkpoints, artifacts, saved bodies) and Ray Tune files; shared storage on a cluster.")] = Path("fptlab-runs"),
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Dataset folder (default: $FPTLAB_DATA or ~/.cache/fptlab/data).")] = None,
    num_cpus: Annotated[int | None, typer.Option("--num-cpus", help="CPUs for embedded Ray (default: all).")] = None,
    db_outage: Annotated[float | None, typer.Option("--db-outage", help="Seconds to wait for a lost database (server restart, network) before stopping (default: $FPTLAB_DB_OUTAGE_SECONDS, else 300).")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Give failed cells whose retries are used up a fresh set of attempts.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the cells, which are already done and which cannot run here (data or weights missing, and how to get them); run nothing, write nothing.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Live progress view on stderr.")] = True,
    pack: Annotated[int | None, typer.Option("--pack", help="Train up to K cells that share one frozen body as one trial (default: the spec's experiment.pack, else 1: no packing); --dry-run shows the packs.")] = None,
    tune_values: Annotated[str | None, typer.Option("--tune-values", help="A tuned spec: replace the candidates of its tune table with these comma-separated numbers (e.g. to widen a range whose edge the report flags).")] = None,
) -> None:
    """Run every cell of a TOML grid as Ray Tune trials, recording into the database. Re-running
    skips finished cells and retries failed ones; a grown spec runs only its new cells. If any cell
    cannot run here (its data or pretrained weights are missing), nothing runs: --dry-run lists them."""
    with user_errors():
        from fptlab.cli_checks import check_db, existing_folder_or_absent, spec_file, writable_folder
        from fptlab.sweep import load_spec
        from fptlab.sweep.options import SweepOptions, check_fits_here
        from fptlab.sweep.run import prepare_cells

        data_dir = data_dir.absolute() if data_dir else None  # Ray workers may run elsewhere
        opts = SweepOptions(
            address=address, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent,
            retries=retries, lease_seconds=lease, storage=storage.absolute(), data_dir=data_dir, num_cpus=num_cpus,
            pack=pack if pack is not None else 1,
        )
        opts.check()  # every option first: nothing below runs with a value that cannot work
        writable_folder("--storage", storage)
        if data_dir is not None:
            existing_folder_or_absent("--data-dir", data_dir)
        check_fits_here(opts)
        store = _sweep_store(db, db_outage)
        check_db(store.url, "read-optional" if dry_run else "write")
        spec_file(spec)
        loaded = load_spec(spec, tune_values=_numbers("--tune-values", tune_values))
        if pack is None and loaded.pack:
            from dataclasses import replace

            opts = replace(opts, pack=loaded.pack)
        prepared = prepare_cells(loaded, data_dir)  # before any database exists: a bad cell writes nothing
        if dry_run:
            _print_plan(loaded, prepared, db, opts.pack, "cuda" if opts.gpus_per_trial > 0 else "cpu")
            return
        cells = prepared.require_runnable(loaded.origin)  # nor does a cell whose data or weights are not here
        _run(loaded, cells, store, opts, progress, retry_failed)


def _numbers(option: str, text: str | None) -> list[float] | None:
    """"1e-4,3e-4,1e-3" -> [0.0001, 0.0003, 0.001]; the spec checks them as candidates."""
    from fptlab.errors import FptlabError

    if text is None:
        return None
    out = []
    for part in text.split(","):
        try:
            value = float(part.strip())
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise FptlabError(f"{option}: {part.strip()!r} is not a finite number; give comma-separated numbers, e.g. "
                              f"{option} 1e-4,3e-4,1e-3.")
        out.append(int(value) if value.is_integer() and "." not in part and "e" not in part.lower() else value)
    return out


def _sweep_store(db: str | None, outage: float | None) -> Any:
    import math

    from fptlab.errors import FptlabError
    from fptlab.store import Store

    if outage is not None and not (math.isfinite(outage) and outage >= 0):
        raise FptlabError(f"--db-outage must be a finite number of seconds >= 0 (0: stop at the first lost connection), got {outage:g}.")
    return Store(db, outage_seconds=outage)


def _run(spec: Any, cells: list, store: Any, opts: Any, progress: bool, retry_failed: bool) -> None:
    from fptlab.sweep.run import run_sweep

    outcome = run_sweep(spec, store, opts, cells=cells, show_progress=progress, retry_failed=retry_failed)
    typer.echo(f"sweep '{spec.name}': {outcome.cells} cells, {outcome.skipped} already done, {len(outcome.ran)} run now")
    _print_summary(store, spec, cells)
    if outcome.interrupted or outcome.signal:
        by = "terminated (SIGTERM)" if outcome.signal else "interrupted"
        typer.echo(f"{by}: running trials were marked 'interrupted'; run the same command again to resume them.", err=True)
        raise typer.Exit(128 + outcome.signal if outcome.signal else 130)
    from fptlab.sweep.drivers import ending

    end = ending(store, [c.hash for c in cells], opts.lease_seconds)
    if end.peers:
        say(
            f"{len(end.peers)} cell(s) are being run by another live driver ({', '.join(sorted(set(end.peers.values())))}); "
            f"they finish there: {', '.join(sorted(end.peers))}. `fptlab status {spec.origin}` shows their progress."
        )
    if end.unfinished:
        listed = ", ".join(f"{h} ({s})" for h, s in end.unfinished.items())
        say(
            f"{len(end.unfinished)} cell(s) not finished: {listed}. See `fptlab trials --status failed`; run again with "
            "--retry-failed to give failed cells new attempts."
        )
        for config_hash, why in end.reasons:
            say(f"  {config_hash}: {why}")
        raise typer.Exit(1)


def _print_summary(store: Any, spec: Any, cells: list) -> None:
    """The report of this spec's table(s) when an analysis module reads it (the quickstart, the paper's
    tables, their offline counterparts); else mean ± std and 95% CI per group of this spec's axes."""
    from fptlab.report.engine import report_for_spec

    if report_for_spec(spec, store):
        return
    from fptlab.report.summary import render_summary, summary_frame
    from fptlab.store.results import trials_frame
    from fptlab.sweep.grid import SOURCE

    hashes = {c.hash for c in cells}
    trials = trials_frame(store)
    trials = trials[trials["config_hash"].isin(hashes)]
    if trials.empty:
        return
    axes = [k for k in next((c.labels for c in cells if SOURCE not in c.labels), {}) if k != "seed" and k in trials.columns]
    by = tuple(dict.fromkeys(["task", "init", *axes]))
    say(render_summary(summary_frame(trials, by=by)), err=False)
    from fptlab.report.engine import figures_for_spec

    for number in figures_for_spec(spec):
        offline = " --offline" if spec.name.endswith("-offline") else ""
        typer.echo(f"Figure {number} reads these runs: fptlab report --figure {number}{offline} --out figure{number}.html")


def _print_plan(spec: Any, prepared: Any, db: str | None, pack: int = 1, device: str = "cpu") -> None:
    """Every cell (hash, status, labels, the body it needs, what it lacks here), the packs `--pack`
    forms, then how to get what is missing: each distinct instruction once."""
    cells = prepared.cells
    statuses = _existing_statuses(db, [c.hash for c in cells])
    typer.echo(f"sweep '{spec.name}': {len(cells)} cells ({sum(s in DONE for s in statuses.values())} already done)")
    for cell in cells:
        labels = " ".join(f"{k}={v}" for k, v in cell.labels.items())
        needs = f"  (needs {cell.config.weights})" if cell.config.weights.startswith("trial:") else ""
        lacks = prepared.missing_for(cell)
        missing = f"  missing: {'; '.join(m.what for m in lacks)}" if lacks else ""
        say(f"  {cell.hash}  {statuses.get(cell.hash, 'new')!s:<11}  {labels}{needs}{missing}", err=False)
    if pack > 1:
        _print_packs(spec, [c for c in cells if statuses.get(c.hash) not in DONE], pack, device)
    if not prepared.missing:
        return
    by_how: dict[str, list[str]] = {}
    for m in prepared.reasons():
        by_how.setdefault(m.how, []).append(m.what)
    typer.echo("\nWhat is missing here, and how to get it:")
    for how, whats in by_how.items():
        typer.echo("\n".join(f"  * {what}" for what in whats) + (f"\n    {how}" if how else ""))
    typer.echo(f"{len(prepared.missing)} of {len(cells)} cells cannot run here: data or weights missing")


def _print_packs(spec: Any, cells: list, pack: int, device: str) -> None:
    """The packs the cells still to run would form (claims decide at run time: a pack takes the cells
    that are ready together), and why a cell stays alone."""
    from fptlab.packing import plan_packs

    if spec.tune is not None and spec.tune.halving is not None:
        typer.echo(f"\nPacks: none: [tune] halving stops trials one at a time, and a pack is one trial; these {len(cells)} "
                   "cells train alone.")
        return
    packs = plan_packs([c.config for c in cells], pack, device)
    grouped = [p for p in packs if len(p.hashes) > 1]
    alone = [p for p in packs if len(p.hashes) == 1]
    typer.echo(f"\nPacks (--pack {pack}, {device} trials): {len(grouped)} pack(s) holding {sum(len(p.hashes) for p in grouped)} cells, "
               f"{len(alone)} cell(s) alone; {len(packs)} trials instead of {len(cells)}.")
    for i, p in enumerate(grouped, start=1):
        say(f"  pack {i} ({len(p.hashes)}): {' '.join(p.hashes)}", err=False)
    for p in alone:
        say(f"  alone {p.hashes[0]}: {p.reason}", err=False)


def _existing_statuses(db: str | None, hashes: list[str]) -> dict[str, str]:
    """Statuses from an existing database, without creating one (a dry run writes nothing)."""
    store = existing_store(db)
    return store.statuses(hashes) if store is not None else {}


def status(
    spec: Annotated[Path | None, typer.Argument(help="Only this spec's cells.")] = None,
    db: DbOpt = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="The dataset folder the sweep used (cells' hashes depend on resolved data sources).")] = None,
    lease: Annotated[float, typer.Option("--lease", help="The sweep's --lease: running trials silent for longer are reported stale.")] = 120.0,
) -> None:
    """Counts of trials by status (all, or one spec's cells), and running trials whose lease expired."""
    with user_errors():
        from fptlab.cli_checks import existing_folder_or_absent, spec_file
        from fptlab.sweep.options import check_lease

        check_lease(lease)
        if data_dir is not None:
            existing_folder_or_absent("--data-dir", data_dir)
        if spec is not None:
            spec_file(spec)
        store = required_store(db)
        if spec is not None:
            from fptlab.sweep import load_spec
            from fptlab.sweep.run import prepare_cells

            hashes = [c.hash for c in prepare_cells(load_spec(spec), data_dir.absolute() if data_dir else None).cells]
            statuses = store.statuses(hashes)
            counts = {"not started": len(hashes) - len(statuses)}
        else:
            statuses = {t["config_hash"]: t["status"] for t in store.trials()}
            counts = {}
        for s in statuses.values():
            counts[s] = counts.get(s, 0) + 1
        for name, n in sorted(counts.items(), key=lambda kv: str(kv[0])):
            say(f"{name!s:<12} {n}", err=False)
        _print_stale(store, set(statuses), lease)


def _print_stale(store: Any, hashes: set[str], lease: float) -> None:
    from datetime import timedelta

    from fptlab.sweep.drivers import owner_is_dead_here

    now = store.now()
    for t in store.trials(status="running"):
        if t["config_hash"] not in hashes:
            continue
        beat = t.get("heartbeat")
        age = (now - beat) if beat else timedelta(0)
        dead = owner_is_dead_here(t.get("owner"))
        if dead or age > timedelta(seconds=lease):
            why = "driver process is gone" if dead else f"no heartbeat for {age.total_seconds():.0f} s"
            say(f"stale        {t['config_hash']} ({why}; the next sweep reclaims it)", err=False)


def trials(
    status_: Annotated[list[str] | None, typer.Option("--status", help="Filter by status (repeatable).")] = None,
    where: Annotated[list[str] | None, typer.Option("--where", help="Filter KEY=VALUE on task, backbone, init, seed, ... (repeatable).")] = None,
    experiment: Annotated[str | None, typer.Option("--experiment", help="Only trials of this experiment (spec name).")] = None,
    db: DbOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List trials with their status and final test accuracy."""
    with user_errors():
        from fptlab.cli_checks import trial_filters, trial_statuses

        statuses = trial_statuses(status_ or [])
        filters = trial_filters(where or [])
        store = required_store(db)
        rows = store.trials(status=statuses or None, where=filters or None, experiment=experiment)
        results = store.results([r["config_hash"] for r in rows]) if rows else {}
        for r in rows:
            acc = results.get(r["config_hash"], {}).get("test_accuracy")
            if json_out:  # JSON escapes control characters itself
                typer.echo(json.dumps({"config_hash": r["config_hash"], "status": r["status"], "task": r["task"], "backbone": r["backbone"],
                                       "init": r["init"], "seed": r["seed"], "attempts": r["attempts"], "test_accuracy": acc}, default=str))
            else:
                acc_text = "-" if not isinstance(acc, float) or not math.isfinite(acc) else f"{acc:.4f}"
                say(f"{r['config_hash']}  {r['status']!s:<11} {r['task']!s:<16} {r['backbone']!s:<12} {r['init']!s:<10} "
                    f"seed={r['seed']!s:<3} acc={acc_text}", err=False)


db_app = typer.Typer(help="Database schema: upgrade to the current version, or check it.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(db: DbOpt = None) -> None:
    """Create or migrate the database schema to the current version (Alembic)."""
    with user_errors():
        from fptlab.cli_checks import check_db
        from fptlab.store import Store

        store = Store(db)
        check_db(store.url, "write")
        store.upgrade()
        typer.echo(f"{store.masked_url}: schema at {store.revision()}")


@db_app.command("check")
def db_check(db: DbOpt = None) -> None:
    """Check that the database is reachable and at the current schema version."""
    with user_errors():
        from fptlab.cli_checks import check_db
        from fptlab.store import Store

        store = Store(db)
        check_db(store.url, "read")
        store.check()
        typer.echo(f"{store.masked_url}: ok, schema at {store.revision()}")


def register(app: typer.Typer) -> None:
    app.command()(sweep)
    app.command()(status)
    app.command()(trials)
    app.add_typer(db_app, name="db")
