"""T5 encoders (paper Section 3.14, Table 17): `t5-base` (the encoder of hub "t5-base", 12 × 768,
bidirectional) and `t5-tiny` (random init only, for tests).

Only the encoder stack is kept (`transformers.T5EncoderModel`); inputs enter through `inputs_embeds`,
so the token table (`shared`, tied to `encoder.embed_tokens`) is never read (group `embeddings`).
T5 has no absolute position table: its positions are the relative attention bias (32 buckets, max
distance 128) held by block 0's self-attention and shared by every block; it is group `positions`,
the "position" parameters the paper trains. It does not depend on the sequence length, so T5 takes
sequences of any length (`max_positions = None`) and `fit` only keeps the first `depth` blocks (block
0, which holds the bias, is always kept). T5's RMS norms (`layer_norm`, `final_layer_norm`, weight
only) are group `layernorm`. Dropouts stay at the config's 0.1, as for the other families.

`init = "random"` is T5's own transformers initialisation (`T5PreTrainedModel._init_weights`, scaled
by `initializer_factor = 1.0`), built offline from the known hyperparameters. Attention maps come
from the first block's eager attention (the bias included), as for GPT-2 and BERT.
"""

from __future__ import annotations

from typing import Any

from fptlab.backbones import BACKBONES
from fptlab.backbones._hf import import_transformers, load_pretrained
from fptlab.backbones.base import BackboneSpec, ModelOptions

GROUPS = (
    ("embeddings", r"(^|\.)(shared|embed_tokens)\."),
    ("positions", r"\.relative_attention_bias\."),
    ("layernorm", r"(^|\.)(layer_norm|final_layer_norm)\."),
    ("attention", r"\.SelfAttention\.(q|k|v|o)\."),
    ("feedforward", r"\.DenseReluDense\."),
)
BLOCKS = "model.encoder.block"
POSITIONS: dict[str, int] = {}  # no learned absolute position table

# name: (width, layers, heads, ffn, head width, vocab, hub id or None)
SIZES: dict[str, tuple[int, int, int, int, int, int, str | None]] = {
    "t5-base": (768, 12, 12, 3072, 64, 32128, "t5-base"),
    "t5-tiny": (32, 2, 2, 64, 16, 64, None),  # for fast tests: random init only
}
BUCKETS, MAX_DISTANCE = 32, 128  # relative attention bias of every T5 v1 size


def _wrap(model: Any) -> Any:
    from fptlab.backbones._body import HFBody

    return HFBody(model, BLOCKS, POSITIONS, layer_count_attr="num_layers")


def build(spec: BackboneSpec, options: ModelOptions) -> Any:
    tf = import_transformers()
    width, layers, heads, ffn, d_kv, vocab, _ = SIZES[spec.name]
    config = tf.T5Config(
        d_model=width, num_layers=layers, num_heads=heads, d_ff=ffn, d_kv=d_kv, vocab_size=vocab,
        relative_attention_num_buckets=BUCKETS, relative_attention_max_distance=MAX_DISTANCE,
        feed_forward_proj="relu", dropout_rate=0.1, layer_norm_epsilon=1e-6, initializer_factor=1.0,
    )
    return _wrap(tf.T5EncoderModel(config))


def load(spec: BackboneSpec, options: ModelOptions, location: str) -> Any:
    location = spec.default_weights if location == "auto" else location
    return _wrap(load_pretrained(import_transformers().T5EncoderModel, location, spec.name))


for _name, (_width, _layers, _heads, _ffn, _dkv, _vocab, _hub) in SIZES.items():
    BACKBONES.register(
        _name,
        BackboneSpec(
            name=_name, family="t5", d_model=_width, n_layers=_layers, max_positions=None, groups=GROUPS,
            blocks=BLOCKS, build=build, load=load if _hub else None, default_weights=_hub,
            description=f"T5 encoder {_layers} layers × {_width} (bidirectional, relative positions)",
        ),
    )
