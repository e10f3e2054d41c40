"""The pieces that tie Ray Tune to the store: a search algorithm that claims cells, a driver-side
callback that writes what workers report and keeps leases fresh, and a stopper that ends the trials
this driver no longer owns (its lease lapsed and another driver took them over)."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

from ray.tune import Callback, Stopper
from ray.tune.search import Searcher

from fptlab.bodies import TRIAL_PREFIX, locate_body, trial_hash
from fptlab.checkpoint import CheckpointWarning
from fptlab.errors import DataNotFoundError, FptlabWarning
from fptlab.sinks import from_jsonable
from fptlab.store import StoreSink
from fptlab.store.models import DONE, PRUNED
from fptlab.sweep.grid import Cell
from fptlab.sweep.options import SweepOptions
from fptlab.sweep.trainable import EVENT, MEMBER, PAYLOAD, ROWS

TAKEN_OVER = "taken over by another driver"  # how a lost trial ends in this driver's view


class LeaseLostWarning(FptlabWarning):
    """This driver lost a trial's lease to another driver: the trial is stopped here."""


class ClaimingSearcher(Searcher):
    """Hands Tune one claimed cell per `suggest()`; FINISHED when nothing is left to claim.

    A cell with `weights = "trial:<hash>"` is handed out only once that trial's saved body can be
    found (the store's record of it, or its folder under --storage); while its source is still to run
    (in this sweep, or running elsewhere) it waits; a source that has failed for good, diverged,
    finished without a body, or that nobody will run makes the cell fail with a message saying why."""

    def __init__(self, store: Any, cells: list[Cell], owner: str, host: str, opts: SweepOptions, view: Any, *,
                 pack: int = 1) -> None:
        super().__init__()
        self.store, self.owner, self.host, self.opts, self.view = store, owner, host, opts, view
        self.pack = pack  # the largest pack one trial may hold (`fptlab.packing`)
        self.pending = [c.hash for c in cells]
        self.cells = {c.hash: c for c in cells}
        self.trials_root = (Path(opts.storage) / "trials").resolve()
        self.refused: dict[str, str] = {}  # cells failed here because their source cannot deliver

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        ready, waiting, bodies = self._triage()
        while ready and (config_hash := self._claim(ready)) is not None:
            ready.remove(config_hash)
            fence = trial_fence(self.store, config_hash, self.owner)
            if fence is not None:
                self.pending.remove(config_hash)
                params = {**self._params(config_hash, bodies.get(config_hash)), **fence}
                mates = self._mates(config_hash, ready, bodies)
                if mates:  # a pack: one trial, one frozen body, every member its own record
                    params["members"] = [_member_params(params), *mates]
                return params
            # Taken over between our claim and this read (our lease lapsed at once): it is not ours.
        # Nothing claimable now. Cells waiting on a source that is still to run: ask again later.
        return None if waiting else Searcher.FINISHED

    def _mates(self, first: str, ready: list[str], bodies: dict[str, Path]) -> list[dict[str, Any]]:
        """Claim up to pack - 1 more ready cells that share `first`'s frozen body."""
        if self.pack <= 1:
            return []
        from fptlab.packing import packable_with

        out: list[dict[str, Any]] = []
        device = "cuda" if self.opts.gpus_per_trial > 0 else "cpu"
        for cfg in packable_with(self.cells[first].config, [self.cells[h].config for h in ready], self.pack, device):
            h = cfg.hash
            if self.store.claim(h, self.owner, self.host, self.opts.lease_seconds, max_attempts=self.opts.retries + 1) is None:
                continue
            fence = trial_fence(self.store, h, self.owner)
            if fence is None:
                continue
            ready.remove(h)
            self.pending.remove(h)
            out.append(_member_params({**self._params(h, bodies.get(h)), **fence}))
        return out

    def _claim(self, hashes: list[str]) -> str | None:
        return self.store.next_claim(hashes, self.owner, self.host, self.opts.lease_seconds, max_attempts=self.opts.retries + 1)

    def _params(self, config_hash: str, body: Path | None) -> dict[str, Any]:
        return {
            "config_hash": config_hash,
            "config": self.cells[config_hash].config.to_dict(),
            "run_dir": str(self.trials_root / config_hash),
            "weights_path": str(body) if body else None,
            "data_dir": str(self.opts.data_dir) if self.opts.data_dir else None,
            "cpus_per_trial": self.opts.cpus_per_trial,  # pins the trial's torch threads
        }

    def _triage(self) -> tuple[list[str], list[str], dict[str, Path]]:
        """Pending cells split into ready to claim and waiting for a source (cells whose source can
        never deliver are failed on the way); with the body folder each ready dependent cell uses."""
        ready, waiting, bodies = [], [], {}
        states: dict[str, tuple[Path | None, str | None]] = {}  # one look per source, however many cells use it
        for config_hash in list(self.pending):
            source = trial_hash(self.cells[config_hash].config.weights)
            if source is None:
                ready.append(config_hash)
                continue
            if source not in states:
                states[source] = self._source_state(source)
            body, problem = states[source]
            if body is not None:
                ready.append(config_hash)
                bodies[config_hash] = body
            elif problem is None:
                waiting.append(config_hash)
            else:
                self._refuse(config_hash, source, problem)
        return ready, waiting, bodies

    def _source_state(self, source: str) -> tuple[Path | None, str | None]:
        """(body folder, None) when the source has completed and its body is there; (None, None) while
        it may still come; (None, why not) when it will not. A source the database does not know may
        still be a body folder under --storage (e.g. from `fptlab run --out`)."""
        rows = self.store.trials(where={"config_hash": source})
        status, attempts = (rows[0]["status"], rows[0]["attempts"]) if rows else (None, 0)
        if status in (None, "completed"):
            try:
                return locate_body(TRIAL_PREFIX + source, roots=[self.trials_root], store=self.store, storage=self.trials_root.parent), None
            except DataNotFoundError:
                pass
        if source in self.pending or status == "running":
            return None, None
        if status == "failed" and attempts < self.opts.retries + 1 and source in self.cells:
            return None, None
        if status is None:
            return None, "is not in the database: add the spec that defines it (a [sources] table) or run it first"
        if status in DONE:
            return None, f"{status} without a saved body (it needs save_body = true, and a body is saved only on completion)"
        return None, f"is {status} and this sweep will not run it (it is not one of its cells, or its attempts are used up)"

    def _refuse(self, config_hash: str, source: str, problem: str) -> None:
        self.pending.remove(config_hash)
        if self.store.claim(config_hash, self.owner, self.host, self.opts.lease_seconds, max_attempts=self.opts.retries + 1) is None:
            return  # someone else holds it, or it is no longer claimable: nothing to record here
        message = f"Cannot start: its weights come from trial {source}, which {problem}."
        StoreSink(self.store, config_hash, self.owner).fail(message)
        self.refused[config_hash] = "failed"
        self.view.finished(config_hash, "failed", None)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass


MEMBER_KEYS = ("config_hash", "config", "run_dir", "weights_path", "identity", "attempt", "recorded_through")


def _member_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: params[k] for k in MEMBER_KEYS}


def hashes_of(trial: Any) -> list[str]:
    """The cells a Tune trial runs: a pack's members, else its one cell."""
    members = trial.config.get("members")
    return [m["config_hash"] for m in members] if members else [trial.config["config_hash"]]


def trial_identity(trial: dict[str, Any]) -> str:
    """A token naming this trial in this database, which another database cannot share (its row id
    and creation time); checkpoints carry it (`fptlab.checkpoint.Lineage`)."""
    return f"trial {trial['id']} created {trial['created'].isoformat(sep=' ')}"


def recorded_through(store: Any, config_hash: str) -> int:
    """N such that every step 1..N of the trial has its metrics in the database (0: none): a resume
    may start from a checkpoint of step <= N only, so no step of a finished trial goes unrecorded."""
    steps = sorted({step for _h, _key, step, _value in store.curves([config_hash], ["train_loss"])})
    through = 0
    for step in steps:
        if step != through + 1:
            break
        through = step
    return through


def trial_fence(store: Any, config_hash: str, owner: str) -> dict[str, Any] | None:
    """What a claimed trial's worker needs to fence its checkpoints: the trial's identity, the claim's
    attempt (the fencing token) and the recorded steps. Read after the claim, so no earlier owner can
    add rows any more. None when `owner` does not hold the trial (any more)."""
    trial = store.trial_states([config_hash]).get(config_hash)
    if trial is None or trial["owner"] != owner or trial["status"] != "running":
        return None
    return {
        "identity": trial_identity(trial),
        "attempt": int(trial["attempts"]),
        "recorded_through": recorded_through(store, config_hash),
    }


class StoreCallback(Callback):
    """Runs in the sweep driver: the single writer of the store for this sweep. Each running trial's
    reports go into that trial's `StoreSink`, the same sink an in-process run writes through."""

    def __init__(self, store: Any, owner: str, opts: SweepOptions, view: Any, halving: Any = None) -> None:
        self.store, self.owner, self.opts, self.view = store, owner, opts, view
        self.halving = halving  # a tuned sweep's `fptlab.sweep.halving.ArmRungs`: the trials it cut are recorded pruned
        self._last_beat = 0.0
        self.sinks: dict[str, StoreSink] = {}
        self.finished: dict[str, str] = {}
        self.lost_trials: set[str] = set()  # Tune ids of trials another driver took over: `LostTrialStopper` ends them

    @staticmethod
    def _hash(trial: Any) -> str:
        return trial.config["config_hash"]

    def _sink(self, config_hash: str) -> StoreSink:
        if config_hash not in self.sinks:
            self.sinks[config_hash] = StoreSink(self.store, config_hash, self.owner)
        return self.sinks[config_hash]

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        for config_hash in hashes_of(trial):
            self.view.started(config_hash)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        config_hash = result.get(MEMBER) or self._hash(trial)  # a pack's report names its member
        if config_hash in self.finished:
            return  # a late report of a trial another driver now runs, or one already recorded: not ours to record
        sink = self._sink(config_hash)
        # Rows first: once another driver has taken this cell over, the sink drops our worker's values.
        sink.add_rows([(step, key, from_jsonable(value)) for step, key, value in result.get(ROWS, [])])
        sink.flush()
        if sink.stale:
            self._lose(trial, config_hash)
            return
        payload = {k: from_jsonable(v) for k, v in result.get(PAYLOAD, {}).items()}
        event = result.get(EVENT)
        if event == "start":
            sink.start(payload)
            for note in payload.get("checkpoint_warnings") or ():
                warnings.warn(f"trial {config_hash}: {note}", CheckpointWarning, stacklevel=1)
        elif event == "artifact":
            sink.artifact(payload["kind"], storage_relative(payload["location"], self.opts.storage), payload.get("meta", {}))
        elif event == "finish":
            sink.finish(payload)
            self._done(config_hash, payload["status"], payload.get("test_accuracy"))
        cut = self.halving.cuts.get(config_hash) if self.halving is not None else None
        if cut is not None and config_hash not in self.finished:  # the scheduler stopped it at this report
            sink.prune(cut.rung, cut.value, cut.cutoff)
            self._done(config_hash, PRUNED, None)
        self._beat(trials)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # Tune restarts the failed worker (it raised, or its process or node died) under this driver's
        # claim. The restart is a new attempt with its own checkpoint files, so a worker of the old one
        # that is not dead after all (a node cut off, not killed) cannot overwrite them; and it resumes
        # from what the database records now. A pack's members each get a new attempt of their own.
        members = trial.config.get("members") or [trial.config]
        for member in members:
            config_hash = member["config_hash"]
            if config_hash in self.finished:
                continue
            if config_hash in self.sinks:
                self.sinks[config_hash].flush()
            attempt = self.store.next_attempt(config_hash, self.owner)
            if attempt is None:
                self._lose(trial, config_hash)
                continue
            member["attempt"] = attempt
            member["recorded_through"] = recorded_through(self.store, config_hash)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        for config_hash in hashes_of(trial):
            if config_hash in self.finished:
                continue  # finished before the pack failed, or taken over: not this failure's
            self._sink(config_hash).fail(_error_text(trial))
            self._done(config_hash, "failed", None)

    def _lose(self, trial: Any, config_hash: str | None = None) -> None:
        """Another driver took this cell over (this driver's lease lapsed, e.g. while it was stalled):
        record nothing more of it, and once no cell of the trial is ours any more let
        `LostTrialStopper` end our worker's run at its next report, so it stops spending the CPUs and
        writing checkpoints of an attempt nobody will resume. (A pack's other members go on.)"""
        config_hash = config_hash or self._hash(trial)
        if self._lost(config_hash):
            return
        self.sinks.pop(config_hash, None)
        self.finished[config_hash] = TAKEN_OVER
        if all(self._lost(h) or h in self.finished for h in hashes_of(trial)):
            self.lost_trials.add(trial.trial_id)
        warnings.warn(
            f"trial {config_hash}: another driver took it over (this driver's lease of {self.opts.lease_seconds:g} s lapsed "
            "without a heartbeat); stopping it here, it finishes there.", LeaseLostWarning, stacklevel=1,
        )
        self.view.finished(config_hash, TAKEN_OVER, None)

    def _lost(self, config_hash: str) -> bool:
        return self.finished.get(config_hash) == TAKEN_OVER

    def _done(self, config_hash: str, status: str, accuracy: Any) -> None:
        self.sinks.pop(config_hash, None)
        self.finished[config_hash] = status
        self.view.finished(config_hash, status, accuracy)

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        self._beat(trials)

    def _beat(self, trials: list) -> None:
        now = time.monotonic()
        if now - self._last_beat < self.opts.lease_seconds / 4:
            return
        self._last_beat = now
        # PENDING trials hold a claim too (Tune asks for the next cell before resources free up).
        live = [(t, h) for t in trials if t.status in ("RUNNING", "PENDING") for h in hashes_of(t) if h not in self.finished]
        running = [h for _t, h in live]
        if running and self.store.heartbeat(running, self.owner) < len(running):
            states = self.store.trial_states(running)
            for trial, config_hash in live:
                state = states.get(config_hash) or {}
                if state.get("owner") != self.owner or state.get("status") != "running":
                    self._lose(trial, config_hash)


class LostTrialStopper(Stopper):
    """Stops, at its next report, each trial `StoreCallback` found taken over by another driver. (Tune
    asks the stopper before the callbacks see a result, so the report that reveals the loss is
    dropped by the callback and the one after it stops the trial.)"""

    def __init__(self, callback: StoreCallback) -> None:
        self.callback = callback

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return trial_id in self.callback.lost_trials

    def stop_all(self) -> bool:
        return False


def storage_relative(location: str, storage: Path) -> str:
    """An artifact's location as the store keeps it: relative to the sweep's --storage (so a report on
    another machine resolves it inside that machine's mount of the storage, and nothing else)."""
    path = Path(location)
    try:
        return path.resolve().relative_to(Path(storage).resolve()).as_posix()
    except ValueError:
        return location  # not under --storage: kept as written, and refused by every reader


def _error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text() if path else ""
    except OSError:
        text = ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-3:]) if lines else "trial failed (no error file)"
