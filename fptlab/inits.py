"""How the frozen body's weights are obtained, by name (`init = ...`; paper Sections 3.2 and 3.8).

- `pretrained`: the backbone's pretrained weights (`weights = "auto"`), a hub id or folder of the same
  architecture, or a body saved by another fptlab run (`weights = "trial:<config hash>"` or its
  folder): the Bit-pretrained transformer of Tables 2 and 6.
- `random`: the family's reference initialisation from known hyperparameters, offline (GPT-2: every
  weight N(0, 0.02), biases 0, LayerNorm 1/0, as transformers 4.1.1 did for the paper).
- `stats`: "Statistics Only" (Table 9): every body tensor (weights, biases, layer norms, positions)
  redrawn from a Gaussian with that pretrained tensor's own mean and standard deviation.

A scheme is data in a registry: a new one is a new entry, not a new branch. Torch is imported only
when a body is made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fptlab.errors import IncompatibleError
from fptlab.registry import Registry


@dataclass(frozen=True)
class InitScheme:
    name: str
    reads_weights: bool  # reads pretrained weights (so `weights` names them)
    make: Callable[..., Any]  # make(spec, options, weights, weights_path) -> full-depth body
    description: str


INITS: Registry[InitScheme] = Registry("init")


def pretrained_body(spec: Any, options: Any, weights: str, weights_path: Path | None) -> Any:
    """Pretrained weights from wherever `weights` points (see the module docstring)."""
    from fptlab import bodies

    location = weights_path if weights_path is not None else bodies.resolve_reference(weights)
    if location is not None and bodies.is_body_folder(Path(location)):
        return bodies.load_body(spec, options, Path(location))
    if spec.load is None:
        raise IncompatibleError(
            f"Backbone '{spec.name}' has no pretrained weights of its own: init = \"pretrained\" needs weights = "
            "\"trial:<config hash>\" (a body saved with save_body = true) or that body's folder. Or use init = \"random\"."
        )
    return spec.load(spec, options, str(location) if location is not None else weights)


def random_body(spec: Any, options: Any, weights: str, weights_path: Path | None) -> Any:
    return spec.build(spec, options)


def stats_body(spec: Any, options: Any, weights: str, weights_path: Path | None) -> Any:
    body = pretrained_body(spec, options, weights, weights_path)
    redraw_like(body)
    return body


def redraw_like(module: Any) -> None:
    """Replace every parameter by Gaussian noise with its own mean and standard deviation (a tensor of
    one element keeps its value). Draws from torch's global generator, which the run seeded."""
    import torch

    with torch.no_grad():
        for param in module.parameters():
            flat = param.detach().float()
            mean = flat.mean()
            std = flat.std() if flat.numel() > 1 else torch.zeros(())
            param.copy_(torch.randn_like(flat) * std + mean)


for _scheme in (
    InitScheme("pretrained", True, pretrained_body, "the backbone's pretrained weights, a folder / hub id, or trial:<hash>"),
    InitScheme("random", False, random_body, "the family's reference random initialisation (offline)"),
    InitScheme("stats", True, stats_body, "Gaussian noise with each pretrained tensor's mean and std (Table 9)"),
):
    INITS.register(_scheme.name, _scheme)
