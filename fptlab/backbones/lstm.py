"""LSTM bodies (paper Section 3.3, Tables 3-5, Figure 1's LSTM row; Appendices C, D.1, D.3): `lstm`
(hidden 768, the paper's width) and `lstm-tiny` (hidden 32, for tests). Random init only.

A layer-norm LSTM ("LN-LSTM", Ba et al. 2016, as in the paper's code), unidirectional (causal), of
`model.layers` stacked layers (3: Table 3 and Figure 1; 12: Tables 4-5), mapping (B, T, h) -> (B, T, h).
One layer, hidden size h, gates in the order input, forget, output, candidate:

    pre_t = LN_ih(W_ih x_t + b_ih) + LN_hh(W_hh h_{t-1} + b_hh) + b    (B, 4h), each LN over all 4h
    i, f, o = sigmoid(pre_t[:3h]);  g = tanh(pre_t[3h:])
    c_t = LN_cell(f * c_{t-1} + i * g);  h_t = o * tanh(c_t)    h_0 = c_0 = 0

The normalised cell is the state the next step reads, as in the paper's code (Ba et al. carry the raw
cell). `model.residual` adds each layer's input to its output (Table 5 "+ Residual Connections");
`model.positions` adds a learned 1024 × h table to the input (Table 5 "+ Positional Embeddings").

Init: W_ih, W_hh, b_ih, b_hh ~ U(-1/sqrt(h), 1/sqrt(h)) as PyTorch's nn.LSTM; the gate bias b (after
the norms) is 0 except the forget gate's, 1; layer norms weight 1, bias 0; positions N(0, 0.02). The
random b_ih, b_hh inside the norms keep an all-zero input token (a Bit XOR 0 bit: the input layer's
bias starts at 0) or the zero initial state off a constant vector, whose layer-norm backward scales by
1/sqrt(eps) = 1000 and, compounded over norms and layers, made training diverge at the first step.
(The paper's code has b_ih, b_hh too, no separate b, draws every parameter, layer norms included, from
that uniform and starts each sequence from a random state instead of zeros.)

Run defaults: lr 3e-4 (the paper's for all LSTMs, Appendix C) and init "random" (the paper's LSTMs
are all trained from random init; there are no pretrained weights, so init = "pretrained" needs
weights = "trial:<hash>", a body saved by another run).

`model.flavour = "reference"` is the paper's code's LN-LSTM (universal_computation/models/lstm.py, from
exe1023/LSTM_LN), used by the faithful Table 1/3/4/5 specs. It differs from the default ("fptlab") in:
  - no gate bias b after the norms (b_ih and b_hh inside them only); no forget-gate bias of 1;
  - every parameter, the layer norms' weights and biases included, drawn from U(-1/sqrt(n), 1/sqrt(n)),
    n = h for W and b, the normalised width (4h or h) for the norms (their gain starts near 0, not 1);
  - layer norm with the unbiased variance, (x - mean) / sqrt(var + 1e-6);
  - h_0 and c_0 of every layer drawn anew at every forward pass (training and evaluation) from
    N(0, 2 / (d_in + h)), not zeros (from torch's generator, which the run seeds);
  - dropout 0.1 on every layer's h_t at every step, the top layer's included, and the dropped h_t is the
    state the next step reads.
The default flavour keeps fptlab's behaviour above (and every stored trial's hash).

Groups: W_ih, W_hh, b_ih, b_hh and b are `recurrent`; the three layer norms per layer `layernorm`; the table
`positions`. So a frozen LSTM trains input, output and layer norms (Table 3, "like FPT").

Speed: each layer's input projection W_ih x and its layer norm run for all T steps in one matmul
before the time loop; the loop does only W_hh h + b_hh (one addmm), its norm, the gates and the cell.
The loop stays eager PyTorch: a TorchScript version measured no faster on a 2-core CPU (batch 16,
h 768, T 128-512, forward + backward). bench/lstm_step.py times a training step against GPT-2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fptlab.backbones import BACKBONES
from fptlab.backbones.base import BackboneSpec, ModelOptions

GROUPS = (
    ("positions", r"^positions\."),
    ("layernorm", r"^layers\.\d+\.ln_(ih|hh|cell)\."),
    ("recurrent", r"^layers\.\d+\.(weight_ih|weight_hh|bias_ih|bias_hh|bias)$"),
)
BLOCKS = "layers"
MAX_POSITIONS = 1024
SIZES = {"lstm": 768, "lstm-tiny": 32}  # name: hidden size (= model width)


FLAVOURS = ("fptlab", "reference")


@dataclass(frozen=True)
class LSTMOptions(ModelOptions):
    layers: int = 3  # stacked LSTM layers: 3 (Table 3) or 12 (Tables 4-5)
    residual: bool = False  # each layer's output adds its input (Table 5)
    positions: bool = False  # a learned position table added to the input (Table 5)
    flavour: str = "fptlab"  # "reference": the paper's code's LN-LSTM (see the module docstring)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.layers < 1:
            raise ValueError(f"layers must be >= 1, got {self.layers}")
        if self.flavour not in FLAVOURS:
            raise ValueError(f"flavour must be one of {', '.join(map(repr, FLAVOURS))}, got {self.flavour!r}")


def build(spec: BackboneSpec, options: LSTMOptions) -> Any:
    from fptlab.backbones._lstm import LSTMBody

    return LSTMBody(spec.d_model, options, blocks_path=BLOCKS, max_positions=MAX_POSITIONS)


for _name, _hidden in SIZES.items():
    BACKBONES.register(
        _name,
        BackboneSpec(
            name=_name, family="lstm", d_model=_hidden, n_layers=LSTMOptions.layers, max_positions=MAX_POSITIONS,
            groups=GROUPS, blocks=BLOCKS, build=build, load=None, Options=LSTMOptions, default_weights=None,
            causal=True, attention_maps=False, run_defaults={"lr": 3e-4, "init": "random"},
            description=f"LN-LSTM, model.layers (default 3) × {_hidden} (unidirectional; random init)",
        ),
    )
