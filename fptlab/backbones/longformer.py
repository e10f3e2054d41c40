"""Longformer encoders (paper Section 3.14, Table 17): `longformer-base` (allenai/longformer-base-4096,
12 × 768, sliding-window attention of 512, 4096 learned positions) and `longformer-tiny` (random init only).

Inputs enter through `inputs_embeds`. Longformer pads every sequence to a multiple of its attention
window and would then number the positions itself over the padded length; the body instead passes
`position_ids = 2 .. T + 1` (RoBERTa-style: positions start at padding_idx + 1 = 2), so only rows
[0, T + 2) of the 4098-row table are read (padding tokens read row 1, masked out of every attention)
and the table is declared with offset 2: `fit` keeps T + 2 rows, the `positions` group is (T + 2) × d.
The token table (read only for padding tokens) and token-type table are group `embeddings`. No global
attention is set: every token attends within its window, both ways. Its attention outputs are
sliding-window shaped, not T × T, so it reports no attention maps (`attention_maps = False`).
A sequence shorter than the one-sided window (T <= 256 for base: CIFAR-10's 64 patches) runs with the
window narrowed to max(T - 1, 2) each side for that call: every token still sees every other, so the
output is the same (bit for bit in eval; dropout masks are drawn over fewer padding tokens), but the
input is padded to about 2 T tokens instead of 512 (bit_xor on the base size: 48 min -> 25 s on CPU).

`init = "random"` is Longformer's own transformers initialisation (the generic `PreTrainedModel`
scheme: Linear / Embedding weights N(0, 0.02), biases 0, LayerNorm 1/0), built offline.
"""

from __future__ import annotations

from typing import Any

from fptlab.backbones import BACKBONES
from fptlab.backbones._hf import import_transformers, load_pretrained
from fptlab.backbones.base import BackboneSpec, ModelOptions

GROUPS = (
    ("embeddings", r"embeddings\.(word|token_type)_embeddings\."),
    ("positions", r"embeddings\.position_embeddings\."),
    ("layernorm", r"LayerNorm\."),
    ("attention", r"\.attention\.(self\.|output\.dense\.)"),  # query/key/value and their *_global twins
    ("feedforward", r"layer\.\d+\.(intermediate|output)\.dense\."),
)
BLOCKS = "model.encoder.layer"
OFFSET = 2  # padding_idx (1) + 1: the row of position 0
POSITIONS = {"model.embeddings.position_embeddings": OFFSET}

# name: (width, layers, heads, ffn, window, positions, vocab, type vocab, hub id or None)
SIZES: dict[str, tuple[int, int, int, int, int, int, int, int, str | None]] = {
    "longformer-base": (768, 12, 12, 3072, 512, 4096, 50265, 1, "allenai/longformer-base-4096"),
    "longformer-tiny": (32, 2, 2, 64, 8, 1024, 64, 1, None),  # for fast tests: random init only
}


def _wrap(model: Any) -> Any:
    from fptlab.backbones._longformer import LongformerBody

    return LongformerBody(model, BLOCKS, POSITIONS, OFFSET, layer_count_attr="num_hidden_layers")


def build(spec: BackboneSpec, options: ModelOptions) -> Any:
    tf = import_transformers()
    width, layers, heads, ffn, window, positions, vocab, types, _ = SIZES[spec.name]
    config = tf.LongformerConfig(
        hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=ffn,
        attention_window=[window] * layers, max_position_embeddings=positions + OFFSET, vocab_size=vocab,
        type_vocab_size=types, layer_norm_eps=1e-5, pad_token_id=OFFSET - 1, bos_token_id=0, eos_token_id=2,
        initializer_range=0.02,
    )
    return _wrap(tf.LongformerModel(config, add_pooling_layer=False))


def load(spec: BackboneSpec, options: ModelOptions, location: str) -> Any:
    location = spec.default_weights if location == "auto" else location
    return _wrap(load_pretrained(import_transformers().LongformerModel, location, spec.name, add_pooling_layer=False))


for _name, (_width, _layers, _heads, _ffn, _window, _positions, _vocab, _types, _hub) in SIZES.items():
    BACKBONES.register(
        _name,
        BackboneSpec(
            name=_name, family="longformer", d_model=_width, n_layers=_layers, max_positions=_positions, groups=GROUPS,
            blocks=BLOCKS, build=build, load=load if _hub else None, default_weights=_hub, attention_maps=False,
            description=f"Longformer {_layers} layers × {_width} (bidirectional, window {_window})",
        ),
    )
