"""Weights and saved bodies read from disk or shared storage are untrusted: they are checked before any
loader opens them, and whatever is wrong with them is one `BadFileError` naming the file and the
problem, never a traceback from deep inside a loader.

- `check_safetensors(path)`: the header is read and checked by itself (its length, JSON, every
  tensor's dtype, shape and byte range, which must tile the data exactly) before the tensors are.
- `check_weights_folder(folder, spec)`: a Hugging Face checkpoint folder of the backbone `spec`: its
  `config.json` is of that family, width and depth, and asks for no code of its own (`auto_map`: fptlab
  never trusts remote code); its weight files are safetensors that pass the check above, or pickles
  that torch's weights-only loader accepts (tried by `torch_load`).
- `torch_load(path)`: `torch.load(weights_only=True)`; a pickle holding anything but tensors and
  plain data is refused by torch and reported as such.

Only the standard library at import; torch is imported where a pickle is read.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from fptlab.errors import BadFileError
from fptlab.escape import quoted
from fptlab.files import not_a_file

DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "I16": 2, "U16": 2, "F16": 2,
               "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8}
MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit


def require_file(path: Path, what: str) -> None:
    problem = not_a_file(path)
    if problem is not None:
        raise BadFileError(f"{path}: {what} {problem}.")


def check_safetensors(path: Path) -> dict[str, Any]:
    """The header of the safetensors file `path` ({name: {dtype, shape, data_offsets}}), checked."""
    require_file(path, "safetensors file")
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise BadFileError(f"{path} is not a safetensors file: {size} bytes, shorter than the 8-byte header length.")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER or 8 + n > size:
            raise BadFileError(f"{path} is not a valid safetensors file: its header claims {n:,} bytes, but the file has "
                               f"{size:,} (the limit is {MAX_HEADER:,}).")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BadFileError(f"{path} is not a valid safetensors file: its header is not JSON ({e}).") from None
    if not isinstance(header, dict):
        raise BadFileError(f"{path} is not a valid safetensors file: its header is {type(header).__name__}, not a JSON object.")
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    spans = sorted((_check_entry(path, name, entry), name) for name, entry in tensors.items())
    data, end = size - 8 - n, 0
    for (begin, stop), name in spans:
        if begin != end:
            what = "overlaps the tensor before it" if begin < end else f"leaves bytes {end:,}-{begin:,} unused"
            raise BadFileError(f"{path} is not a valid safetensors file: tensor {quoted(name)} {what} (data_offsets must tile the data).")
        end = stop
    if end != data:
        raise BadFileError(f"{path} is not a valid safetensors file: its tensors cover {end:,} bytes of data, the file holds {data:,}.")
    return tensors


def _check_entry(path: Path, name: str, entry: Any) -> tuple[int, int]:
    where = f"{path} is not a valid safetensors file: tensor {quoted(name)}"
    if not isinstance(entry, dict):
        raise BadFileError(f"{where} is described by {quoted(entry)}, not an object with dtype, shape and data_offsets.")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_BYTES:
        raise BadFileError(f"{where} has dtype {quoted(dtype)}; known: {', '.join(DTYPE_BYTES)}.")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise BadFileError(f"{where} has shape {quoted(shape)}, not a list of sizes >= 0.")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets) or offsets[0] > offsets[1]):
        raise BadFileError(f"{where} has data_offsets {quoted(offsets)}, not [begin, end] with 0 <= begin <= end.")
    count = 1
    for d in shape:
        count *= d
    if count * DTYPE_BYTES[dtype] != offsets[1] - offsets[0]:
        raise BadFileError(f"{where} claims shape {shape} of {dtype} ({count * DTYPE_BYTES[dtype]:,} bytes) but data_offsets "
                           f"{offsets} span {offsets[1] - offsets[0]:,} bytes.")
    return offsets[0], offsets[1]


def torch_load(path: Path, what: str = "checkpoint") -> Any:
    """`torch.load(path, weights_only=True)`: tensors and plain data only; anything else is refused."""
    import pickle

    import torch

    require_file(path, what)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise BadFileError(f"{path}: the {what} holds more than tensors and plain data, so torch's safe loader "
                           f"(weights_only=True) refused it ({first[:200]}). fptlab never unpickles code: convert the "
                           "weights to safetensors.") from None
    except (OSError, RuntimeError, EOFError, ValueError) as e:
        raise BadFileError(f"{path}: the {what} cannot be read as a torch file: {_first_line(e)}.") from None


# ---- Hugging Face checkpoint folders --------------------------------------------------------------
WIDTH_KEYS = ("hidden_size", "n_embd", "d_model")
DEPTH_KEYS = ("num_hidden_layers", "n_layer", "num_layers")
CODE_KEYS = ("auto_map", "custom_pipelines")
CONFIG = "config.json"


def check_weights_folder(folder: Path, spec: Any) -> None:
    """A local Hugging Face checkpoint folder for backbone `spec` (see the module docstring)."""
    config = _read_config(folder)
    asks = [k for k in CODE_KEYS if config.get(k)]
    if asks:
        raise BadFileError(
            f"{folder / CONFIG} asks for code from the folder ({asks[0]}: {quoted(config[asks[0]])}); fptlab never runs code "
            f"from a weights folder (no trust_remote_code). Use a checkpoint of the standard {spec.family} architecture."
        )
    model_type = config.get("model_type")
    if model_type is not None and model_type != spec.family:
        raise BadFileError(f"{folder / CONFIG} describes a {quoted(model_type)} model, but backbone '{spec.name}' is "
                           f"{spec.family}. Point weights at a {spec.family} checkpoint, or pick the matching backbone.")
    for keys, expected, what in ((WIDTH_KEYS, spec.d_model, "width"), (DEPTH_KEYS, spec.n_layers, "layers")):
        key = next((k for k in keys if k in config), None)
        if key is not None and config[key] != expected:
            raise BadFileError(f"{folder / CONFIG} sets {key} = {quoted(config[key])}, but backbone '{spec.name}' has "
                               f"{what} {expected}. Point weights at a checkpoint of '{spec.name}', or pick the backbone of "
                               "that size.")
    files = weight_files(folder)
    if not files:
        raise BadFileError(f"{folder} holds no weights: none of model.safetensors, pytorch_model.bin (or their "
                           "sharded index) is there.")
    for path in files:
        if path.suffix == ".safetensors":
            check_safetensors(path)
        else:
            require_file(path, "weights file")


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG
    problem = not_a_file(path)
    if problem is not None:
        raise BadFileError(f"{folder} is not a Hugging Face checkpoint folder: its {CONFIG} {problem}.")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise BadFileError(f"{path} is not readable JSON ({e}).") from None
    if not isinstance(config, dict):
        raise BadFileError(f"{path} holds {type(config).__name__}, not a JSON object of model settings.")
    return config


def weight_files(folder: Path) -> list[Path]:
    """The weight files a loader would read: safetensors first (one file, or the shards an index lists),
    else the pytorch pickles."""
    for single, index in (("model.safetensors", "model.safetensors.index.json"), ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        if (folder / single).exists() or (folder / single).is_symlink():
            return [folder / single]
        if (folder / index).exists():
            return [folder / name for name in _shards(folder / index)]
    return []


def _shards(index: Path) -> list[str]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        names = sorted(set(weight_map.values()))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise BadFileError(f"{index} is not a readable shard index (a JSON object with a weight_map): {e}.") from None
    bad = [n for n in names if not isinstance(n, str) or "/" in n or "\\" in n or n.startswith(".")]
    if bad:
        raise BadFileError(f"{index} names shard {quoted(bad[0])} outside its folder; shards must be plain file names.")
    return names


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0].rstrip(".")[:300] if text else type(e).__name__
