"""Small resumable checkpoints: only the trainable parameters, the optimiser state, the RNG state and
the loop's running state. A frozen GPT-2 run's checkpoint is kilobytes-to-megabytes, not 500 MB.

What a resume may trust (issue 8):

- Nothing read runs code. Files load through torch's weights-only unpickler (tensors and plain data
  only). A file that is a well-formed pickle yet refused by it holds other objects: it was not
  written by fptlab, so it is treated as hostile (see `resume`).
- Each writer has its own files: `checkpoint-<lineage tag>-a<attempt>-s<step>.pt`. The tag digests
  the trial's identity in its database, the attempt is the claim's fencing token, and every save
  goes through its own temporary file. A stale worker of an older attempt (its driver lost the
  lease) therefore never renames over the current attempt's checkpoint.
- A checkpoint is used only if it names this config, this trial in this database, and (in a sweep)
  a step whose metrics are all recorded there; anything else is ignored with a warning naming the
  file. So a trial is never `completed` from a checkpoint whose curve is not in the database.
- A corrupt or truncated file is set aside (renamed `<name>.corrupt-<time>`) and the resume falls
  back to the previous checkpoint (each writer keeps its last `KEEP`) or to step 0.
- A full disk fails the save with "no space left on <folder>" and removes the temporary file.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import pickle
import pickletools
import re
import shutil
import time
import uuid
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fptlab.errors import FptlabError, FptlabWarning

KEEP = 2  # checkpoints each writer keeps: the newest, and one to fall back to if it is damaged
LEGACY_FILE = "checkpoint.pt"  # the single file older fptlab versions wrote
NAME = re.compile(r"^checkpoint-(?P<tag>[0-9a-f]{8})-a(?P<attempt>\d+)-s(?P<step>\d+)\.pt$")
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class CheckpointWarning(FptlabWarning):
    """A checkpoint was ignored, set aside or refused; the run continues without it."""


class _Unusable(Exception):
    """Internal: a checkpoint file that cannot be used (`hostile`: it holds more than plain data)."""

    def __init__(self, reason: str, hostile: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.hostile = reason, hostile


@dataclass(frozen=True)
class Lineage:
    """Whose checkpoints a run folder holds and which of them a resume may trust.

    `identity` names the trial in its database (the sweep passes "trial <id> created <time>", which
    no other database shares); "run" is a standalone `fptlab run` folder. `attempt` is the claim's
    attempt number, the fencing token (0 outside a sweep). `recorded_through` = N means steps 1..N
    of the trial are all in the database; None means there is no database to check against."""

    identity: str = "run"
    attempt: int = 0
    recorded_through: int | None = None

    @property
    def tag(self) -> str:
        return hashlib.sha256(self.identity.encode()).hexdigest()[:8]

    def path(self, run_dir: Path, step: int) -> Path:
        return Path(run_dir) / f"checkpoint-{self.tag}-a{self.attempt}-s{step}.pt"


@dataclass
class Resumed:
    """What `resume` restored: the step and loop state (0 and None: start over), and the warnings."""

    step: int = 0
    loop: dict[str, Any] | None = None
    path: Path | None = None
    warnings: list[str] = field(default_factory=list)


# ---- saving --------------------------------------------------------------------------------------
class _Writer:
    """The file torch writes into. Torch turns a failed write into RuntimeError("[enforce fail at
    inline_container.cc...] unexpected pos"), losing the OSError: keep it to say what happened."""

    def __init__(self, f: Any) -> None:
        self.f, self.error = f, None

    def write(self, data: Any) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def flush(self) -> None:
        self.f.flush()


def save_checkpoint(
    run_dir: Path, lineage: Lineage, *, config_hash: str, step: int, model: Any, optimizer: Any, loop_state: dict
) -> Path:
    """Write this writer's checkpoint of `step` atomically (a kill mid-save leaves the previous ones
    intact), then drop this writer's older ones beyond `KEEP`. Returns the file."""
    import torch

    state = {
        "config_hash": config_hash,
        "identity": lineage.identity,
        "attempt": lineage.attempt,
        "step": step,
        "trainable": {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad},
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "loop": loop_state,
    }
    path = lineage.path(run_dir, step)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")  # never shared by two writers
    writer = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            writer = _Writer(f)
            torch.save(state, writer)
            f.flush()
            os.fsync(f.fileno())  # the rename below must never expose a file whose bytes are not on disk
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, Exception):
            raise _save_error(path, e, writer.error if writer else None) from None
        raise
    _prune(Path(run_dir), lineage)
    return path


def _save_error(path: Path, error: Exception, write_error: OSError | None) -> FptlabError:
    cause = write_error or error
    if isinstance(cause, OSError) and cause.errno in NO_SPACE:
        try:
            free = f"{shutil.disk_usage(path.parent).free / 2**20:.1f} MiB free"
        except OSError:
            free = "free space unknown"
        return FptlabError(
            f"Could not save checkpoint {path.name}: no space left on {path.parent} ({free}). Free space there "
            "or put the run folders on a larger disk (--storage for sweeps, --out for runs); the partial file "
            "was removed and the run can resume from its previous checkpoint."
        )
    return FptlabError(f"Could not save checkpoint {path}: {type(cause).__name__}: {cause}. The partial file was removed.")


def _prune(run_dir: Path, lineage: Lineage) -> None:
    """Keep this writer's newest `KEEP` (and drop temporary files a killed save of it left); once it
    holds that many, drop what its earlier attempts of the same trial left. Files of other trials,
    databases or later attempts are never touched."""
    mine, earlier, temporary = [], [], []
    prefix = f"checkpoint-{lineage.tag}-a{lineage.attempt}-s"
    for path in run_dir.iterdir():
        m = NAME.match(path.name)
        if m and m["tag"] == lineage.tag and int(m["attempt"]) == lineage.attempt:
            mine.append((int(m["step"]), path))
        elif m and m["tag"] == lineage.tag and int(m["attempt"]) < lineage.attempt:
            earlier.append(path)
        elif path.name.startswith(prefix) and ".pt.tmp-" in path.name:
            temporary.append(path)  # this writer saves one file at a time, and that save has finished
    mine.sort(reverse=True)
    for path in [p for _, p in mine[KEEP:]] + temporary + (earlier if len(mine) >= KEEP else []):
        path.unlink(missing_ok=True)


# ---- loading -------------------------------------------------------------------------------------
def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's contents, loaded without running code; raises `_Unusable` saying why not."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain data only: runs no code
    except pickle.UnpicklingError as e:
        if _well_formed_pickle(path):
            raise _Unusable(
                "it holds objects other than tensors and plain data, so it was not loaded (unpickling them could run "
                "code); fptlab never writes such a file", hostile=True,
            ) from None
        raise _Unusable(f"it is damaged ({_first_line(e)})") from None
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EPERM):
            raise _Unusable(f"it cannot be read ({e.strerror})") from None
        raise _Unusable(f"it is damaged or truncated (OSError: {e.strerror or e})") from None
    except Exception as e:  # EOFError (empty), RuntimeError (torch's zip reader), KeyError, ...: damaged
        raise _Unusable(f"it is damaged or truncated ({type(e).__name__}: {_first_line(e)})") from None
    if not isinstance(state, dict) or not {"config_hash", "step", "trainable", "optimizer", "torch_rng", "loop"} <= set(state):
        raise _Unusable("it is not an fptlab checkpoint (its contents lack the expected fields)")
    return state


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[-1].strip() if text else type(e).__name__


def _well_formed_pickle(path: Path) -> bool:
    """Whether the file's pickle stream(s) parse completely: then the weights-only unpickler refused
    its contents, not damaged bytes. A torch zip file's pickle is its `data.pkl` member."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if n.endswith("data.pkl")]
                if len(names) != 1:
                    return False
                data = z.read(names[0])
        else:
            data = Path(path).read_bytes()
        stream = io.BytesIO(data)
        while stream.tell() < len(data):  # torch's legacy format is several pickles in a row
            for _ in pickletools.genops(stream):
                pass
        return len(data) > 0
    except Exception:
        return False


def _candidates(run_dir: Path) -> list[tuple[Path, str | None, int, int | None]]:
    """Checkpoint files in `run_dir` as (path, tag, attempt, step), newest step first (a legacy file,
    whose step is only known once read, last)."""
    found = []
    for path in Path(run_dir).iterdir() if Path(run_dir).is_dir() else ():
        m = NAME.match(path.name)
        if m:
            found.append((path, m["tag"], int(m["attempt"]), int(m["step"])))
    found.sort(key=lambda c: (c[3], c[2]), reverse=True)
    legacy = Path(run_dir) / LEGACY_FILE
    return found + ([(legacy, None, 0, None)] if legacy.is_file() else [])


def resume(run_dir: Path, lineage: Lineage, *, config_hash: str, model: Any, optimizer: Any) -> Resumed:
    """Restore the newest checkpoint in `run_dir` this run may trust into `model` and `optimizer`.

    Every file passed over gets a warning naming it. Files of another trial or database, or beyond the
    steps the database recorded, are left in place and ignored. A damaged file is renamed
    `<name>.corrupt-<time>` and the next older one is tried. A file holding objects other than tensors
    and plain data is treated as hostile: it is renamed `<name>.refused-<time>` and never loaded, the
    folder's other checkpoints are renamed `<name>.untrusted-<time>`, and the run starts at step 0.
    Starting over rather than failing: a planted file must not block the cell forever (retries would
    fail the same way), and whoever could plant it could also have altered the other checkpoints, which
    hold plain tensors that no loader can vet; the loud warning and the renamed file keep the evidence."""
    out = Resumed()
    for path, tag, _attempt, step in _candidates(run_dir):
        if tag is not None and tag != lineage.tag:
            out.warnings.append(f"Checkpoint {path} is ignored: it belongs to another trial or database.")
            continue
        if _beyond(lineage, step):
            out.warnings.append(_beyond_message(path, step, lineage))
            continue
        try:
            state = read_checkpoint(path)
        except _Unusable as e:
            if e.hostile:
                out.warnings.append(_refuse(path, e.reason, run_dir))
                return _warned(Resumed(warnings=out.warnings))
            out.warnings.append(f"Checkpoint {path} is set aside as {_set_aside(path, 'corrupt')}: {e.reason}.")
            continue
        problem = _mismatch(state, config_hash, lineage, model)
        if problem is None:
            problem = _apply(state, model, optimizer)
        if problem is not None:
            out.warnings.append(f"Checkpoint {path} is ignored: {problem}.")
            continue
        out.step, out.loop, out.path = int(state["step"]), dict(state["loop"]), path
        break
    return _warned(out)


def _warned(out: Resumed) -> Resumed:
    for message in out.warnings:
        warnings.warn(message, CheckpointWarning, stacklevel=3)
    return out


def _beyond(lineage: Lineage, step: int | None) -> bool:
    return lineage.recorded_through is not None and step is not None and step > lineage.recorded_through


def _beyond_message(path: Path, step: int | None, lineage: Lineage) -> str:
    return (
        f"Checkpoint {path} is ignored: it is at step {step} but the database records this trial's steps only "
        f"through {lineage.recorded_through} (a driver that lost the trial wrote it, or its records were lost)."
    )


def _refuse(path: Path, reason: str, run_dir: Path) -> str:
    refused = _set_aside(path, "refused")
    others = [p for p, *_ in _candidates(run_dir) if p != path]
    for other in others:
        _set_aside(other, "untrusted")
    return (
        f"REFUSED checkpoint {path}: {reason}. Someone else wrote into this run folder: the file is kept as "
        f"{refused} for inspection, the folder's {len(others)} other checkpoint(s) are set aside as untrusted, "
        "and the run starts again from step 0."
    )


def _set_aside(path: Path, label: str) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.{label}-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.{label}-{stamp}-{n}")
    try:
        path.rename(target)
    except FileNotFoundError:
        return f"(already moved by another process) {target.name}"
    except OSError as e:
        return f"(could not be renamed: {e.strerror}; left as it is) {path.name}"
    return str(target)


def _mismatch(state: dict[str, Any], config_hash: str, lineage: Lineage, model: Any) -> str | None:
    """Why this checkpoint does not belong to this run (None: it does). Checked before anything is
    restored, so a rejected file leaves the model and optimiser untouched."""
    import torch

    if state.get("config_hash") != config_hash:
        return f"it belongs to config {state.get('config_hash')}, not {config_hash}"
    identity = state.get("identity", "run")  # files of older fptlab versions: only a standalone run's
    if identity != lineage.identity:
        return f"it belongs to {identity!r}, not to {lineage.identity!r} (another database, or another trial)"
    step = state.get("step")
    if not isinstance(step, int) or step < 0:
        return f"its step {step!r} is not a step number"
    if _beyond(lineage, step):
        return f"it is at step {step}, beyond the {lineage.recorded_through} steps the database records"
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    trainable = state["trainable"]
    if not isinstance(trainable, dict) or set(trainable) != set(params):
        names = sorted(map(str, trainable))[:3] if isinstance(trainable, dict) else type(trainable).__name__
        return f"its parameters ({names}...) do not match this run's trainable set"
    for name, tensor in trainable.items():
        if not isinstance(tensor, torch.Tensor) or tensor.shape != params[name].shape:
            return f"its parameter {name} has shape {getattr(tensor, 'shape', None)}, not {tuple(params[name].shape)}"
    rng = state["torch_rng"]
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8 or not isinstance(state["loop"], dict):
        return "its RNG or loop state is malformed"
    return None


def _apply(state: dict[str, Any], model: Any, optimizer: Any) -> str | None:
    """Restore a checked checkpoint. The optimiser goes first: it validates its state before changing
    anything, so a mismatch there still leaves everything untouched."""
    import torch

    try:
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError, TypeError) as e:
        return f"its optimiser state does not fit this run ({e})"
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in state["trainable"].items():
            params[name].copy_(tensor.to(params[name].device))
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return None
