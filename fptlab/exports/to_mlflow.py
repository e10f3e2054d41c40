"""`fptlab export --format mlflow --tracking-uri URI`: every trial becomes one MLflow run in an MLflow
experiment (default: the fptlab experiment's name, else "fptlab"): its flattened config as params, its
curves as metrics with their steps, its final results as metrics, and tags for the fptlab experiment,
the config hash, the status and the versions it ran with. Idempotent by config hash: a trial exported
before is found by its `fptlab.config_hash` tag and gets only the metric steps it lacks and its
current tags, never a second run. Needs mlflow (`pip install 'fptlab[mlflow]'`: mlflow-skinny)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fptlab.errors import FptlabError
from fptlab.exports.selection import TrialRecord
from fptlab.store.models import DONE, RETRIED

HASH_TAG = "fptlab.config_hash"
BATCH = 900  # MLflow's log_batch takes at most 1000 metrics
PARAM_CHARS = 6000  # MLflow's limit on a param value


@dataclass
class Exported:
    created: int = 0
    updated: int = 0
    points: int = 0  # metric points written


def client(tracking_uri: str) -> Any:
    """An MlflowClient for `tracking_uri`, checked to answer (an unreachable one is a clear error)."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise FptlabError("--format mlflow needs mlflow, which is not installed: pip install 'fptlab[mlflow]' "
                          "(or pip install mlflow-skinny).") from None
    import os

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # an unreachable server is said at once, not after minutes
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    try:
        mlflow_client = MlflowClient(tracking_uri=tracking_uri)
        mlflow_client.search_experiments(max_results=1)
    except Exception as e:  # noqa: BLE001 - every backend raises its own error: one message naming the URI
        text = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise FptlabError(f"Cannot reach the MLflow tracking store at --tracking-uri {tracking_uri}: {text}. Give a reachable "
                          "server (http://HOST:5000), a folder (file:///path/mlruns) or a database (sqlite:///mlflow.db).") from None
    return mlflow_client


def export(records: Iterable[TrialRecord], mlflow_client: Any, experiment_name: str, fptlab_experiment: str | None) -> Exported:
    experiment_id = _experiment_id(mlflow_client, experiment_name)
    out = Exported()
    for record in records:
        run_id = _existing_run(mlflow_client, experiment_id, record.config_hash)
        if run_id is None:
            run_id = mlflow_client.create_run(experiment_id, run_name=record.label(), tags=_tags(record, fptlab_experiment)).info.run_id
            _log_params(mlflow_client, run_id, record)
            out.created += 1
        else:
            for key, value in _tags(record, fptlab_experiment).items():
                mlflow_client.set_tag(run_id, key, value)
            out.updated += 1
        out.points += _log_metrics(mlflow_client, run_id, record)
        trial_status = record.trial.get("status")
        status = "FINISHED" if trial_status in DONE else "FAILED" if trial_status in RETRIED else "RUNNING"
        mlflow_client.update_run(run_id, status=status)
    return out


def _experiment_id(mlflow_client: Any, name: str) -> str:
    found = mlflow_client.get_experiment_by_name(name)
    return found.experiment_id if found is not None else mlflow_client.create_experiment(name)


def _existing_run(mlflow_client: Any, experiment_id: str, config_hash: str) -> str | None:
    runs = mlflow_client.search_runs([experiment_id], filter_string=f"tags.`{HASH_TAG}` = '{config_hash}'", max_results=1)
    return runs[0].info.run_id if runs else None


def _tags(record: TrialRecord, fptlab_experiment: str | None) -> dict[str, str]:
    trial = record.trial
    tags = {HASH_TAG: record.config_hash, "fptlab.status": str(trial.get("status"))}
    if fptlab_experiment:
        tags["fptlab.experiment"] = fptlab_experiment
    for name in ("fptlab", "torch", "transformers"):
        version = trial.get(f"{name}_version")
        if version:
            tags[f"fptlab.version.{name}"] = str(version)
    for name in ("host", "device"):
        if trial.get(name):
            tags[f"fptlab.{name}"] = str(trial[name])
    return tags


def _log_params(mlflow_client: Any, run_id: str, record: TrialRecord) -> None:
    from mlflow.entities import Param

    params = [Param(key, str(value)[:PARAM_CHARS]) for key, value in sorted(record.params().items())]
    for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
        mlflow_client.log_batch(run_id, params=params[i : i + 100])


def _log_metrics(mlflow_client: Any, run_id: str, record: TrialRecord) -> int:
    """The metric points the run lacks (steps after the last one it has, per key), and the final results."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    points = []
    for key, series in sorted(record.curves.items()):
        done = max((m.step for m in mlflow_client.get_metric_history(run_id, key)), default=None)
        points += [Metric(key, value, now, step) for step, value in series if math.isfinite(value) and (done is None or step > done)]
    final_step = int(record.results.get("steps", 0) or 0) if math.isfinite(record.results.get("steps", 0) or 0) else 0
    for key, value in sorted(record.finite_results().items()):
        name = f"final.{key}"
        history = mlflow_client.get_metric_history(run_id, name)
        if not history or history[-1].value != value:  # new, or the trial has moved on since the last export
            points.append(Metric(name, value, now, final_step))
    for i in range(0, len(points), BATCH):
        mlflow_client.log_batch(run_id, metrics=points[i : i + BATCH])
    return len(points)
