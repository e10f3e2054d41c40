"""`fptlab export`: the results database as files other tools read. CSV / Parquet (one row per trial,
config flattened, final results; or the per-step curves in long form), TensorBoard event files (one
run folder per trial: curves as scalars, config as HParams), or runs in an MLflow tracking store
(idempotent by config hash). Registered on the main Typer app by fptlab.cli."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fptlab.cli_common import DbOpt, required_store, user_errors

FILE_FORMATS = ("csv", "parquet")
FORMATS = (*FILE_FORMATS, "tensorboard", "mlflow")


def export(
    out: Annotated[Path | None, typer.Option("--out", help="Output file (csv, parquet: default fptlab-trials.<format>) or folder (tensorboard: default fptlab-tensorboard/).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv | parquet | tensorboard | mlflow.")] = "csv",
    curves: Annotated[bool, typer.Option("--curves", help="csv/parquet: per-step curves (long form) instead of one row per trial.")] = False,
    experiment: Annotated[str | None, typer.Option("--experiment", help="Only this experiment's trials.")] = None,
    status_: Annotated[list[str] | None, typer.Option("--status", help="Only trials with this status (repeatable).")] = None,
    where: Annotated[list[str] | None, typer.Option("--where", help="Only trials with KEY=VALUE on task, backbone, init, seed, ... (repeatable).")] = None,
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help="mlflow: the tracking store (http://HOST:5000, file:///path/mlruns, sqlite:///mlflow.db).")] = None,
    mlflow_experiment: Annotated[str | None, typer.Option("--mlflow-experiment", help="mlflow: the MLflow experiment (default: --experiment, else fptlab).")] = None,
    force: Annotated[bool, typer.Option("--force", help="tensorboard: write into an --out folder that is not empty.")] = False,
    db: DbOpt = None,
) -> None:
    """Export trials to CSV or Parquet (config columns flattened, final results; or curves), to TensorBoard
    event files, or to an MLflow tracking store."""
    with user_errors():
        from fptlab.cli_checks import trial_filters, trial_statuses

        fmt = _format(fmt)
        statuses, filters = trial_statuses(status_ or []), trial_filters(where or [])
        _check_options(fmt, out, curves, tracking_uri, mlflow_experiment, force)
        if fmt in FILE_FORMATS:
            _files(fmt, out, curves, experiment, statuses, filters, db)
        elif fmt == "tensorboard":
            _tensorboard(out or Path("fptlab-tensorboard"), force, experiment, statuses, filters, db)
        else:
            _mlflow(str(tracking_uri), mlflow_experiment or experiment or "fptlab", experiment, statuses, filters, db)


def _format(fmt: str) -> str:
    from fptlab.errors import FptlabError
    from fptlab.registry import did_you_mean

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise FptlabError(f"Unknown export format '{fmt}'.{did_you_mean(fmt, list(FORMATS))} Available: {', '.join(FORMATS)}.")
    return fmt


def _check_options(fmt: str, out: Path | None, curves: bool, tracking_uri: str | None, mlflow_experiment: str | None, force: bool) -> None:
    """Options that only some formats take, each refused where it would be ignored."""
    from fptlab.errors import FptlabError

    if fmt == "mlflow" and not tracking_uri:
        raise FptlabError("--format mlflow needs --tracking-uri (http://HOST:5000, file:///path/mlruns or sqlite:///mlflow.db).")
    for given, flag, formats in ((tracking_uri, "--tracking-uri", ("mlflow",)), (mlflow_experiment, "--mlflow-experiment", ("mlflow",)),
                                 (out if fmt == "mlflow" else None, "--out", ("csv", "parquet", "tensorboard")),
                                 (curves or None, "--curves", FILE_FORMATS), (force or None, "--force", ("tensorboard",))):
        if given is not None and fmt not in formats:
            raise FptlabError(f"{flag} is for --format {' or '.join(formats)}, not {fmt}. Drop it.")


def _files(fmt: str, out: Path | None, curves: bool, experiment: str | None, statuses: list[str], filters: dict[str, Any],
           db: str | None) -> None:
    from fptlab.cli_checks import output_file, write_atomically
    from fptlab.store.results import curves_frame, trials_frame

    path = out or Path(f"fptlab-{'curves' if curves else 'trials'}.{fmt}")
    output_file("--out", path)
    if fmt == "parquet":
        _require_parquet()
    store = required_store(db)
    frame = trials_frame(store, experiment=experiment, status=statuses or None)
    if filters:
        for key, value in filters.items():
            frame = frame[frame[key] == value] if key in frame else frame.iloc[0:0]
    if curves:
        frame = curves_frame(store, list(frame["config_hash"]) if experiment or statuses or filters else None)
    if fmt == "csv":
        frame = csv_safe(frame)
    write_atomically(path, lambda tmp: frame.to_csv(tmp, index=False) if fmt == "csv" else frame.to_parquet(tmp, index=False))
    typer.echo(f"wrote {len(frame)} rows to {path}")


def _tensorboard(folder: Path, force: bool, experiment: str | None, statuses: list[str], filters: dict[str, Any], db: str | None) -> None:
    from fptlab.cli_checks import writable_folder
    from fptlab.errors import FptlabError
    from fptlab.exports import selection, tensorboard

    writable_folder("--out", folder)
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise FptlabError(f"--out {folder} is a folder that is not empty. Give a new or empty folder, or add --force to write "
                          "the runs into it (a trial's run folder already there gets a second event file).")
    store = required_store(db)
    records = list(selection.selected(store, experiment=experiment, statuses=statuses, where=filters))
    n = tensorboard.write(records, folder)
    typer.echo(f"wrote {n} TensorBoard run(s) to {folder}: tensorboard --logdir {folder}")


def _mlflow(uri: str, name: str, experiment: str | None, statuses: list[str], filters: dict[str, Any], db: str | None) -> None:
    from fptlab.exports import selection, to_mlflow

    mlflow_client = to_mlflow.client(uri)  # before the database is read: an unreachable store writes nothing
    store = required_store(db)
    records = selection.selected(store, experiment=experiment, statuses=statuses, where=filters)
    done = to_mlflow.export(records, mlflow_client, name, experiment)
    typer.echo(f"MLflow experiment '{name}' at {uri}: {done.created} run(s) created, {done.updated} updated, "
               f"{done.points} metric point(s) written")


def csv_safe(frame: Any) -> Any:
    """The frame with every text cell and column name a spreadsheet would run as a formula neutralised
    (`fptlab.escape.for_csv`); numbers stay numbers."""
    from pandas.api.types import is_numeric_dtype

    from fptlab.escape import for_csv

    out = frame.copy()
    for column in out.columns:
        if not is_numeric_dtype(out[column]):  # object and string columns (pandas 3 names text "str")
            out[column] = out[column].map(for_csv)
    out.columns = [for_csv(str(c)) for c in out.columns]
    return out


def _require_parquet() -> None:
    import importlib.util

    from fptlab.errors import FptlabError

    if importlib.util.find_spec("pyarrow") is None and importlib.util.find_spec("fastparquet") is None:
        raise FptlabError("--format parquet needs pyarrow, which is not installed: pip install pyarrow, or use --format csv.")


def register(app: typer.Typer) -> None:
    app.command()(export)
