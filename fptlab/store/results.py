"""`fptlab.results`: the store as pandas frames, for notebooks and the report engine.

    from fptlab.results import trials_frame, curves_frame
    df = trials_frame(store, experiment="table2", status="completed")
    df.groupby(["task", "init"])["test_accuracy"].agg(["mean", "std", "count"])
    curves = curves_frame(store, df.config_hash, keys=["test_accuracy"])

`trials_frame` has one row per trial: the trial's columns (config_hash, status, attempts, host,
device, times, ...), its canonical config flattened into columns (`lr`, `train`, `bit_xor.n_bits`;
lists become tuples so they can be grouped on), and its final results (`test_accuracy`,
`trainable_params`, `params.input`, ...). A result whose name is already a column (`steps`, the
steps actually run, beside the configured `steps`) is named `result.<key>`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from fptlab.config import flatten
from fptlab.store.db import Store

RESULT_PREFIX = "result."
CURVE_COLUMNS = ["config_hash", "key", "step", "value"]


def trials_frame(store: Store, experiment: str | None = None, status: str | Iterable[str] | None = None) -> pd.DataFrame:
    """One row per trial: trial columns, flattened config, final results."""
    statuses = status if status is None or isinstance(status, str) else list(status)
    trials = store.trials(status=statuses, experiment=experiment)
    if not trials:
        return pd.DataFrame(columns=["config_hash", "status"])
    results = store.results([t["config_hash"] for t in trials] if experiment or status else None)
    rows = [_row(t, results.get(t["config_hash"], {})) for t in trials]
    return pd.DataFrame(rows)


def curves_frame(store: Store, config_hashes: Iterable[str] | None = None, keys: Iterable[str] | None = None) -> pd.DataFrame:
    """Per-step values in long form: columns config_hash, key, step, value (NaN/±inf restored)."""
    hashes = None if config_hashes is None else list(config_hashes)
    rows = store.curves(hashes, None if keys is None else list(keys))
    frame = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    return frame.astype({"step": "int64", "value": "float64"})


def _row(trial: dict[str, Any], results: dict[str, float]) -> dict[str, Any]:
    row = {k: v for k, v in trial.items() if k != "config"}
    row.update(flatten(trial["config"] or {}))  # None: not a JSON object, warned about by the store
    for key, value in sorted(results.items()):
        row[RESULT_PREFIX + key if key in row else key] = value
    return row
