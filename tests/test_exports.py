"""Where users already look (issue 17, section 3): a sweep's trials as TensorBoard event files (read back
with tbparse, the event reader of tensorboard), as runs of a real local MLflow tracking store (an SQLite
tracking URI; exporting twice creates no duplicate), and a report figure as an image file."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fptlab.cli import app
from fptlab.config import config_from_dict
from fptlab.store import Store, StoreSink, new_owner_id

CURVE = [(10, 0.5, 0.4), (20, 0.7, 0.6), (30, 0.9, 0.8)]  # (step, validation accuracy, test accuracy)


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    output, code = result.output, result.exit_code
    del result
    gc.collect()
    return code, output


@pytest.fixture()
def db(tmp_path: Path) -> tuple[str, list[str]]:
    """Two finished trials of experiment 'exp' with train loss, validation and test curves, and a queued one."""
    url = f"sqlite:///{tmp_path / 'e.db'}"
    store = Store(url)
    store.ensure_schema()
    configs = [config_from_dict({"task": "bit_xor", "backbone": "bert-tiny", "init": "random", "seed": s, "lr": 1e-3 * (s + 1)})
               for s in range(3)]
    store.add_trials(store.upsert_experiment("exp", "", "{}", "x" * 16), configs)
    for cfg in configs[:2]:
        owner = new_owner_id()
        store.claim(cfg.hash, owner, "node-a", lease_seconds=600, max_attempts=3)
        sink = StoreSink(store, cfg.hash, owner)
        sink.start({"device": "cpu", "versions": {"fptlab": "0.4.0", "torch": "2.13.0"}})
        for step, val, test in CURVE:
            sink.log(step, {"train_loss": 1.0 / step, "val_accuracy": val, "test_accuracy": test})
        sink.finish({"status": "completed", "steps": 30, "test_accuracy": 0.8, "selected_test_accuracy": 0.8,
                     "best_val_accuracy": 0.9, "train_accuracy": 0.85})
    store.close()
    return url, [c.hash for c in configs]


def test_tensorboard_runs_hold_the_curves_and_the_hparams(db, tmp_path: Path) -> None:
    from tbparse import SummaryReader

    url, hashes = db
    out = tmp_path / "tb"
    code, output = invoke("export", "--db", url, "--format", "tensorboard", "--out", str(out), "--status", "completed")
    assert code == 0, output
    runs = sorted(p.name for p in out.iterdir())
    assert len(runs) == 2 and all(any(h in r for h in hashes[:2]) for r in runs)
    scalars = SummaryReader(str(out), extra_columns={"dir_name"}).scalars
    one = scalars[scalars["dir_name"].str.contains(hashes[0])]
    val = one[one["tag"] == "val_accuracy"].sort_values("step")
    assert val["step"].tolist() == [10, 20, 30] and val["value"].round(6).tolist() == [0.5, 0.7, 0.9]
    assert one[one["tag"] == "test_accuracy"]["value"].round(6).tolist() == [0.4, 0.6, 0.8]
    assert set(one["tag"]) >= {"train_loss", "val_accuracy", "test_accuracy", "final/test_accuracy"}
    hparams = SummaryReader(str(out / runs[0])).hparams
    values = dict(zip(hparams["tag"], hparams["value"]))
    assert values["task"] == "bit_xor" and values["status"] == "completed" and float(values["lr"]) in (1e-3, 2e-3)
    code, output = invoke("export", "--db", url, "--format", "tensorboard", "--out", str(out))
    assert code == 1 and "not empty" in output and "--force" in output
    code, output = invoke("export", "--db", url, "--format", "tensorboard", "--out", str(out), "--force")
    assert code == 0, output


def test_mlflow_runs_are_created_once_and_carry_params_metrics_and_tags(db, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    url, hashes = db
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ("export", "--db", url, "--format", "mlflow", "--tracking-uri", tracking, "--experiment", "exp")
    code, output = invoke(*args)
    assert code == 0 and "3 run(s) created, 0 updated" in output, output
    client = MlflowClient(tracking_uri=tracking)
    experiment = client.get_experiment_by_name("exp")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3
    by_hash = {r.data.tags["fptlab.config_hash"]: r for r in runs}
    assert set(by_hash) == set(hashes)
    first = by_hash[hashes[0]]
    assert first.data.params["task"] == "bit_xor" and float(first.data.params["lr"]) == 1e-3
    assert first.data.tags["fptlab.status"] == "completed" and first.data.tags["fptlab.experiment"] == "exp"
    assert first.data.tags["fptlab.version.torch"] == "2.13.0" and first.info.status == "FINISHED"
    history = client.get_metric_history(first.info.run_id, "val_accuracy")
    assert [(m.step, round(m.value, 6)) for m in history] == [(10, 0.5), (20, 0.7), (30, 0.9)]
    code, output = invoke(*args)  # again: nothing is duplicated
    assert code == 0 and "0 run(s) created, 3 updated, 0 metric point(s) written" in output, output
    assert len(client.search_runs([experiment.experiment_id])) == 3
    assert len(client.get_metric_history(first.info.run_id, "val_accuracy")) == 3


def test_a_report_figure_goes_to_an_image_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    assert invoke("db", "upgrade", "--db", url)[0] == 0
    experiments = Path(__file__).resolve().parents[1] / "experiments"
    for suffix, magic in ((".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")):
        out = tmp_path / f"fig3{suffix}"
        code, output = invoke("report", "--figure", "3", "--db", url, "--experiments", str(experiments), "--out", str(out))
        assert code == 0, output
        assert out.read_bytes().startswith(magic) and "not finished" in output
