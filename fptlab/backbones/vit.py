"""Vision Transformer bodies (paper Section 3.2, Table 2; Appendix D.2): `vit-base` and `vit-tiny`.

`vit-base` is google/vit-base-patch16-224-in21k through `transformers.ViTModel`: the ImageNet-21k
weights of the paper's timm `vit_base_patch16_224` (12 × 768, 12 heads, MLP 3072, LayerNorm eps 1e-12).
As in the paper's code, ViT's patch embedding, CLS token and own position embedding are bypassed:
they stay in the body, unused and frozen (group `embeddings`). A new zero-initialised table of 1024
positions × d (group `positions`, trainable) is added to the input embeddings, then ViT's blocks and
its final LayerNorm run with bidirectional attention. `vit-tiny` is a random-only variant for tests.

transformers >= 5.9 holds the blocks in `layers` (attention `q_proj`/`k_proj`/`v_proj`/`o_proj`, MLP
`fc1`/`fc2`) and converts the hub's older checkpoint names on load; earlier versions hold them in
`encoder.layer` (`attention.attention.query`, ...). The installed version decides the block path;
the group regexes cover both layouts. `init = "random"` is transformers' own ViT initialisation.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fptlab.backbones import BACKBONES
from fptlab.backbones._hf import import_transformers, load_pretrained
from fptlab.backbones.base import BackboneSpec, ModelOptions

HUB_ID = "google/vit-base-patch16-224-in21k"
POSITIONS = 1024  # rows of the new position table, as in the paper's code


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
    "vit-tiny": (32, 2, 2, 64, 8, 4, None),  # for fast tests: random init only
}


@cache
def _body_class() -> type:
    """The Body class, defined on first use so that registering the family imports no torch."""
    import torch
    from torch import nn

    from fptlab.backbones._body import Body

    class ViTBody(Body):
        """layernorm(blocks(dropout(x + positions[:T]))) over an HF ViTModel held as `self.model`."""

        position_paths = {"positions": 0}

        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self.model = model
            self.blocks_path = "model.layers" if hasattr(model, "layers") else "model.encoder.layer"
            width = model.config.hidden_size
            self.positions = nn.Embedding(POSITIONS, width, device=model.layernorm.weight.device)
            nn.init.zeros_(self.positions.weight)
            self.dropout = nn.Dropout(model.config.hidden_dropout_prob)  # ViT's embedding dropout (0.0 here)

        def embed(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, T, d)
            return self.dropout(x + self.positions.weight[: x.shape[1]])

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, T, d)
            h = self.embed(x)
            for block in self.blocks():
                out = block(h)  # a tensor in transformers >= 5.9, a tuple before
                h = out[0] if isinstance(out, tuple) else out
            return self.model.layernorm(h)

        def on_truncate(self, depth: int) -> None:
            self.model.config.num_hidden_layers = depth

        def first_attention(self, x: torch.Tensor) -> torch.Tensor:
            """softmax(Q Kᵀ / sqrt(d_head)) of the first block: (B, heads, T, T)."""
            block = self.blocks()[0]
            h = block.layernorm_before(self.embed(x))  # (B, T, d)
            attn = block.attention
            query, key = (attn.q_proj, attn.k_proj) if hasattr(attn, "q_proj") else (attn.attention.query, attn.attention.key)
            heads = self.model.config.num_attention_heads
            q = query(h).unflatten(-1, (heads, -1)).transpose(1, 2)  # (B, H, T, dh)
            k = key(h).unflatten(-1, (heads, -1)).transpose(1, 2)  # (B, H, T, dh)
            scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5  # (B, H, T, T)
            return scores.softmax(dim=-1)

    return ViTBody



def _wrap(model: Any) -> Any:
    return _body_class()(model)


def build(spec: BackboneSpec, options: ModelOptions) -> Any:
    tf = import_transformers()
    width, layers, heads, mlp, image, patch, _ = SIZES[spec.name]
    config = tf.ViTConfig(
        hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=mlp,
        image_size=image, patch_size=patch, layer_norm_eps=1e-12, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, qkv_bias=True,
    )
    return _wrap(tf.ViTModel(config, add_pooling_layer=False))


def load(spec: BackboneSpec, options: ModelOptions, location: str) -> Any:
    model_cls = import_transformers().ViTModel
    return _wrap(load_pretrained(model_cls, spec.default_weights if location == "auto" else location, spec.name, add_pooling_layer=False))


for _name, (_width, _layers, _heads, _mlp, _image, _patch, _hub) in SIZES.items():
    BACKBONES.register(
        _name,
        BackboneSpec(
            name=_name, family="vit", d_model=_width, n_layers=_layers, max_positions=POSITIONS, groups=GROUPS,
            blocks=BLOCKS, build=build, load=load if _hub else None, default_weights=_hub,
            description=f"ViT {_layers} layers × {_width} (bidirectional; new zero position table)",
        ),
    )
