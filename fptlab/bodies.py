"""Saved bodies: a run with `save_body = true` writes its whole body (every block, whole position
tables) so that other runs can start from it (`init = "pretrained"`, `weights = "trial:<config
hash>"` or the folder): the paper's Bit-pretrained transformer (Section 3.2, Tables 2 and 6).

A body folder holds `body.safetensors` (tensors only: loading it runs no code, unlike a pickle) and
`body.json` (which backbone and `[model]` options built it, which trial, which versions). Loading
rebuilds that architecture, loads the tensors strictly, and the run then keeps its own depth (at
most the saved one) and its task's positions.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fptlab.errors import DataNotFoundError, IncompatibleError

TRIAL_PREFIX = "trial:"
TENSORS, META = "body.safetensors", "body.json"
FORMAT = "fptlab-body/1"
# Where `trial:<hash>` is looked for when no store says where it is: `fptlab run`'s default --out
# folder and `fptlab sweep`'s default --storage (run folders are <root>/<hash>/body).
DEFAULT_STORAGE = Path("fptlab-runs")
DEFAULT_ROOTS = (Path("runs"), DEFAULT_STORAGE / "trials")


def is_body_folder(path: Path) -> bool:
    return (path / META).is_file() and (path / TENSORS).is_file()


def trial_hash(weights: str) -> str | None:
    return weights[len(TRIAL_PREFIX):] if weights.startswith(TRIAL_PREFIX) else None


def save_body(body: Any, spec: Any, options: Any, folder: Path, *, config_hash: str, versions: dict[str, Any]) -> Path:
    """Write `body` (after training) to `folder`, atomically enough: tensors first, then the json that
    makes the folder a body."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / META).unlink(missing_ok=True)
    save_file(body.full_state(), str(folder / TENSORS))
    meta = {
        "format": FORMAT, "backbone": spec.name, "family": spec.family, "model": dataclasses.asdict(options),
        "depth": body.n_blocks(), "positions": body.position_lengths(), "config_hash": config_hash, "versions": versions,
    }
    (folder / META).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return folder


# body.json's fields and their types; a missing or mistyped one is named, never a KeyError.
META_FIELDS: dict[str, tuple[type, ...]] = {"format": (str,), "backbone": (str,), "model": (dict,), "depth": (int,)}
META_OPTIONAL: dict[str, tuple[type, ...]] = {"family": (str,), "positions": (dict,), "config_hash": (str,), "versions": (dict,)}


def read_meta(folder: Path) -> dict[str, Any]:
    from fptlab.errors import BadFileError
    from fptlab.escape import quoted
    from fptlab.files import not_a_file

    path = folder / META
    problem = not_a_file(path)
    if problem is not None:
        raise BadFileError(f"{path}: body description {problem}.")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise BadFileError(f"{path} is not a readable fptlab body description ({e}).") from None
    if not isinstance(meta, dict):
        raise BadFileError(f"{path} holds {type(meta).__name__}, not a JSON object describing a body.")
    if meta.get("format") != FORMAT:
        raise BadFileError(f"{path} describes a body in format {quoted(meta.get('format'))}; this fptlab reads {FORMAT!r}.")
    for fields, required in ((META_FIELDS, True), (META_OPTIONAL, False)):
        for name, types in fields.items():
            if name not in meta:
                if required:
                    raise BadFileError(f"{path} lacks the field '{name}' ({types[0].__name__}); it was not written by fptlab's save_body.")
                continue
            value = meta[name]
            if not isinstance(value, types) or isinstance(value, bool):
                raise BadFileError(f"{path}: field '{name}' is {quoted(value)}, not a {types[0].__name__}.")
    if meta["depth"] < 1:
        raise BadFileError(f"{path}: field 'depth' is {meta['depth']}, but a body has at least 1 block.")
    return meta


def load_body(spec: Any, options: Any, folder: Path) -> Any:
    """The saved body in `folder`, for a run of backbone `spec` with `options`: same backbone, same
    architecture options (depth may be smaller: the run keeps the first blocks)."""
    from safetensors.torch import load_file

    meta = read_meta(folder)
    if meta["backbone"] != spec.name:
        raise IncompatibleError(
            f"The body in {folder} was saved from backbone '{meta['backbone']}', but this run uses '{spec.name}'. "
            f"Set backbone = \"{meta['backbone']}\"."
        )
    saved = _saved_options(spec, meta, folder)
    _check_same_architecture(spec, options, saved, meta, folder)
    from fptlab.errors import BadFileError
    from fptlab.safefiles import check_safetensors

    check_safetensors(folder / TENSORS)
    body = spec.build(spec, saved)
    body.truncate(int(meta["depth"]))
    try:
        state = load_file(str(folder / TENSORS))
    except Exception as e:  # noqa: BLE001 - safetensors' own error type; the header was checked above
        raise BadFileError(f"{folder / TENSORS} cannot be read: {str(e).splitlines()[0] if str(e) else type(e).__name__}.") from None
    try:
        body.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise IncompatibleError(f"The body in {folder} does not fit backbone '{spec.name}': {str(e).splitlines()[0]}") from None
    return body


def _saved_options(spec: Any, meta: dict[str, Any], folder: Path) -> Any:
    known = {f.name for f in dataclasses.fields(spec.Options)}
    unknown = set(meta["model"]) - known
    if unknown:
        raise IncompatibleError(f"The body in {folder} was built with model options {sorted(unknown)} this fptlab does not know.")
    from fptlab.errors import BadFileError, ConfigError
    from fptlab.typed import build_dataclass

    try:  # typed and checked as a config's [model] table is
        return build_dataclass(spec.Options, meta["model"], prefix="model.", origin=str(folder / META))
    except ConfigError as e:
        raise BadFileError(f"{folder / META}: its model options are not valid: {e}") from None


def _check_same_architecture(spec: Any, options: Any, saved: Any, meta: dict[str, Any], folder: Path) -> None:
    ignore = {"depth", *getattr(spec.Options, "INIT_ONLY", ())}
    for f in dataclasses.fields(spec.Options):
        if f.name not in ignore and getattr(options, f.name) != getattr(saved, f.name):
            raise IncompatibleError(
                f"The body in {folder} was built with model.{f.name} = {getattr(saved, f.name)!r}; this run sets "
                f"{getattr(options, f.name)!r}. Use the saved body's value."
            )
    if spec.depth_of(options) > int(meta["depth"]):
        raise IncompatibleError(
            f"This run keeps {spec.depth_of(options)} blocks, but the body in {folder} has {meta['depth']}. "
            f"Set model.depth to at most {meta['depth']}."
        )


# ---- finding a trial's body ---------------------------------------------------------------------
def locate_body(weights: str, *, roots: Sequence[Path] = DEFAULT_ROOTS, store: Any = None,
                storage: Path = DEFAULT_STORAGE) -> Path:
    """The folder of the body `weights = "trial:<hash>"` names: the store's record of it first (its
    `body` artifact, resolved inside `storage`, the sweep's --storage), then `<root>/<hash>/body`
    under each root."""
    config_hash = trial_hash(weights)
    assert config_hash is not None, weights
    looked: list[str] = []
    candidates: list[Path] = []
    if store is not None:
        candidates += _from_store(store, config_hash, looked, storage)
    candidates += [Path(root) / config_hash / "body" for root in roots]
    for folder in candidates:
        if is_body_folder(folder):
            return folder
    looked += [str(Path(root) / config_hash / "body") for root in roots]
    raise DataNotFoundError(
        f"weights = \"{weights}\": no saved body found (looked in {'; '.join(looked)}). Run that trial first with "
        "save_body = true (in a sweep spec, name it in [sources.NAME] and use weights = \"source:NAME\"), or point "
        "weights at the body's folder."
    )


def _from_store(store: Any, config_hash: str, looked: list[str], storage: Path) -> list[Path]:
    import warnings

    from fptlab.errors import FptlabError, FptlabWarning
    from fptlab.files import NotThere, OutsideError, confined

    try:
        found = store.artifacts(config_hash, kind="body")
    except FptlabError as e:  # the store's errors are FptlabErrors: a store that cannot say is one place fewer to look
        looked.append(f"the store ({str(e).split('.')[0]})")
        return []
    looked.append(f"the store ({len(found)} body record(s) of trial {config_hash}, inside {storage})")
    out = []
    for artifact in reversed(found):
        try:
            folder = confined(storage, str(artifact["location"]), want="folder")
            for name in (META, TENSORS):  # the files themselves stay inside too
                confined(storage, (folder / name).relative_to(Path(storage).resolve()).as_posix())
        except NotThere:
            continue  # not here (yet): the error lists where the body was looked for
        except OutsideError as e:
            warnings.warn(f"trial {config_hash}: its body record is refused and not opened: {e}.", FptlabWarning, stacklevel=2)
            continue
        out.append(folder)
    return out


def resolve_reference(weights: str) -> str | None:
    """`weights` as a location: None for "auto" (the backbone's own), a folder for "trial:<hash>"
    (found under the default roots), else the string itself (a folder or a hub id)."""
    if weights == "auto":
        return None
    if trial_hash(weights) is not None:
        return str(locate_body(weights))
    return weights
