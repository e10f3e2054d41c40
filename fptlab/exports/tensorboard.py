"""`fptlab export --format tensorboard --out DIR`: one run folder per trial (`<task>-<backbone>-<init>-
s<seed>-<hash>`) holding its curves as scalars (train loss and accuracy, gradient norm, validation and
test accuracy by step) and its config as HParams with its final results as the HParams metrics, so
`tensorboard --logdir DIR` shows the sweep's curves and its HParams table. Written with tensorboardX
(`pip install 'fptlab[tensorboard]'`)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

from fptlab.errors import FptlabError
from fptlab.exports.selection import TrialRecord

HPARAM_METRICS = ("test_accuracy", "selected_test_accuracy", "best_val_accuracy", "train_accuracy", "steps")


def write(records: Iterable[TrialRecord], folder: Path) -> int:
    """Write every record's run folder under `folder`; returns how many runs were written."""
    try:
        from tensorboardX import SummaryWriter
        from tensorboardX.summary import hparams
    except ImportError:
        raise FptlabError("--format tensorboard needs tensorboardX, which is not installed: pip install 'fptlab[tensorboard]' "
                          "(or pip install tensorboardX).") from None
    n = 0
    for record in records:
        writer = SummaryWriter(logdir=str(folder / record.label()), flush_secs=3600)
        try:
            for key, points in sorted(record.curves.items()):
                for step, value in points:
                    writer.add_scalar(key, value, step)
            metrics = {f"final/{k}": v for k, v in record.finite_results().items() if k in HPARAM_METRICS}
            params = {**record.params(), "status": str(record.trial.get("status")), "config_hash": record.config_hash}
            exp, ssi, sei = hparams(params, metrics)
            file_writer = writer._get_file_writer()
            for summary in (exp, ssi, sei):
                file_writer.add_summary(summary)
            last = record.results.get("steps", 0.0)
            for key, value in metrics.items():  # the HParams table reads these scalars from the same run
                writer.add_scalar(key, value, int(last) if math.isfinite(last) else 0)
        finally:
            writer.close()
        n += 1
    return n
