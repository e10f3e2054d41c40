"""Training a pack (`fptlab.packing`): K cells over one frozen body, each still its own run.

Each member is built exactly as `fptlab.train.train` builds it alone (seeded by its own seed, its own
input/output initialisation, resumed from its own checkpoint) and then folded into one `PackedFPT`.
Every step each member draws the batch it would draw alone (its seed, its step), the body runs once
on the stacked batch, and each member gets its own loss, gradient norm and clipping, and its own
optimiser update (`PackedOptimizer`). Evaluation, curves, stopping (divergence, target, plateau, its
own length), checkpoints and the final record are per member, through its own sink, in the formats a
solo run writes: a packed member's checkpoint resumes alone or in another pack, and its store record is
an ordinary trial's (with `pack_size` among its results and the pack's members in a `pack` artifact).
A member that stops leaves the pack; the others go on.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fptlab import versions
from fptlab.backbones import BACKBONES
from fptlab.checkpoint import Lineage, Resumed, resume, save_checkpoint
from fptlab.config import RunConfig
from fptlab.errors import FptlabError
from fptlab.packing import pack_key
from fptlab.plan import resolve_config
from fptlab.sinks import NullSink, Sink
from fptlab.steps import BatchOrder, make_optimizer, pick_device, seed_everything, train_batch
from fptlab.tasks import TASKS
from fptlab.tasks.base import ArraySplit, chance_accuracy, data_fingerprint, with_validation
from fptlab.train import LoopState, RunResult, _evaluate_into, _loop_state, _stop_reason, _threads

PACK_ARTIFACT = "pack"  # a member's record of the pack it trained in (members' hashes), not config


@dataclass
class Member:
    """One cell of a pack: its config and where it records (as `train` takes them)."""

    cfg: RunConfig
    sink: Sink = field(default_factory=NullSink)
    run_dir: Path | None = None
    lineage: Lineage = field(default_factory=Lineage)
    weights_path: Path | None = None


@dataclass
class _Run:
    """A member while it trains: its place in the pack, its loop state and its solo optimiser's format."""

    member: Member
    cfg: RunConfig
    state: LoopState
    start: int
    done: int
    order: BatchOrder | None
    template: dict[str, Any]
    counts: Any
    status: str = ""
    stopped_early: bool = False


def train_pack(members: list[Member], *, data_dir: Path | None = None, progress: bool = False, threads: int | None = None,
               ) -> list[RunResult]:
    """Train the members as one pack; returns each member's RunResult, in order."""
    import torch

    if not members:
        return []
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or previous)
    try:
        return _train_pack(members, data_dir, progress)
    finally:
        torch.set_num_threads(previous)


def _train_pack(members: list[Member], data_dir: Path | None, progress: bool) -> list[RunResult]:
    import torch

    from fptlab._packed import PackedFPT, PackedOptimizer
    from fptlab.assets import data_dir as default_data_dir
    from fptlab.model import apply_trainable, build_model, count_parameters

    data_dir = Path(data_dir) if data_dir else default_data_dir()
    cfgs = [resolve_config(m.cfg, data_dir) for m in members]
    keys = {pack_key(c) for c in cfgs}
    if len(keys) != 1:
        raise FptlabError(f"cannot pack {[c.hash for c in cfgs]}: they do not share one frozen body (fptlab.packing.pack_key).")
    first = cfgs[0]
    device = pick_device(first.device)
    task = TASKS.get(first.task)
    data = with_validation(task, first.task_options, task.load(first.task_options, data_dir), first.val_fraction, data_dir)
    spec = BACKBONES.get(first.backbone)
    solo_models, runs, results = [], [], {}
    for i, (member, cfg) in enumerate(zip(members, cfgs)):
        seed_everything(cfg.seed)  # each member is initialised as it would be alone
        model = build_model(data.spec, cfg, weights_path=member.weights_path)
        groups = apply_trainable(model, spec, cfg.train)
        counts = count_parameters(model, groups)
        optimizer = make_optimizer(cfg, [p for p in model.parameters() if p.requires_grad])
        resumed = resume(Path(member.run_dir), member.lineage, config_hash=cfg.hash, model=model, optimizer=optimizer) \
            if member.run_dir is not None else Resumed()
        state = _loop_state(resumed.loop)
        order = BatchOrder(len(data.train), cfg.seed) if isinstance(data.train, ArraySplit) else None
        run = _Run(member, cfg, state, resumed.step, resumed.step, order, optimizer.state_dict(), counts)
        member.sink.start({
            "config_hash": cfg.hash, "config": cfg.to_dict(), "device": str(device), "threads": _threads(), "versions": versions(),
            "trainable_params": counts.trainable, "total_params": counts.total, "params_by_group": counts.by_group,
            "resumed_from": resumed.step, "data": data.description, "data_fingerprint": data_fingerprint(data),
            "checkpoint_warnings": resumed.warnings, "pack_size": len(members),
        })
        if member.run_dir is not None:
            _record_pack(member, [c.hash for c in cfgs])
        if state.finished:  # its final checkpoint: the run already ended; report it, train nothing
            run.status, run.stopped_early = state.finished, state.stopped_early
            results[i] = _finish(run, data, device, 0.0)
            continue
        if solo_models:
            _check_shared_body(solo_models[0], model, cfg)
        solo_models.append(model)
        runs.append((i, run, optimizer.state_dict()))
    if not runs:
        return [results[i] for i in range(len(members))]
    trainable = [n for n, p in solo_models[0].named_parameters() if p.requires_grad]
    packed = PackedFPT(solo_models, trainable).to(device)
    del solo_models
    optimizer = PackedOptimizer(packed, first.optimizer, [r.cfg.lr for _, r, _ in runs], [r.cfg.weight_decay for _, r, _ in runs],
                                [r.cfg.grad_clip for _, r, _ in runs])
    for row, (_i, _run, solo_state) in enumerate(runs):
        optimizer.load_member(row, solo_state)
    t0 = time.perf_counter()
    active = [(i, run) for i, run, _ in runs]
    bar = _Bar(progress, len(active), max(r.cfg.steps - r.start for _, r in active))
    graph = _Capture(packed, optimizer, first, device, data.spec.seq_len)
    packed.train()
    while active:
        left = _step(packed, optimizer, active, data, device, graph)
        for i, run in active:
            if run.status:
                results[i] = _finish(run, data, device, time.perf_counter() - t0)
        if left:
            rows = [row for row, (_i, run) in enumerate(active) if not run.status]
            active = [(i, run) for i, run in active if not run.status]
            if active:
                index = torch.tensor(rows, dtype=torch.long, device=device)
                packed.keep(index)
                optimizer.keep(index)
                graph.reset()  # new shapes and new storage: capture again
        bar.advance()
    bar.close()
    return [results[i] for i in range(len(members))]


def _record_pack(member: Member, hashes: list[str]) -> None:
    """The pack this member trains in, as a file in its run folder and an artifact record (run metadata)."""
    path = Path(member.run_dir) / "pack.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"members": hashes, "size": len(hashes)}, indent=1))
    member.sink.artifact(PACK_ARTIFACT, str(path), {"size": len(hashes), "members": hashes})


def _check_shared_body(reference: Any, model: Any, cfg: RunConfig) -> None:
    """Every frozen body parameter of `model` equals the pack's: a pack never trains on another body."""
    import torch

    ours = dict(model.backbone.named_parameters())
    for name, param in reference.backbone.named_parameters():
        if param.requires_grad:
            continue
        if not torch.equal(param, ours[name]):
            raise FptlabError(f"cell {cfg.hash} does not share the pack's frozen body (backbone.{name} differs); run it alone.")


def _update(packed: Any, optimizer: Any, x: Any, y: Any, cfg0: RunConfig, device: Any, *, capturing: bool = False) -> Any:
    """The training step proper on the stacked batch: forward, each member's loss, backward, each
    member's clipping, the update of the members whose loss and norm are finite. Returns (3, k):
    losses, gradient norms, correct labels. No host sync: a CUDA graph can capture it."""
    import torch
    import torch.nn.functional as F

    from fptlab.steps import _autocast

    optimizer.zero_grad(set_to_none=not capturing)
    with _autocast(cfg0, device) if not capturing else torch.autocast(device.type, torch.bfloat16, enabled=cfg0.precision == "bf16",
                                                                        cache_enabled=False):
        logits = packed(x)  # (k, B, labels, C)
    logits = logits.float()
    k = logits.shape[0]
    per_label = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none").reshape(k, -1)
    losses = per_label.sum(dim=1) / per_label.shape[1]
    losses.sum().backward()  # member j's parameters see only its own loss
    norms = optimizer.clip()
    correct = (logits.argmax(-1) == y).reshape(k, -1).sum(dim=1).float()
    finite = torch.isfinite(losses.detach()) & torch.isfinite(norms)
    optimizer.step(finite)
    return torch.stack([losses.detach(), norms.float(), correct])


def _step(packed: Any, optimizer: Any, active: list[tuple[int, _Run]], data: Any, device: Any, graph: Any) -> bool:
    """One step of every active member; evaluations, records and checkpoints of those that are due.
    True when some member left the pack (its `status` is set)."""
    import torch

    cfg0 = active[0][1].cfg
    xs, ys = [], []
    for _i, run in active:
        x, y = train_batch(data, run.order, run.done + 1, run.cfg)
        xs.append(x)
        ys.append(y)
    x, y = torch.stack(xs), torch.stack(ys)  # (k, B, ...), (k, B, labels)
    n_labels = y[0].numel()
    out = graph.run(x, y)
    if out is None:
        out = _update(packed, optimizer, x.to(device, non_blocking=True), y.to(device, non_blocking=True), cfg0, device)
    values = out.cpu().tolist()  # one sync for every member
    left = False
    for row, (_i, run) in enumerate(active):
        loss, norm, n_correct = values[0][row], values[1][row], values[2][row]
        step = run.done + 1
        metrics = {"train_loss": loss, "train_accuracy": n_correct / n_labels, "grad_norm": norm}
        if not (math.isfinite(loss) and math.isfinite(norm)):
            run.member.sink.log(step, metrics)
            run.status, left = "diverged", True  # its parameters were not updated: they are those of `done`
            _save_final(run, packed, optimizer, row)
            continue
        run.done = step
        state, cfg = run.state, run.cfg
        state.window_loss += loss
        state.window_accuracy += n_correct / n_labels
        state.window_steps += 1
        stopped = False
        if step % cfg.eval_every == 0 or step == cfg.steps:
            metrics.update(_evaluate_into(state, _MemberModel(packed, row), data, cfg, device, step))
            state.stop_reason = _stop_reason(state, cfg, data.val is not None)
            stopped = bool(state.stop_reason)
        run.member.sink.log(step, metrics)
        if run.member.run_dir is not None and cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
            _save(run, packed, optimizer, row, step)
        if stopped or step == cfg.steps:
            run.status, run.stopped_early, left = "completed", stopped, True
            _save_final(run, packed, optimizer, row)
    return left


def _save_final(run: _Run, packed: Any, optimizer: Any, row: int) -> None:
    """As a solo run: its last checkpoint says how it ended, so running it again reports, not retrains."""
    if run.member.run_dir is not None and run.cfg.checkpoint_every:
        run.state.finished, run.state.stopped_early = run.status, run.stopped_early
        _save(run, packed, optimizer, row, run.done)


class _Capture:
    """The pack's training step as one CUDA graph (`capture = "auto"`, on CUDA): after two eager steps
    (the warm-up), the step is captured once for the pack's shapes and replayed, the batch copied into
    its static buffers; a member leaving changes the shapes and the step is captured again. Anything
    that cannot be captured (an operation that syncs with the host, a CPU device) runs eagerly, and
    the first time a warning says why. Evaluation stays eager."""

    WARMUP = 2

    def __init__(self, packed: Any, optimizer: Any, cfg: RunConfig, device: Any, seq_len: int) -> None:
        self.packed, self.optimizer, self.cfg, self.device = packed, optimizer, cfg, device
        self.enabled = capture_enabled(cfg, device, packed.k * cfg.batch_size * seq_len)
        self.reset()
        self.warned = False

    def reset(self) -> None:
        self.graph, self.x, self.y, self.out, self.eager_steps = None, None, None, None, 0

    def run(self, x: Any, y: Any) -> Any:
        """The step's (3, k) outputs from the graph, or None: run it eagerly."""
        import torch

        if not self.enabled:
            return None
        if self.graph is None:
            if self.eager_steps < self.WARMUP:
                self.eager_steps += 1
                return None
            try:
                self._capture(x, y)
            except Exception as e:  # noqa: BLE001 - any capture failure: eager, said once
                self.enabled = False
                self.graph = None
                torch.cuda.synchronize()
                if not self.warned:
                    import warnings

                    from fptlab.errors import FptlabWarning

                    warnings.warn(f"the training step of this pack is not captured as a CUDA graph ({type(e).__name__}: {e}); "
                                  "it runs eagerly (set capture = \"off\" to skip the attempt).", FptlabWarning, stacklevel=2)
                    self.warned = True
                return None
        self.x.copy_(x, non_blocking=True)
        self.y.copy_(y, non_blocking=True)
        self.graph.replay()
        return self.out

    def _capture(self, x: Any, y: Any) -> None:
        import torch

        self.x = x.to(self.device).clone()
        self.y = y.to(self.device).clone()
        self.optimizer.zero_grad(set_to_none=False)
        graph = torch.cuda.CUDAGraph()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.cuda.graph(graph):
            self.out = _update(self.packed, self.optimizer, self.x, self.y, self.cfg, self.device, capturing=True)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = graph


CAPTURE_MAX_TOKENS = 8192  # tokens per step (members x batch x length) up to which a graph pays (see capture_enabled)


def capture_enabled(cfg: RunConfig, device: Any, tokens: int | None = None) -> bool:
    """Whether to capture the step: on CUDA, unless capture = "off". "auto" captures steps of up to
    CAPTURE_MAX_TOKENS tokens: the issue's H200 probe (GPT-2 base) found the paper's small steps bound
    by kernel launches (a graph: 25.8 -> 3.6 ms at batch 2) and no gain once a step is compute-bound
    (batch 128 at 64+ tokens); fptlab's own GPU measurement is in README, Packed trials."""
    if device.type != "cuda" or getattr(cfg, "capture", "auto") == "off":
        return False
    return tokens is None or tokens <= CAPTURE_MAX_TOKENS


def captured_alone(cfg: RunConfig) -> bool:
    """A cell that trains alone on CUDA with capture on and could be packed trains as a pack of one,
    whose step `_Capture` replays as a CUDA graph (the solo loop of `fptlab.train` has none)."""
    from fptlab.packing import alone_reason

    return cfg.capture != "off" and pick_device(cfg.device).type == "cuda" and not alone_reason(cfg)


def _save(run: _Run, packed: Any, optimizer: Any, row: int, step: int) -> None:
    from fptlab._packed import MemberView

    save_checkpoint(Path(run.member.run_dir), run.member.lineage, config_hash=run.cfg.hash, step=step,
                    model=MemberView(packed, row), optimizer=_OptimizerView(optimizer, row, run.template),
                    loop_state=asdict(run.state))


class _OptimizerView:
    """Member `row`'s optimiser state in its solo optimiser's format (what a checkpoint stores)."""

    def __init__(self, optimizer: Any, row: int, template: dict[str, Any]) -> None:
        self.optimizer, self.row, self.template = optimizer, row, template

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.member_state_dict(self.row, self.template)


class _MemberModel:
    """One member of the pack as a solo model for `fptlab.steps.evaluate`: x (B, ...) -> logits (B, labels, C)."""

    def __init__(self, packed: Any, row: int) -> None:
        import torch

        self.packed, self.index = packed, torch.tensor([row], device=next(packed.parameters()).device)

    def __call__(self, x: Any) -> Any:
        return self.packed(x.unsqueeze(0), index=self.index)[0]

    def eval(self) -> None:
        self.packed.eval()

    def train(self) -> None:
        self.packed.train()


def _finish(run: _Run, data: Any, device: Any, wall: float) -> RunResult:
    state, cfg = run.state, run.cfg
    steps = run.done - run.start
    result = RunResult(
        config_hash=cfg.hash, status=run.status, steps=run.done, test_accuracy=state.test_accuracy, test_loss=state.test_loss,
        best_test_accuracy=state.best_test_accuracy, train_accuracy=state.train_accuracy, train_loss=state.train_loss,
        trainable_params=run.counts.trainable, total_params=run.counts.total, params_by_group=run.counts.by_group,
        device=str(device), threads=_threads(), wall_seconds=wall, steps_per_second=steps / wall if wall > 0 else math.nan,
        stopped_early=run.stopped_early, resumed_from=run.start, config=cfg.to_dict(),
        val_accuracy=state.val_accuracy, best_val_accuracy=state.best_val_accuracy,
        selected_step=float(state.best_val_step) if data.val is not None and state.best_val_step else math.nan,
        selected_test_accuracy=state.test_at_best_val, stopped_at_target=state.stop_reason == "target",
        stopped_on_plateau=state.stop_reason == "plateau",
        chance_accuracy=chance_accuracy((data.val if data.val is not None else data.test).y), test_kept=data.test_kept,
    )
    run.member.sink.finish({k: v for k, v in result.as_dict().items() if k != "config"})
    return result


class _Bar:
    """A rich progress bar over the pack's steps (or nothing)."""

    def __init__(self, enabled: bool, members: int, steps: int) -> None:
        self.progress = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn(f"[bold]pack of {members}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=Console(stderr=True))
        self.progress.start()
        self.task = self.progress.add_task("pack", total=steps)

    def advance(self) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=1)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
