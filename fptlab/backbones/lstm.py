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

Groups: W_ih, W_hh, b_ih, b_hh and b are `recurrent`; the three layer norms per layer `layernorm`; the table
`positions`. So a frozen LSTM trains input, output and layer norms (Table 3, "like FPT").

Speed: each layer's input projection W_ih x and its layer norm run for all T steps in one matmul
before the time loop; the loop does only W_hh h + b_hh (one addmm), its norm, the gates and the cell.
The loop stays eager PyTorch: a TorchScript version measured no faster on a 2-core CPU (batch 16,
h 768, T 128-512, forward + backward). bench/lstm_step.py times a training step against GPT-2.
"""

from __future__ import annotations

import functools
import math
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
POSITION_STD = 0.02
LN_EPS = 1e-6  # the paper's code normalises with eps 1e-6
SIZES = {"lstm": 768, "lstm-tiny": 32}  # name: hidden size (= model width)


@dataclass(frozen=True)
class LSTMOptions(ModelOptions):
    layers: int = 3  # stacked LSTM layers: 3 (Table 3) or 12 (Tables 4-5)
    residual: bool = False  # each layer's output adds its input (Table 5)
    positions: bool = False  # a learned position table added to the input (Table 5)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.layers < 1:
            raise ValueError(f"layers must be >= 1, got {self.layers}")


@functools.cache
def _torch_classes() -> tuple[type, type, Any]:
    """The torch classes, defined once on first use so that registering the family imports no torch."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    from fptlab.backbones._body import Body

    def scan(gx: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor, ln_hh: nn.LayerNorm, ln_cell: nn.LayerNorm) -> torch.Tensor:
        """The time loop: gx (T, B, 4h) = LN_ih(W_ih x + b_ih) + b for every step -> h_t for every step (T, B, h)."""
        _, batch, four_h = gx.shape
        h_size = four_h // 4
        w_t = w_hh.t()  # (h, 4h)
        h = c = gx.new_zeros(batch, h_size)  # (B, h)
        out = []
        # unbind, not gx[t]: the backward of T separate indexings would build T zero-filled (T, B, 4h) gradients.
        for gx_t in gx.unbind(0):  # (B, 4h)
            pre = gx_t + F.layer_norm(torch.addmm(b_hh, h, w_t), (four_h,), ln_hh.weight, ln_hh.bias, LN_EPS)  # (B, 4h)
            sig = pre[:, : 3 * h_size].sigmoid()  # input, forget, output gates (B, 3h)
            g = pre[:, 3 * h_size :].tanh()  # candidate (B, h)
            c = torch.addcmul(sig[:, h_size : 2 * h_size] * c, sig[:, :h_size], g)  # f * c + i * g
            c = F.layer_norm(c, (h_size,), ln_cell.weight, ln_cell.bias, LN_EPS)
            h = sig[:, 2 * h_size :] * c.tanh()
            out.append(h)
        return torch.stack(out)  # (T, B, h)

    class LNLSTMLayer(nn.Module):
        """One LN-LSTM layer, time-major: (T, B, d) -> (T, B, h)."""

        def __init__(self, d_in: int, hidden: int) -> None:
            super().__init__()
            self.hidden = hidden
            self.weight_ih = nn.Parameter(torch.empty(4 * hidden, d_in))
            self.weight_hh = nn.Parameter(torch.empty(4 * hidden, hidden))
            self.bias_ih = nn.Parameter(torch.empty(4 * hidden))  # inside LN_ih
            self.bias_hh = nn.Parameter(torch.empty(4 * hidden))  # inside LN_hh
            self.bias = nn.Parameter(torch.empty(4 * hidden))  # the gate bias, after the norms
            self.ln_ih = nn.LayerNorm(4 * hidden, eps=LN_EPS)
            self.ln_hh = nn.LayerNorm(4 * hidden, eps=LN_EPS)
            self.ln_cell = nn.LayerNorm(hidden, eps=LN_EPS)
            self.reset_parameters()

        def reset_parameters(self) -> None:
            bound = 1.0 / math.sqrt(self.hidden)
            with torch.no_grad():
                self.weight_ih.uniform_(-bound, bound)
                self.weight_hh.uniform_(-bound, bound)
                self.bias_ih.uniform_(-bound, bound)
                self.bias_hh.uniform_(-bound, bound)
                self.bias.zero_()
                self.bias[self.hidden : 2 * self.hidden].fill_(1.0)  # forget gate
            for ln in (self.ln_ih, self.ln_hh, self.ln_cell):
                ln.reset_parameters()  # weight 1, bias 0

        def input_gates(self, x: torch.Tensor) -> torch.Tensor:
            """LN_ih(W_ih x + b_ih) + b for all steps in one matmul: (T, B, d) -> (T, B, 4h)."""
            return self.ln_ih(F.linear(x, self.weight_ih, self.bias_ih)) + self.bias

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (T, B, d) -> (T, B, h)
            return scan(self.input_gates(x), self.weight_hh, self.bias_hh, self.ln_hh, self.ln_cell)

    class LSTMBody(Body):
        """Stacked LN-LSTM layers (`layers`), optionally residual, with an optional position table."""

        def __init__(self, hidden: int, options: LSTMOptions) -> None:
            super().__init__()
            self.blocks_path = BLOCKS
            self.residual = options.residual
            self.layers = nn.ModuleList(LNLSTMLayer(hidden, hidden) for _ in range(options.layers))
            self.positions: nn.Embedding | None = None
            self.position_paths = {}
            if options.positions:
                self.positions = nn.Embedding(MAX_POSITIONS, hidden)
                nn.init.normal_(self.positions.weight, 0.0, POSITION_STD)
                self.position_paths = {"positions": 0}

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, T, d)
            if self.positions is not None:
                x = x + self.positions.weight[: x.shape[1]]  # (T, d) broadcast over the batch
            y = x.transpose(0, 1)  # (T, B, d): time-major, so each step reads a contiguous (B, 4h) slice
            for layer in self.layers:
                y = y + layer(y) if self.residual else layer(y)
            return y.transpose(0, 1)  # (B, T, d)

    return LNLSTMLayer, LSTMBody, scan


def build(spec: BackboneSpec, options: LSTMOptions) -> Any:
    _, body_class, _ = _torch_classes()
    return body_class(spec.d_model, options)


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
