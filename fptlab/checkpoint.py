"""Small resumable checkpoints: only the trainable parameters, the optimiser state, the RNG state and
the loop's running state. A frozen GPT-2 run's checkpoint is kilobytes-to-megabytes, not 500 MB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fptlab.errors import FptlabError


def save_checkpoint(path: Path, *, config_hash: str, step: int, model: Any, optimizer: Any, loop_state: dict) -> None:
    import torch

    state = {
        "config_hash": config_hash,
        "step": step,
        "trainable": {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad},
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "loop": loop_state,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a kill mid-save leaves the previous checkpoint intact


def load_checkpoint(path: Path, *, config_hash: str, model: Any, optimizer: Any) -> tuple[int, dict]:
    """Restore into `model`/`optimizer`; returns (step, loop_state)."""
    import pickle

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain data only: runs no code
    except pickle.UnpicklingError as e:
        raise FptlabError(
            f"Checkpoint {path} holds objects other than tensors and plain data, so it is not loaded (unpickling "
            f"them could run code): {str(e).splitlines()[0]}. Delete it to start the run over."
        ) from None
    if state.get("config_hash") != config_hash:
        raise FptlabError(
            f"Checkpoint {path} belongs to config {state.get('config_hash')}, not {config_hash}. "
            "Delete it or point the run at its own checkpoint file."
        )
    params = dict(model.named_parameters())
    trainable = state["trainable"]
    expected = {n for n, p in params.items() if p.requires_grad}
    if set(trainable) != expected:
        raise FptlabError(f"Checkpoint {path} holds parameters {sorted(trainable)[:3]}..., which do not match this run's trainable set.")
    with torch.no_grad():
        for name, tensor in trainable.items():
            params[name].copy_(tensor.to(params[name].device))
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["step"]), dict(state["loop"])
