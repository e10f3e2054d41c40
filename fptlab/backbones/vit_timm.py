"""The paper's own ViT route (paper Section 3.2, Appendix D.2): `vit-timm`, timm's `vit_base_patch16_224`
as the reference code built it, and `vit-timm-in21k`.

The reference's timm (0.3.x-0.4.9, 2021) loaded ImageNet-21k weights fine-tuned on ImageNet-1k for
`vit_base_patch16_224` (`jx_vit_base_p16_224-80ecf9dd.pth`); today's timm names them
`vit_base_patch16_224.orig_in21k_ft_in1k` (its plain name now loads other, AugReg weights), so that is
`vit-timm`'s default. `vit-timm-in21k` loads the 21k-only `vit_base_patch16_224.orig_in21k` (what the
paper's text names; fptlab 0.3.0's `vit-timm` default, renamed to it by the 0.4.0 migration).

Only usable with the optional timm extra (`pip install 'fptlab[timm]'`, GPU images: timm pulls
torchvision, which on a CPU-only machine brings a CUDA build of torch). Everywhere else use
`--backbone vit-base`: the same weights through transformers.

Every build needs timm, the meta-device build of `--dry-run` included, so without timm a dry run
fails with the same clear DataNotFoundError as a real run. `weights` is "auto", a timm model name
(loaded with timm's pretrained weights) or a local checkpoint file (.safetensors or a torch state dict).

As with `vit-base`, timm's `patch_embed`, `cls_token` and `pos_embed` are bypassed (group
`embeddings`, frozen); a new zero-initialised 1024 × 768 table (group `positions`) is added to the
input embeddings; then timm's `pos_drop`, `blocks` and final `norm` run with bidirectional attention.
`model.hidden_dropout` / `model.attention_dropout` are timm's drop_rate / attn_drop_rate (the
reference: 0.1 and 0.1; drop_path 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fptlab.backbones import BACKBONES
from fptlab.backbones._hf import _first_line
from fptlab.backbones.base import BackboneSpec
from fptlab.backbones.vit import ViTOptions
from fptlab.errors import DataNotFoundError

ARCH = "vit_base_patch16_224"
DEFAULT_WEIGHTS = "vit_base_patch16_224.orig_in21k_ft_in1k"  # the reference's weights (see the docstring)
WEIGHTS_21K = "vit_base_patch16_224.orig_in21k"
NAMES = {"vit-timm": DEFAULT_WEIGHTS, "vit-timm-in21k": WEIGHTS_21K}
WIDTH, LAYERS, POSITIONS = 768, 12, 1024

GROUPS = (
    ("embeddings", r"^model\.(patch_embed\.|cls_token$|pos_embed$|reg_token$)"),  # bypassed
    ("positions", r"^positions\."),
    ("layernorm", r"(^|\.)(norm1|norm2|norm|norm_pre|fc_norm)\."),
    ("attention", r"\.attn\."),  # qkv, proj
    ("feedforward", r"\.mlp\."),  # fc1, fc2
)
BLOCKS = "model.blocks"


INSTALL_HINT = (
    "pip install 'fptlab[timm]' (GPU images only: on a CPU-only machine timm pulls torchvision and a CUDA build of "
    "torch). Or use --backbone vit-base: the same ImageNet-21k ViT-B/16 weights through transformers."
)


def import_timm() -> Any:
    try:
        import timm
    except ImportError:
        raise DataNotFoundError(f"Backbone 'vit-timm' needs the optional timm package: {INSTALL_HINT}") from None
    return timm


def locate_weights(name: str, weights: str) -> str:
    """A timm model name -> its hub repo (timm publishes `timm/<name>`); a file path stays as it is."""
    location = NAMES[name] if weights == "auto" else weights
    return location if "/" in location or Path(location).exists() else f"timm/{location}"


def _timm_body(model: Any) -> Any:
    from fptlab.backbones._vit_timm import TimmViTBody

    return TimmViTBody(model, BLOCKS, POSITIONS)


def build(spec: BackboneSpec, options: ViTOptions) -> Any:
    """timm's own random initialisation of ViT-B/16, without the classifier head."""
    timm = import_timm()
    return _timm_body(timm.create_model(ARCH, pretrained=False, num_classes=0, **_dropouts(options)))


def _dropouts(options: ViTOptions) -> dict[str, float]:
    return {"drop_rate": options.hidden_dropout, "attn_drop_rate": options.attention_dropout}


def load(spec: BackboneSpec, options: ViTOptions, location: str) -> Any:
    timm = import_timm()
    name = NAMES[spec.name] if location == "auto" else location
    from fptlab.files import kind_of, not_a_file

    kind = kind_of(name)
    if kind not in ("file", "folder", "missing"):
        from fptlab.errors import BadFileError

        raise BadFileError(f"weights = {name!r} {not_a_file(name, kind)}: give a timm checkpoint file, or a timm model name.")
    try:
        if kind == "file":
            model = timm.create_model(ARCH, pretrained=False, num_classes=0, **_dropouts(options))
            model.load_state_dict(_read_checkpoint(Path(name)), strict=True)
        else:
            model = timm.create_model(name, pretrained=True, num_classes=0, **_dropouts(options))
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        raise DataNotFoundError(
            f"Could not load pretrained weights for backbone '{spec.name}' from '{name}': {_first_line(e)}. "
            "Without internet, timm's weights must be in the Hugging Face cache ($HF_HOME) or on disk "
            "(--set weights=PATH, a timm vit_base_patch16_224 checkpoint); or run with --init random."
        ) from None
    if getattr(model, "embed_dim", None) != WIDTH or len(model.blocks) != LAYERS:
        raise DataNotFoundError(f"timm model '{name}' is not a {LAYERS} × {WIDTH} ViT; point --set weights= at a ViT-B/16.")
    return _timm_body(model)


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """A timm ViT state dict from a file, without its classifier head."""
    import torch

    from fptlab.errors import BadFileError
    from fptlab.safefiles import check_safetensors, torch_load

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        check_safetensors(path)
        state = load_file(str(path))
    else:
        state = torch_load(path, "timm checkpoint")
        if isinstance(state, dict):
            state = state.get("state_dict", state.get("model", state))
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BadFileError(f"{path} holds {type(state).__name__}, not a state dict of tensors (name -> tensor).")
    return {k: v for k, v in state.items() if not k.startswith("head.")}


for _name, _weights in NAMES.items():
    BACKBONES.register(
        _name,
        BackboneSpec(
            name=_name, family="vit", d_model=WIDTH, n_layers=LAYERS, max_positions=POSITIONS, groups=GROUPS,
            blocks=BLOCKS, build=build, load=load, default_weights=_weights, requires=("timm",), Options=ViTOptions,
            install_hint=INSTALL_HINT, locate_weights=locate_weights,
            description=f"ViT-B/16 through timm ({_weights}; needs the timm extra, GPU images)",
        ),
    )
