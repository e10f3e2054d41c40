"""Training one FPT run (paper Section 2.2 and Appendix C), writing through a `Sink`.

Follows the reference's optimisation (Adam, lr 1e-3, gradient-norm clip 1.0, cross-entropy per
label) and fixes its habits: every random source is seeded; micro-batching accumulates gradients
for every task; evaluation covers the whole test split unless `eval_batches = k` asks for k random
batches as the reference did; a NaN/inf loss ends the run as `diverged` keeping its last good
metrics (the paper's †). Batch order is a pure function of (seed, step), so a run resumed from a
checkpoint of its trainable parameters continues exactly where it stopped.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from fptlab import versions
from fptlab.backbones import BACKBONES
from fptlab.checkpoint import Lineage, Resumed, resume, save_checkpoint
from fptlab.config import RunConfig
from fptlab.errors import FptlabError
from fptlab.plan import resolve_config
from fptlab.sinks import NullSink, Sink
from fptlab.steps import BatchOrder, evaluate, make_optimizer, pick_device, seed_everything, train_batch, train_step
from fptlab.tasks import TASKS
from fptlab.tasks.base import ArraySplit, TaskData, chance_accuracy, data_fingerprint, with_validation


@dataclass
class RunResult:
    config_hash: str
    status: str  # completed | diverged
    steps: int
    test_accuracy: float
    test_loss: float
    best_test_accuracy: float
    train_accuracy: float  # mean over the steps since the previous evaluation
    train_loss: float
    trainable_params: int
    total_params: int
    params_by_group: dict[str, int]
    device: str
    threads: int  # torch's intra-op threads: same config, machine and thread count = bit-identical curves
    wall_seconds: float
    steps_per_second: float
    stopped_early: bool = False
    resumed_from: int = 0
    feature_seconds: float = 0.0  # cache_features: the one pass over the data computing read-out features
    # Selection on the validation split (val_fraction; NaN without one): the step of the best validation
    # accuracy (the earliest of equals) and the test accuracy there. The test split is never read to choose.
    val_accuracy: float = math.nan
    best_val_accuracy: float = math.nan
    selected_step: float = math.nan
    selected_test_accuracy: float = math.nan
    stopped_at_target: bool = False
    stopped_on_plateau: bool = False  # patience evaluations without a gain of min_delta in validation accuracy
    chance_accuracy: float = math.nan  # always predicting the most common label, on the split selection reads
    test_kept: float = 1.0  # share of the evaluation split kept (remote homology skips sequences over 1024)
    config: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- the run -------------------------------------------------------------------------------------
@dataclass
class LoopState:
    test_loss: float = math.nan
    test_accuracy: float = math.nan
    best_test_accuracy: float = math.nan
    window_loss: float = 0.0
    window_accuracy: float = 0.0
    window_steps: int = 0
    train_loss: float = math.nan
    train_accuracy: float = math.nan
    finished: str = ""  # set in the final checkpoint: the run already ended with this status
    stopped_early: bool = False
    stop_reason: str = ""  # "target" | "plateau"
    val_loss: float = math.nan
    val_accuracy: float = math.nan
    best_val_accuracy: float = math.nan
    best_val_step: int = 0
    test_at_best_val: float = math.nan
    evals_since_best: int = 0


def train(
    cfg: RunConfig,
    sink: Sink | None = None,
    *,
    data_dir: Path | None = None,
    run_dir: Path | None = None,
    weights_path: Path | None = None,
    progress: bool = False,
    lineage: Lineage | None = None,
    threads: int | None = None,
) -> RunResult:
    """Run one configuration to completion (or divergence). `run_dir` holds the run's checkpoints and
    artifacts (attention maps, parameter statistics, saved body); a run resumes from the newest
    checkpoint there that `lineage` trusts (see `fptlab.checkpoint`: a sweep passes the trial's identity
    in its database, its attempt and how many of its steps the database recorded; the default is a
    standalone run), and such a checkpoint of a run that already ended returns that run's result
    without training. `weights_path` is where `weights = "trial:<hash>"` was found (else the default
    folders are searched).

    `threads` pins torch's intra-op threads for the run (a sweep trial: the CPUs it holds); None keeps
    torch's setting (OMP_NUM_THREADS if set, else the machine's physical cores). Float reductions
    split across threads add in a different order, so the count is recorded with the result: the same
    config gives bit-identical curves on one machine (same torch build) only at the same thread count.
    Across machines, what fptlab draws (data, batch order, augmentation, evaluation samples: numpy
    generators seeded per step) is identical everywhere; float arithmetic is not guaranteed to be (the
    thread count, the CPU's instruction set, the torch/BLAS build, CPU vs GPU kernels, and torch's own
    random initialisation and dropout on another build or device), so curves agree only closely there."""
    import torch

    if threads is not None and threads < 1:
        raise FptlabError(f"threads must be a positive number of CPU threads, got {threads}.")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or previous)
    try:
        return _train(cfg, sink or NullSink(), data_dir, run_dir, weights_path, progress, lineage or Lineage())
    finally:
        torch.set_num_threads(previous)  # a library call leaves the process as it found it


def _train(
    cfg: RunConfig, sink: Sink, data_dir: Path | None, run_dir: Path | None, weights_path: Path | None, progress: bool,
    lineage: Lineage,
) -> RunResult:
    from fptlab.assets import data_dir as default_data_dir
    from fptlab.model import apply_trainable, build_model, count_parameters

    data_dir = Path(data_dir) if data_dir else default_data_dir()
    cfg = resolve_config(cfg, data_dir)
    device = pick_device(cfg.device)
    seed_everything(cfg.seed)
    task = TASKS.get(cfg.task)
    data = with_validation(task, cfg.task_options, task.load(cfg.task_options, data_dir), cfg.val_fraction, data_dir)
    model = build_model(data.spec, cfg, weights_path=weights_path).to(device)
    groups = apply_trainable(model, BACKBONES.get(cfg.backbone), cfg.train)
    counts = count_parameters(model, groups)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(cfg, params)
    resumed = Resumed()
    if run_dir is not None:
        resumed = resume(Path(run_dir), lineage, config_hash=cfg.hash, model=model, optimizer=optimizer)
    state, start = _loop_state(resumed.loop), resumed.step
    sink.start({
        "config_hash": cfg.hash, "config": cfg.to_dict(), "device": str(device), "threads": _threads(), "versions": versions(),
        "trainable_params": counts.trainable, "total_params": counts.total, "params_by_group": counts.by_group,
        "resumed_from": start, "data": data.description, "data_fingerprint": data_fingerprint(data),
        "checkpoint_warnings": resumed.warnings,
    })
    t0 = time.perf_counter()
    feature_seconds = 0.0
    save = _saver(cfg, run_dir, lineage, model, optimizer)
    if state.finished:  # the final checkpoint of a run that already ended: report it, train nothing
        status, stopped_early, done = state.finished, state.stopped_early, start
    else:
        learner, seen = model, data
        if cfg.cache_features:  # Section 3.9: the body runs once per example, then only the read-out trains
            learner, seen, feature_seconds = _cached(model, data, cfg, device, progress)
        bar = _Bar(progress, cfg, start)
        steps = _Steps(cfg, seen, learner, optimizer, params, device, sink, bar, save)
        status, stopped_early, done = steps.run(state, start)
        bar.close()
        if save is not None:  # so that running the same config again resumes to "done", exactly
            state.finished, state.stopped_early = status, stopped_early
            save(done, state)
    wall = time.perf_counter() - t0
    if run_dir is not None:
        for record in _artifacts(cfg, model, data, status, Path(run_dir)):
            sink.artifact(record.kind, record.location, record.meta)
    result = RunResult(
        config_hash=cfg.hash, status=status, steps=done, test_accuracy=state.test_accuracy, test_loss=state.test_loss,
        best_test_accuracy=state.best_test_accuracy, train_accuracy=state.train_accuracy, train_loss=state.train_loss,
        trainable_params=counts.trainable, total_params=counts.total, params_by_group=counts.by_group,
        device=str(device), threads=_threads(), wall_seconds=wall, steps_per_second=(done - start) / wall if wall > 0 else math.nan,
        stopped_early=stopped_early, resumed_from=start, feature_seconds=feature_seconds, config=cfg.to_dict(),
        val_accuracy=state.val_accuracy, best_val_accuracy=state.best_val_accuracy,
        selected_step=float(state.best_val_step) if data.val is not None and state.best_val_step else math.nan,
        selected_test_accuracy=state.test_at_best_val, stopped_at_target=state.stop_reason == "target",
        stopped_on_plateau=state.stop_reason == "plateau",
        chance_accuracy=chance_accuracy((data.val if data.val is not None else data.test).y), test_kept=data.test_kept,
    )
    sink.finish({k: v for k, v in result.as_dict().items() if k != "config"})
    return result


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _loop_state(loop: dict[str, Any] | None) -> LoopState:
    """The loop state a checkpoint saved (keys of other fptlab versions dropped; missing ones default)."""
    known = {f.name for f in fields(LoopState)}
    return LoopState(**{k: v for k, v in (loop or {}).items() if k in known})


def _saver(cfg: RunConfig, run_dir: Path | None, lineage: Lineage, model: Any, optimizer: Any) -> Any:
    """`save(step, state)` writing this run's checkpoint, or None when the run keeps none."""
    if run_dir is None or not cfg.checkpoint_every:
        return None

    def save(step: int, state: LoopState) -> None:
        save_checkpoint(Path(run_dir), lineage, config_hash=cfg.hash, step=step, model=model, optimizer=optimizer,
                        loop_state=asdict(state))

    return save


def _cached(model: Any, data: TaskData, cfg: RunConfig, device: Any, progress: bool) -> tuple[Any, TaskData, float]:
    from fptlab.cached import cached_task, output_head

    total = len(data.train) + len(data.test) + (len(data.val) if data.val is not None else 0)
    bar = _Bar(progress, cfg, 0, total=total, label="features") if progress else None
    features, seconds = cached_task(model, data, device, cfg.eval_batch_size, bar.advance_by if bar else None)
    if bar is not None:
        bar.close()
    return output_head(model), features, seconds


def _artifacts(cfg: RunConfig, model: Any, data: TaskData, status: str, run_dir: Path) -> list[Any]:
    """The files this config asks a finished run to leave (see fptlab.artifacts)."""
    from fptlab import artifacts

    spec = BACKBONES.get(cfg.backbone)
    records = []
    if cfg.attention_maps:
        records.append(artifacts.attention_maps(model, data, cfg.attention_maps, run_dir))
    if cfg.param_stats:
        records.append(artifacts.write_param_stats(model.backbone, spec, run_dir))
    if cfg.save_body and status == "completed":
        records.append(artifacts.write_body(model.backbone, spec, cfg.model_options, run_dir, cfg.hash, versions()))
    return records


@dataclass
class _Steps:
    """The training loop proper: steps, evaluations, checkpoints; stops on divergence or target."""

    cfg: RunConfig
    data: TaskData
    model: Any
    optimizer: Any
    params: list
    device: Any
    sink: Any
    bar: Any
    save: Any  # save(step, state) at every checkpoint_every steps, or None

    def run(self, state: LoopState, start: int) -> tuple[str, bool, int]:
        """Returns (status, stopped early?, last step whose update was applied)."""
        cfg = self.cfg
        order = BatchOrder(len(self.data.train), cfg.seed) if isinstance(self.data.train, ArraySplit) else None
        self.model.train()
        done = start
        for step in range(start + 1, cfg.steps + 1):
            x, y = train_batch(self.data, order, step, cfg)
            loss, acc, norm = train_step(self.model, self.optimizer, self.params, x, y, cfg, self.device)
            metrics = {"train_loss": loss, "train_accuracy": acc, "grad_norm": norm}
            if not (math.isfinite(loss) and math.isfinite(norm)):
                self.sink.log(step, metrics)
                return "diverged", False, done
            done = step
            state.window_loss += loss
            state.window_accuracy += acc
            state.window_steps += 1
            stopped_early = False
            if step % cfg.eval_every == 0 or step == cfg.steps:
                metrics.update(_evaluate_into(state, self.model, self.data, cfg, self.device, step))
                state.stop_reason = _stop_reason(state, cfg, self.data.val is not None)
                stopped_early = bool(state.stop_reason)
            self.sink.log(step, metrics)
            self.bar.advance(state)
            if self.save is not None and step % cfg.checkpoint_every == 0:
                self.save(step, state)
            if stopped_early:
                return "completed", True, done
        return "completed", False, done


def _stop_reason(state: LoopState, cfg: RunConfig, validated: bool) -> str:
    """"target" once the selection accuracy (validation, else test as before) reaches target_accuracy;
    "plateau" after `patience` evaluations without a gain of `min_delta` in validation accuracy."""
    watched = state.val_accuracy if validated else state.test_accuracy
    if cfg.target_accuracy is not None and watched >= cfg.target_accuracy:
        return "target"
    if cfg.patience is not None and validated and state.evals_since_best >= cfg.patience:
        return "plateau"
    return ""


def _evaluate_into(state: LoopState, model: Any, data: TaskData, cfg: RunConfig, device: Any, step: int) -> dict[str, float]:
    out: dict[str, float] = {}
    if data.val is not None:  # first, and on its own: what selects (stopping, the reported step) reads only this
        state.val_loss, state.val_accuracy = evaluate(model, data, cfg, device, step, split=data.val)
        out = {"val_loss": state.val_loss, "val_accuracy": state.val_accuracy}
        improved = math.isnan(state.best_val_accuracy) or state.val_accuracy > state.best_val_accuracy + cfg.min_delta
        state.evals_since_best = 0 if improved else state.evals_since_best + 1
        if improved:
            state.best_val_accuracy, state.best_val_step = state.val_accuracy, step
    state.test_loss, state.test_accuracy = evaluate(model, data, cfg, device, step)
    if data.val is not None and state.best_val_step == step:
        state.test_at_best_val = state.test_accuracy  # recorded at the step validation chose, not chosen by it
    if not state.best_test_accuracy >= state.test_accuracy:  # also replaces the initial NaN
        state.best_test_accuracy = state.test_accuracy
    state.train_loss = state.window_loss / max(state.window_steps, 1)
    state.train_accuracy = state.window_accuracy / max(state.window_steps, 1)
    state.window_loss = state.window_accuracy = 0.0
    state.window_steps = 0
    return {**out, "test_loss": state.test_loss, "test_accuracy": state.test_accuracy}


class _Bar:
    """A rich progress bar on stderr (or nothing)."""

    def __init__(self, enabled: bool, cfg: RunConfig, start: int, total: int | None = None, label: str = "") -> None:
        self.progress = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[acc]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False,
        )
        self.progress.start()
        name = f"{cfg.task}/{cfg.backbone}/{cfg.init}" + (f" {label}" if label else "")
        self.task = self.progress.add_task(name, total=total or cfg.steps, completed=start, acc="")

    def advance(self, state: LoopState) -> None:
        if self.progress is not None:
            acc = "" if math.isnan(state.test_accuracy) else f"test acc {state.test_accuracy:.3f}"
            self.progress.update(self.task, advance=1, acc=acc)

    def advance_by(self, n: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=n)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()

