"""GPT-2 bodies (paper Sections 2.2, 3.7): gpt2, gpt2-medium, gpt2-large, gpt2-xl, and gpt2-tiny.

Called with `inputs_embeds`, so the token table `wte` is never read (group `embeddings`, frozen).
GPT-2's causal mask is always on and its dropouts stay at their config values, as in the reference.
`init = "random"` builds from the config offline with GPT-2's own initialisation.
"""

from __future__ import annotations

from typing import Any

from fptlab.backbones import BACKBONES
from fptlab.backbones.base import BackboneSpec
from fptlab.backbones.hf import import_transformers, load_pretrained, shrink_positions, wrap_body

GROUPS = (
    ("embeddings", r"(^|\.)wte\."),
    ("positions", r"(^|\.)wpe\."),
    ("layernorm", r"(^|\.)ln_(1|2|f)\."),
    ("attention", r"\.attn\."),
    ("feedforward", r"\.mlp\."),
)

# name: (width, layers, heads, hub id or None, vocab)
SIZES: dict[str, tuple[int, int, int, str | None, int]] = {
    "gpt2": (768, 12, 12, "gpt2", 50257),
    "gpt2-medium": (1024, 24, 16, "gpt2-medium", 50257),
    "gpt2-large": (1280, 36, 20, "gpt2-large", 50257),
    "gpt2-xl": (1600, 48, 25, "gpt2-xl", 50257),
    "gpt2-tiny": (32, 2, 2, None, 64),  # for fast tests: random init only
}



def build(spec: BackboneSpec, init: str, weights: str, seq_len: int) -> Any:
    tf = import_transformers()
    width, layers, heads, _, vocab = SIZES[spec.name]
    if init == "pretrained":
        model = load_pretrained(tf.GPT2Model, spec.default_weights if weights == "auto" else weights, spec.name)
    else:
        config = tf.GPT2Config(n_embd=width, n_layer=layers, n_head=heads, n_positions=1024, vocab_size=vocab)
        model = tf.GPT2Model(config)
    model.wpe = shrink_positions(model.wpe, seq_len)
    return wrap_body(model, use_cache=False)


for _name, (_width, _layers, _heads, _hub, _vocab) in SIZES.items():
    BACKBONES.register(
        _name,
        BackboneSpec(
            name=_name, family="gpt2", d_model=_width, n_layers=_layers, max_positions=1024,
            groups=GROUPS, build=build, default_weights=_hub,
            description=f"GPT-2 {_layers} layers × {_width} (causal)",
        ),
    )
