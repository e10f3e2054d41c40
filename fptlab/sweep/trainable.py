"""The Ray Tune trainable: one sweep cell = one `fptlab.train.train` call in a Ray worker.

The worker never touches the database. It streams its records to the sweep driver through
`tune.report`; the driver's `StoreCallback` writes them, so a SQLite file has exactly one writer.
Records are batched (every `FLUSH_ROWS` metric rows, at each evaluation, and at the end) to keep
Tune's per-report overhead off the training loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fptlab.sinks import jsonable_float

FLUSH_ROWS = 200
EVENT = "fpt_event"  # keys of the reported dicts
ROWS = "fpt_rows"
PAYLOAD = "fpt_payload"
VAL = "fpt_val"  # [step, validation accuracy] of the evaluation a report carries: what halving reads
MEMBER = "fpt_member"  # a pack's report: the config hash of the member it is about


class TuneSink:
    """A `fptlab.sinks.Sink` that reports batches of records to the Tune driver."""

    def __init__(self, report: Any, member: str | None = None) -> None:
        self._report = report
        self._member = member  # in a pack: whose records these are
        self._rows: list[tuple[int, str, Any]] = []
        self._val: list[Any] | None = None

    def _flush(self, event: str, payload: dict[str, Any] | None = None) -> None:
        report = {EVENT: event, ROWS: self._rows, PAYLOAD: payload or {}}
        if self._member is not None:
            report[MEMBER] = self._member
        if self._val is not None:
            report[VAL] = self._val
        self._report(report)
        self._rows, self._val = [], None

    def start(self, info: dict[str, Any]) -> None:
        self._flush("start", {k: v for k, v in info.items() if k != "config"})

    def artifact(self, kind: str, location: str, meta: dict[str, Any]) -> None:
        self._flush("artifact", {"kind": kind, "location": location, "meta": meta})

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self._rows.extend((step, key, jsonable_float(float(value))) for key, value in metrics.items())
        if "val_accuracy" in metrics:
            self._val = [step, jsonable_float(float(metrics["val_accuracy"]))]
        if "test_accuracy" in metrics or len(self._rows) >= FLUSH_ROWS:
            self._flush("log")

    def finish(self, result: dict[str, Any]) -> None:
        self._flush("finish", {k: jsonable_float(v) for k, v in result.items()})


def fpt_trainable(params: dict[str, Any]) -> None:
    """Entry point Ray imports in its workers (it must live in the installed package).

    `params` come from `ClaimingSearcher`: the cell's config and folders, the trial's lineage (its
    identity in the database, the claim's attempt number, how many of its steps the database recorded:
    see `fptlab.checkpoint.Lineage`) and the CPUs the trial holds, which pin torch's thread count. A
    pack's params hold the same per member under "members" (`fptlab.pack_train`)."""
    from ray import tune

    from fptlab.train import train

    data_dir = Path(params["data_dir"]) if params.get("data_dir") else None
    threads = trial_threads(params.get("cpus_per_trial"))
    if params.get("members"):
        from fptlab.pack_train import Member, train_pack

        members = [Member(cfg, TuneSink(tune.report, member=m["config_hash"]), Path(m["run_dir"]), lineage, weights)
                   for m in params["members"] for cfg, lineage, weights in [_member(m)]]
        train_pack(members, data_dir=data_dir, threads=threads)
        return
    cfg, lineage, weights = _member(params)
    from fptlab.pack_train import captured_alone

    if captured_alone(cfg):  # a pack of one: its step can be replayed as a CUDA graph
        from fptlab.pack_train import Member, train_pack

        train_pack([Member(cfg, TuneSink(tune.report), Path(params["run_dir"]), lineage, weights)], data_dir=data_dir,
                   threads=threads)
        return
    train(cfg, TuneSink(tune.report), data_dir=data_dir, run_dir=Path(params["run_dir"]), weights_path=weights, progress=False,
          lineage=lineage, threads=threads)


def _member(params: dict[str, Any]) -> tuple[Any, Any, Path | None]:
    """A claimed cell's config (checked to be the trial's), lineage and body folder."""
    from fptlab.checkpoint import Lineage
    from fptlab.config import config_from_dict

    cfg = config_from_dict(params["config"], origin=f"trial {params['config_hash']}")
    check_identity(cfg, params["config_hash"])
    if cfg.checkpoint_every == 0:
        cfg = cfg.replace(checkpoint_every=cfg.eval_every)  # execution-only: resumable at every evaluation
    weights = Path(params["weights_path"]) if params.get("weights_path") else None
    return cfg, Lineage(params["identity"], int(params["attempt"]), int(params["recorded_through"])), weights


def check_identity(cfg: Any, config_hash: str) -> None:
    """Train only the trial the driver claimed: the config this worker rebuilt must hash to the trial's
    stored hash. It does not when this node runs another fptlab (other defaults, other options), which
    would record one config's results under another's name."""
    from fptlab import __version__
    from fptlab.errors import FptlabError

    if cfg.hash != config_hash:
        raise FptlabError(
            f"trial {config_hash}: the config this worker received hashes to {cfg.hash} here, not to the trial's "
            f"hash, so it was not trained (fptlab {__version__} on this node; every node and the driver must run the "
            "same fptlab). Install the driver's fptlab version on this node and run the sweep again."
        )


def trial_threads(cpus: Any) -> int:
    """torch threads for a trial holding `cpus` CPUs (a fraction shares one CPU: 1 thread)."""
    return max(1, int(float(cpus))) if cpus is not None else 1
