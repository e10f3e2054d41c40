"""GPT-2 bodies (paper Sections 2.2, 3.7): gpt2, gpt2-medium, gpt2-large, gpt2-xl, and gpt2-tiny.

Called with `inputs_embeds`, so the token table `wte` is never read (group `embeddings`, frozen).
GPT-2's causal mask is always on and its dropouts stay at their config values, as in the reference.

`init = "random"` builds from the config offline. `model.random_init = "reference"` (default) is the
paper's scheme, whatever transformers is installed: every weight N(0, 0.02), biases 0, LayerNorm 1/0
(transformers 4.1.1, the reference's version). `"transformers"` keeps the installed transformers' own
initialisation, which since 4.x also rescales each block's two `c_proj` weights to
N(0, 0.02 / sqrt(2 · layers)); fptlab 0.1.0 ran that, and the 0.2.0 migration pins it on its trials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from fptlab.backbones import BACKBONES
from fptlab.backbones._hf import import_transformers, load_pretrained
from fptlab.backbones.base import BackboneSpec, ModelOptions

GROUPS = (
    ("embeddings", r"(^|\.)wte\."),
    ("positions", r"(^|\.)wpe\."),
    ("layernorm", r"(^|\.)ln_(1|2|f)\."),
    ("attention", r"\.attn\."),
    ("feedforward", r"\.mlp\."),
)
BLOCKS = "model.h"
POSITIONS = {"model.wpe": 0}
INIT_STD = 0.02  # GPT2Config.initializer_range

# name: (width, layers, heads, hub id or None, vocab)
SIZES: dict[str, tuple[int, int, int, str | None, int]] = {
    "gpt2": (768, 12, 12, "gpt2", 50257),
    "gpt2-medium": (1024, 24, 16, "gpt2-medium", 50257),
    "gpt2-large": (1280, 36, 20, "gpt2-large", 50257),
    "gpt2-xl": (1600, 48, 25, "gpt2-xl", 50257),
    "gpt2-tiny": (32, 2, 2, None, 64),  # for fast tests: random init only
}


@dataclass(frozen=True)
class GPT2Options(ModelOptions):
    random_init: Literal["reference", "transformers"] = "reference"  # see the module docstring
    INIT_ONLY: ClassVar[tuple[str, ...]] = ("random_init",)  # not architecture: a saved body ignores it

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.random_init not in ("reference", "transformers"):
            raise ValueError(f"random_init must be 'reference' or 'transformers', got {self.random_init!r}")


def _wrap(model: Any) -> Any:
    from fptlab.backbones._body import HFBody

    return HFBody(model, BLOCKS, POSITIONS, layer_count_attr="n_layer", use_cache=False)


def build(spec: BackboneSpec, options: GPT2Options) -> Any:
    from fptlab.backbones._body import reference_normal_init

    tf = import_transformers()
    width, layers, heads, _, vocab = SIZES[spec.name]
    config = tf.GPT2Config(n_embd=width, n_layer=layers, n_head=heads, n_positions=1024, vocab_size=vocab,
                           initializer_range=INIT_STD)
    model = tf.GPT2Model(config)
    if options.random_init == "reference":
        reference_normal_init(model, INIT_STD)
    return _wrap(model)


def load(spec: BackboneSpec, options: GPT2Options, location: str) -> Any:
    return _wrap(load_pretrained(import_transformers().GPT2Model, spec.default_weights if location == "auto" else location, spec.name))


for _name, (_width, _layers, _heads, _hub, _vocab) in SIZES.items():
    BACKBONES.register(
        _name,
        BackboneSpec(
            name=_name, family="gpt2", d_model=_width, n_layers=_layers, max_positions=1024, groups=GROUPS,
            blocks=BLOCKS, build=build, load=load if _hub else None, Options=GPT2Options, default_weights=_hub,
            causal=True, description=f"GPT-2 {_layers} layers × {_width} (causal)",
        ),
    )
