"""Checkpoints that cannot hurt a run (issue 8): a planted pickle runs nothing, a damaged file is set
aside and the run falls back, a stale worker never overwrites the current attempt's file, a resume
trusts only its own trial in its own database and steps the database recorded, and a full disk says
so and leaves no temporary file."""

from __future__ import annotations

import errno
import io
import os
import pickle
import re
import shutil
import subprocess
import sys
import uuid

import pytest
import torch

import fptlab.checkpoint as ckpt
import fptlab.train as train_mod
from fptlab.checkpoint import CheckpointWarning, Lineage, save_checkpoint
from fptlab.errors import FptlabError
from fptlab.sinks import NullSink
from fptlab.store import Store, StoreSink
from fptlab.train import train
from tests.test_train import tiny

SWEEP = Lineage("trial 1 created 2025-01-01 00:00:00.000001", attempt=1, recorded_through=None)


class Steps(NullSink):
    """Records the steps a run trains and what it reports at start."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.info: dict = {}

    def start(self, info):
        self.info = info

    def log(self, step, metrics):
        self.steps.append(step)


def run(cfg, run_dir, data_dir, lineage=None, **kw):
    sink = Steps()
    return train(cfg, sink, data_dir=data_dir, run_dir=run_dir, lineage=lineage, **kw), sink


def crash_after(monkeypatch, n_steps: int) -> None:
    """Make train_step raise KeyboardInterrupt on call n_steps + 1 (a killed worker)."""
    real, calls = train_mod.train_step, {"n": 0}

    def step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > n_steps:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "train_step", step)


def checkpoints(run_dir):
    return sorted(p.name for p in run_dir.iterdir() if p.name.startswith("checkpoint"))


# ---- item 1: nothing read from disk runs code --------------------------------------------------------
class _Planted:
    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _hostile_bytes(kind: str, marker) -> bytes:
    payload = {"config_hash": "x", "step": 1, "trainable": {}, "optimizer": {}, "torch_rng": None, "loop": _Planted(marker)}
    if kind == "torch-zip":
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        return buffer.getvalue()
    return pickle.dumps(payload, protocol=2 if kind == "pickle-2" else 5)


@pytest.mark.parametrize("kind", ["torch-zip", "pickle-2", "pickle-5"])
@pytest.mark.parametrize("name", ["legacy", "current"])
def test_a_planted_pickle_runs_nothing_and_the_run_starts_over(kind, name, data_dir, tmp_path):
    cfg = tiny(checkpoint_every=2)
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    marker = tmp_path / "PWNED"
    target = run_dir / "checkpoint.pt" if name == "legacy" else Lineage().path(run_dir, 4)
    target.write_bytes(_hostile_bytes(kind, marker))
    with pytest.warns(CheckpointWarning, match=r"REFUSED checkpoint .*could run code.*starts again from step 0") as caught:
        result, sink = run(cfg, run_dir, data_dir)
    assert not marker.exists()  # the planted command never ran
    ours = [str(w.message) for w in caught if issubclass(w.category, CheckpointWarning)]
    assert len(ours) == 1 and str(target) in ours[0]
    assert result.resumed_from == 0 and sink.steps == list(range(1, 7))
    assert len(list(run_dir.glob(f"{target.name}.refused-*"))) == 1  # kept aside for inspection
    assert not target.exists() or ckpt.read_checkpoint(target)["config_hash"] == cfg.hash  # the new run's own
    assert sink.info["checkpoint_warnings"] and "REFUSED" in sink.info["checkpoint_warnings"][0]
    assert result.test_loss == train(cfg, data_dir=data_dir).test_loss  # the same run as from scratch


def test_a_hostile_file_also_sets_aside_the_folders_other_checkpoints(monkeypatch, data_dir, tmp_path):
    cfg = tiny(checkpoint_every=2)
    run_dir = tmp_path / "r"
    crash_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, run_dir, data_dir)  # leaves checkpoint ...-s2.pt
    monkeypatch.undo()
    Lineage().path(run_dir, 3).write_bytes(_hostile_bytes("torch-zip", tmp_path / "PWNED"))
    with pytest.warns(CheckpointWarning, match="1 other checkpoint"):
        result, _ = run(cfg, run_dir, data_dir)
    assert result.resumed_from == 0 and len(list(run_dir.glob("*.untrusted-*"))) == 1


# ---- item 5: a damaged file is set aside; the run falls back ------------------------------------------
def _damage(path, how: str) -> None:
    data = path.read_bytes()
    damaged = {
        "empty": b"",  # EOFError
        "half": data[: len(data) // 2],  # RuntimeError: PytorchStreamReader failed finding central directory
        "tail": data[:-10],  # OSError: [Errno 22] Invalid argument
        "garbage": bytes(range(186, 256)) * 8,  # UnpicklingError
        "text": b"hello world",  # KeyError
    }[how]
    path.write_bytes(damaged)


@pytest.mark.parametrize("how", ["empty", "half", "tail", "garbage", "text"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(how, monkeypatch, data_dir, tmp_path):
    cfg = tiny(checkpoint_every=2, steps=8, eval_every=2)
    straight = train(cfg, data_dir=data_dir)
    run_dir = tmp_path / "r"
    crash_after(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, run_dir, data_dir)  # checkpoints at steps 2 and 4
    monkeypatch.undo()
    newest = Lineage().path(run_dir, 4)
    _damage(newest, how)
    with pytest.warns(CheckpointWarning, match=re.escape(f"Checkpoint {newest} is set aside as ") + ".*corrupt-"):
        resumed, sink = run(cfg, run_dir, data_dir)
    assert resumed.resumed_from == 2 and sink.steps == list(range(3, 9))
    assert (resumed.test_loss, resumed.train_loss) == (straight.test_loss, straight.train_loss)
    assert len(list(run_dir.glob("*.corrupt-*"))) == 1
    again, sink = run(cfg, run_dir, data_dir)  # the damaged file is out of the way: no warning, nothing retrained
    assert sink.steps == [] and again.test_loss == straight.test_loss


@pytest.mark.parametrize("how", ["empty", "tail", "garbage"])
def test_a_damaged_legacy_checkpoint_no_longer_fails_the_run_forever(how, data_dir, tmp_path):
    cfg = tiny(checkpoint_every=2)
    run_dir = tmp_path / "r"
    run(cfg, tmp_path / "src", data_dir)
    (run_dir).mkdir()
    legacy = run_dir / "checkpoint.pt"
    legacy.write_bytes(sorted((tmp_path / "src").glob("checkpoint-*.pt"))[-1].read_bytes())
    _damage(legacy, how)
    with pytest.warns(CheckpointWarning, match="checkpoint.pt is set aside"):
        result, sink = run(cfg, run_dir, data_dir)
    assert result.status == "completed" and result.resumed_from == 0 and sink.steps == list(range(1, 7))


# ---- item 3: fencing by attempt; only recorded steps --------------------------------------------------
def test_a_stale_attempt_cannot_overwrite_the_current_attempts_checkpoint(monkeypatch, tmp_path):
    """Two workers of one trial (attempt 1 whose driver lost the lease, attempt 2 that took over) save
    the same step at once: the old code shared `checkpoint.tmp`, so one rename failed or one file won."""
    cfg = tiny(checkpoint_every=2)
    stale, current = Lineage(SWEEP.identity, 1), Lineage(SWEEP.identity, 2)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters())
    real_save, interleaved = torch.save, {"done": False}

    def save_while_the_other_saves(obj, f, *a, **k):
        if not interleaved["done"] and obj["attempt"] == 1:
            interleaved["done"] = True
            with torch.no_grad():
                model.weight.fill_(2.0)
            save_checkpoint(tmp_path, current, config_hash=cfg.hash, step=4, model=model, optimizer=opt, loop_state={})
            with torch.no_grad():
                model.weight.fill_(1.0)
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save_while_the_other_saves)
    with torch.no_grad():
        model.weight.fill_(1.0)
    save_checkpoint(tmp_path, stale, config_hash=cfg.hash, step=4, model=model, optimizer=opt, loop_state={})
    monkeypatch.undo()
    assert checkpoints(tmp_path) == sorted([stale.path(tmp_path, 4).name, current.path(tmp_path, 4).name])
    assert torch.load(current.path(tmp_path, 4), weights_only=True)["trainable"]["weight"].eq(2.0).all()


def test_pruning_keeps_two_per_writer_and_drops_only_earlier_attempts(tmp_path):
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters())
    first, second, other_db = Lineage(SWEEP.identity, 1), Lineage(SWEEP.identity, 2), Lineage("trial 1 created elsewhere", 1)

    def save(lineage, step):
        save_checkpoint(tmp_path, lineage, config_hash="h", step=step, model=model, optimizer=opt, loop_state={})

    for step in (2, 4, 6):
        save(first, step)
        save(other_db, step)
    (tmp_path / f"{first.path(tmp_path, 8).name}.tmp-1-dead").write_bytes(b"half")  # a killed save
    save(first, 8)
    assert [n for n in checkpoints(tmp_path) if f"-{first.tag}-" in n] == [first.path(tmp_path, s).name for s in (6, 8)]
    save(second, 8)
    assert first.path(tmp_path, 8).exists()  # the new attempt holds one file: keep the old one to fall back to
    save(second, 10)
    assert [n for n in checkpoints(tmp_path) if f"-{first.tag}-" in n] == [second.path(tmp_path, s).name for s in (10, 8)]
    assert len([n for n in checkpoints(tmp_path) if f"-{other_db.tag}-" in n]) == 2  # never touched


def test_resume_starts_only_from_steps_the_database_recorded(monkeypatch, data_dir, tmp_path):
    cfg = tiny(checkpoint_every=2, steps=8, eval_every=2)
    straight = train(cfg, data_dir=data_dir)
    run_dir = tmp_path / "r"
    crash_after(monkeypatch, 7)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, run_dir, data_dir, SWEEP)  # checkpoints at 4 and 6; say the database got steps 1..5 only
    monkeypatch.undo()
    takeover = Lineage(SWEEP.identity, attempt=2, recorded_through=5)
    with pytest.warns(CheckpointWarning, match=re.escape(f"{SWEEP.path(run_dir, 6)} is ignored: it is at step 6") + ".* through 5"):
        resumed, sink = run(cfg, run_dir, data_dir, takeover)
    assert resumed.resumed_from == 4 and sink.steps == list(range(5, 9))
    assert resumed.test_loss == straight.test_loss


def test_nothing_recorded_means_a_final_checkpoint_is_not_a_result(data_dir, tmp_path):
    cfg = tiny(checkpoint_every=2)
    first, _ = run(cfg, tmp_path, data_dir, SWEEP)
    with pytest.warns(CheckpointWarning, match="ignored: it is at step 6"):
        again, sink = run(cfg, tmp_path, data_dir, Lineage(SWEEP.identity, 2, recorded_through=0))
    assert again.resumed_from == 0 and sink.steps == list(range(1, 7))  # trained, so its curve gets recorded
    done, sink = run(cfg, tmp_path, data_dir, Lineage(SWEEP.identity, 3, recorded_through=6))
    assert done.resumed_from == 6 and sink.steps == [] and done.test_loss == first.test_loss  # all recorded: no retraining


# ---- item 4: a checkpoint names its trial and database --------------------------------------------------
def test_a_checkpoint_of_another_trial_or_database_is_ignored(data_dir, tmp_path):
    cfg = tiny(checkpoint_every=2)
    run(cfg, tmp_path, data_dir, SWEEP)
    elsewhere = Lineage("trial 1 created 2026-02-02 00:00:00", attempt=1, recorded_through=6)
    with pytest.warns(CheckpointWarning, match=r"checkpoint-.* is ignored: it belongs to another trial or database"):
        result, sink = run(cfg, tmp_path, data_dir, elsewhere)
    assert result.resumed_from == 0 and sink.steps == list(range(1, 7))
    # The same file renamed to look like ours is still refused by what it says inside.
    mine = sorted(tmp_path.glob(f"checkpoint-{SWEEP.tag}-*.pt"))[-1]
    mine.rename(Lineage(elsewhere.identity, 7).path(tmp_path, 6))
    for path in tmp_path.glob(f"checkpoint-{elsewhere.tag}-a1-*.pt"):
        path.unlink()
    with pytest.warns(CheckpointWarning, match=re.escape(f"belongs to '{SWEEP.identity}'")):
        result, sink = run(cfg, tmp_path, data_dir, elsewhere)
    assert result.resumed_from == 0


def _claimed(store: Store, cfg, owner: str):
    from fptlab.sweep.tune_glue import trial_fence

    store.upgrade()
    exp = store.upsert_experiment("e", "", "[grid]", "s")
    store.add_trials(exp, [cfg])
    assert store.next_claim([cfg.hash], owner, "host", 300.0, 3) == cfg.hash
    return trial_fence(store, cfg.hash, owner)


def test_a_new_database_on_old_storage_trains_and_records_every_step(data_dir, tmp_path):
    """Issue 8 item 4: a new --db with the default --storage found the old final checkpoint and marked
    the cell completed with 0 metric rows."""
    cfg = tiny(checkpoint_every=2)
    storage = tmp_path / "trials" / cfg.hash

    def sweep_cell(db: str) -> None:
        store = Store(f"sqlite:///{tmp_path / db}")
        sink = StoreSink(store, cfg.hash, "driver")
        result = train(cfg, sink, data_dir=data_dir, run_dir=storage, lineage=Lineage(**_claimed(store, cfg, "driver")))
        assert sink.applied and result.status == "completed" and result.resumed_from == 0
        assert store.statuses([cfg.hash]) == {cfg.hash: "completed"}
        assert store.count_metrics(cfg.hash, "train_loss") == 6 and store.results([cfg.hash])[cfg.hash]["threads"] >= 1
        store.close()

    sweep_cell("old.db")
    with pytest.warns(CheckpointWarning, match="belongs to another trial or database"):
        sweep_cell("new.db")


def test_the_searchers_fence_names_attempt_identity_and_recorded_steps(tmp_path):
    from fptlab.sweep.tune_glue import recorded_through, trial_fence

    cfg = tiny()
    a, b = Store(f"sqlite:///{tmp_path / 'a.db'}"), Store(f"sqlite:///{tmp_path / 'b.db'}")
    fence_a, fence_b = _claimed(a, cfg, "A"), _claimed(b, cfg, "A")
    assert fence_a["attempt"] == 1 and fence_a["recorded_through"] == 0
    assert fence_a["identity"] != fence_b["identity"]  # same config, same row id: still two databases
    a.log_metrics(cfg.hash, [(s, "train_loss", 0.5) for s in (1, 2, 3, 5)], owner="A")
    assert recorded_through(a, cfg.hash) == 3  # step 4 is missing: 5 is not covered
    a.release("A")
    assert a.next_claim([cfg.hash], "B", "host", 300.0, 3) == cfg.hash
    fence = trial_fence(a, cfg.hash, "B")
    assert (fence["attempt"], fence["recorded_through"], fence["identity"]) == (2, 3, fence_a["identity"])
    assert trial_fence(a, cfg.hash, "A") is None  # A no longer holds it: its worker must not start
    a.close()
    b.close()


def test_a_trial_tune_restarts_resumes_from_what_is_recorded_by_then(tmp_path):
    """Tune retries a failed worker with the params of the original claim: without a refresh, its
    `recorded_through` would still say 0 and the retry would start over from step 0."""
    from types import SimpleNamespace

    from fptlab.sweep.options import SweepOptions
    from fptlab.sweep.tune_glue import StoreCallback

    cfg = tiny()
    store = Store(f"sqlite:///{tmp_path / 'a.db'}")
    fence = _claimed(store, cfg, "A")
    store.log_metrics(cfg.hash, [(s, "train_loss", 0.5) for s in range(1, 5)], owner="A")
    trial = SimpleNamespace(config={"config_hash": cfg.hash, **fence})
    StoreCallback(store, "A", SweepOptions(), view=None).on_trial_recover(0, [trial], trial)
    assert trial.config["recorded_through"] == 4 and fence["recorded_through"] == 0
    store.close()


# ---- item 7: a full disk ---------------------------------------------------------------------------------
class _FullDisk(io.FileIO):
    """A file on a disk with `room` bytes left: writes beyond raise ENOSPC, as the kernel does."""

    room = 2000

    def write(self, data):
        if self.tell() + len(memoryview(data)) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


def _fake_open(path, mode="r", *args, **kwargs):
    return _FullDisk(path, mode.replace("b", "")) if "w" in mode else open(path, mode, *args, **kwargs)


def test_a_full_disk_says_so_and_leaves_no_temporary_file(monkeypatch, data_dir, tmp_path):
    monkeypatch.setattr(ckpt, "open", _fake_open, raising=False)
    with pytest.raises(FptlabError, match=re.escape(f"no space left on {tmp_path} (")):
        run(tiny(checkpoint_every=2), tmp_path, data_dir)
    assert list(tmp_path.iterdir()) == []


def test_an_enospc_raised_by_torch_itself_says_so_too(monkeypatch, tmp_path):
    def full(obj, f, *a, **k):
        f.write(b"PK")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    model = torch.nn.Linear(2, 2)
    with pytest.raises(FptlabError, match=re.escape(f"no space left on {tmp_path} (")):
        save_checkpoint(tmp_path, Lineage(), config_hash="h", step=1, model=model, optimizer=torch.optim.Adam(model.parameters()), loop_state={})
    assert list(tmp_path.iterdir()) == []


def test_a_full_tmpfs_says_so_and_leaves_no_temporary_file(data_dir, tmp_path):
    """The real thing where the test may mount a file system (root in a container)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("no mount command here")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        with pytest.raises(FptlabError, match=re.escape(f"no space left on {mount} (")):
            run(tiny(checkpoint_every=2), mount, data_dir)
        assert [p.name for p in mount.iterdir() if ".tmp-" in p.name] == []  # earlier checkpoints that fitted stay
    finally:
        subprocess.run(["umount", str(mount)], check=False)


# ---- item 11: threads pinned and recorded; sweep trial == fptlab run ---------------------------------------
def test_threads_are_pinned_recorded_and_restored(data_dir):
    before = torch.get_num_threads()
    sink = Steps()
    result = train(tiny(), sink, data_dir=data_dir, threads=1)
    assert result.threads == 1 and sink.info["threads"] == 1
    assert torch.get_num_threads() == before
    with pytest.raises(FptlabError, match="threads must be a positive"):
        train(tiny(), data_dir=data_dir, threads=0)


def test_a_sweep_trial_and_fptlab_run_give_identical_curves(monkeypatch, data_dir, tmp_path):
    """Issue 8 item 11: the same config gave 0.7724 in a sweep and 0.7707 with `fptlab run` on one
    machine, because the Ray worker's torch used another thread count. The trial now pins its threads
    to the CPUs it holds; `fptlab run --threads N` pins N (default: torch's own setting)."""
    from ray import tune

    from fptlab.sinks import read_jsonl
    from fptlab.sweep.trainable import fpt_trainable

    cfg = tiny(task="bit_memory", backbone="bert-tiny", steps=6, eval_every=3)
    (tmp_path / "run.toml").write_text(_toml(cfg.to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "2", "FPTLAB_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}  # --threads wins
    cmd = [sys.executable, "-m", "fptlab.cli", "run", "--config", str(tmp_path / "run.toml"), "--out", str(tmp_path / "out"),
           "--data-dir", str(data_dir), "--no-progress", "--threads", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    records = read_jsonl(tmp_path / "out" / cfg.hash / "metrics.jsonl")
    by_run = [{k: v for k, v in r.items() if k not in ("event", "time")} for r in records if r["event"] == "log"]
    assert next(r for r in records if r["event"] == "start")["threads"] == 1

    reports = []
    monkeypatch.setattr(tune, "report", reports.append)
    torch.set_num_threads(2)  # what torch in a Ray worker may default to, whatever CPUs the trial holds
    try:
        fpt_trainable({"config_hash": cfg.hash, "config": cfg.to_dict(), "run_dir": str(tmp_path / "trial"),
                       "weights_path": None, "data_dir": str(data_dir), "cpus_per_trial": 1.0,
                       "identity": f"trial 1 created {uuid.uuid4()}", "attempt": 1, "recorded_through": 0})
    finally:
        torch.set_num_threads(1)
    rows = [row for report in reports for row in report["fpt_rows"]]
    by_trial = {}
    for step, key, value in rows:
        by_trial.setdefault(step, {"step": step})[key] = value
    assert next(r for r in reports if r["fpt_event"] == "start")["fpt_payload"]["threads"] == 1
    assert [by_trial[s] for s in sorted(by_trial)] == by_run  # every value of every step, bit for bit


def _toml(raw: dict) -> str:
    import json

    lines, tables = [], []
    for key, value in raw.items():
        if isinstance(value, dict):
            tables.append(f"[{key}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in value.items() if v is not None))
        elif value is not None:
            lines.append(f"{key} = {json.dumps(value)}\n")
    return "".join(lines) + "\n".join(tables)
