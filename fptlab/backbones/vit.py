"""Vision Transformer bodies (paper Section 3.2, Table 2; Appendix D.2): `vit-base`, `vit-base-in21k`
and `vit-tiny`.

Which weights the paper means. Its text says "ViT ... pretrained on ImageNet-21k"; its code loads timm's
`vit_base_patch16_224`, whose weights in the timm of 2021 (0.3.x-0.4.9) were ImageNet-21k pretrained
*and then fine-tuned on ImageNet-1k* at 224 (`jx_vit_base_p16_224-80ecf9dd.pth`; the 21k-only model was
the separate `vit_base_patch16_224_in21k`). The code produced the numbers, so:
- `vit-base` (the faithful default) loads those weights: hub `google/vit-base-patch16-224` (converted
  from the same JAX checkpoint), through `transformers.ViTModel` (its classifier head is dropped);
- `vit-base-in21k` loads the 21k-only weights the text names: hub `google/vit-base-patch16-224-in21k`.
  (fptlab 0.3.0's `vit-base` was this one; the 0.4.0 migration renames its pretrained trials to it.)
Both are 12 × 768, 12 heads, MLP 3072, LayerNorm eps 1e-12.

As in the paper's code, ViT's patch embedding, CLS token and own position embedding are bypassed:
they stay in the body, unused and frozen (group `embeddings`). A new zero-initialised table of 1024
positions × d (group `positions`, trainable) is added to the input embeddings, then dropout
(`model.hidden_dropout`, timm's `pos_drop`), ViT's blocks and its final LayerNorm run with
bidirectional attention; a right-padded token task masks its pad positions out of every block's keys
(`mask_padding`). `vit-tiny` is a random-only variant for tests.

Dropout: the paper's code built timm's ViT with drop_rate = attn_drop_rate = 0.1 (drop_path 0), so the
faithful specs set `model.hidden_dropout = 0.1` (after the position add, after each block's attention
projection and after its MLP) and `model.attention_dropout = 0.1` (on the attention probabilities);
the defaults are 0, the hub configs' values. timm also drops after the MLP's activation; transformers'
ViT block does not (its one MLP dropout is after fc2): the only difference left.

transformers >= 5.9 holds the blocks in `layers` (attention `q_proj`/`k_proj`/`v_proj`/`o_proj`, MLP
`fc1`/`fc2`) and converts the hub's older checkpoint names on load; earlier versions hold them in
`encoder.layer` (`attention.attention.query`, ...). The installed version decides the block path;
the group regexes cover both layouts. `init = "random"` is transformers' own ViT initialisation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, ClassVar

from fptlab.backbones import BACKBONES
from fptlab.backbones._hf import import_transformers, load_pretrained
from fptlab.backbones.base import BackboneSpec, ModelOptions

HUB_ID = "google/vit-base-patch16-224"  # ImageNet-21k, fine-tuned on 1k: the reference's timm weights
HUB_ID_21K = "google/vit-base-patch16-224-in21k"  # ImageNet-21k only: what the paper's text names
POSITIONS = 1024  # rows of the new position table, as in the paper's code


@dataclass(frozen=True)
class ViTOptions(ModelOptions):
    hidden_dropout: float = 0.0  # timm's drop_rate: after the position add, attention projection and MLP
    attention_dropout: float = 0.0  # timm's attn_drop_rate: on the attention probabilities
    INIT_ONLY: ClassVar[tuple[str, ...]] = ("hidden_dropout", "attention_dropout")  # not architecture

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("hidden_dropout", "attention_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


def _blocks_path() -> str:
    """Where the installed transformers keeps ViT's blocks (read from its version: imports nothing)."""
    try:
        major, minor = (int(p) for p in re.findall(r"\d+", version("transformers"))[:2])
    except (PackageNotFoundError, ValueError):
        return "model.layers"
    return "model.layers" if (major, minor) >= (5, 9) else "model.encoder.layer"


GROUPS = (
    ("embeddings", r"^model\.embeddings\."),  # patch projection, cls token, ViT's own positions: unused
    ("positions", r"^positions\."),
    ("layernorm", r"(^|\.)layernorm(_before|_after)?\."),
    ("attention", r"\.attention\."),
    ("feedforward", r"\.mlp\.fc[12]\.|layer\.\d+\.(intermediate|output)\.dense\."),
)
BLOCKS = _blocks_path()

# name: (width, layers, heads, mlp, image size, patch size, hub id or None)
SIZES: dict[str, tuple[int, int, int, int, int, int, str | None]] = {
    "vit-base": (768, 12, 12, 3072, 224, 16, HUB_ID),
    "vit-base-in21k": (768, 12, 12, 3072, 224, 16, HUB_ID_21K),
    "vit-tiny": (32, 2, 2, 64, 8, 4, None),  # for fast tests: random init only
}


def _wrap(model: Any) -> Any:
    from fptlab.backbones._vit import ViTBody

    return ViTBody(model, POSITIONS)


def build(spec: BackboneSpec, options: ViTOptions) -> Any:
    tf = import_transformers()
    width, layers, heads, mlp, image, patch, _ = SIZES[spec.name]
    config = tf.ViTConfig(
        hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=mlp,
        image_size=image, patch_size=patch, layer_norm_eps=1e-12, hidden_dropout_prob=options.hidden_dropout,
        attention_probs_dropout_prob=options.attention_dropout, qkv_bias=True,
    )
    return _wrap(tf.ViTModel(config, add_pooling_layer=False))


def load(spec: BackboneSpec, options: ViTOptions, location: str) -> Any:
    model_cls = import_transformers().ViTModel
    model = load_pretrained(model_cls, spec.default_weights if location == "auto" else location, spec.name, add_pooling_layer=False,
                            hidden_dropout_prob=options.hidden_dropout, attention_probs_dropout_prob=options.attention_dropout)
    return _wrap(model)


for _name, (_width, _layers, _heads, _mlp, _image, _patch, _hub) in SIZES.items():
    BACKBONES.register(
        _name,
        BackboneSpec(
            name=_name, family="vit", d_model=_width, n_layers=_layers, max_positions=POSITIONS, groups=GROUPS,
            blocks=BLOCKS, build=build, load=load if _hub else None, default_weights=_hub, Options=ViTOptions,
            description=f"ViT {_layers} layers × {_width} (bidirectional; new zero position table)"
            + {HUB_ID: ", ImageNet-21k fine-tuned on 1k (the paper's code)", HUB_ID_21K: ", ImageNet-21k only (the paper's text)"}.get(_hub, ""),
        ),
    )
