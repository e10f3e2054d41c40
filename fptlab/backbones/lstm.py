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


FLAVOURS = ("fptlab", "reference")
REFERENCE_DROPOUT = 0.1  # the paper's code: dropout on every layer's h_t


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

    def unbiased_norm(x: torch.Tensor, ln: nn.LayerNorm) -> torch.Tensor:
        """The paper's code's layer norm: (x - mean) / sqrt(unbiased var + eps) * weight + bias."""
        mean = x.mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(x.var(-1, keepdim=True) + LN_EPS) * ln.weight + ln.bias

    def scan_reference(gx: torch.Tensor, layer: nn.Module) -> torch.Tensor:
        """The reference's time loop: random h_0, c_0, unbiased norms, dropout on h_t (the state too)."""
        _, batch, four_h = gx.shape
        h_size = four_h // 4
        std = math.sqrt(2.0 / (layer.d_in + h_size))
        h = gx.new_empty(batch, h_size).normal_(0.0, std)  # (B, h), drawn anew each forward, as the reference
        c = gx.new_empty(batch, h_size).normal_(0.0, std)
        out = []
        for gx_t in gx.unbind(0):  # (B, 4h)
            pre = gx_t + unbiased_norm(F.linear(h, layer.weight_hh, layer.bias_hh), layer.ln_hh)  # (B, 4h)
            sig = pre[:, : 3 * h_size].sigmoid()
            g = pre[:, 3 * h_size :].tanh()
            c = unbiased_norm(sig[:, h_size : 2 * h_size] * c + sig[:, :h_size] * g, layer.ln_cell)
            h = F.dropout(sig[:, 2 * h_size :] * c.tanh(), REFERENCE_DROPOUT, layer.training)
            out.append(h)
        return torch.stack(out)  # (T, B, h)

    class LNLSTMLayer(nn.Module):
        """One LN-LSTM layer, time-major: (T, B, d) -> (T, B, h)."""

        def __init__(self, d_in: int, hidden: int, flavour: str = "fptlab") -> None:
            super().__init__()
            self.hidden, self.d_in, self.flavour = hidden, d_in, flavour
            self.weight_ih = nn.Parameter(torch.empty(4 * hidden, d_in))
            self.weight_hh = nn.Parameter(torch.empty(4 * hidden, hidden))
            self.bias_ih = nn.Parameter(torch.empty(4 * hidden))  # inside LN_ih
            self.bias_hh = nn.Parameter(torch.empty(4 * hidden))  # inside LN_hh
            # the gate bias, after the norms (the reference has none)
            self.bias = nn.Parameter(torch.empty(4 * hidden)) if flavour == "fptlab" else None
            self.ln_ih = nn.LayerNorm(4 * hidden, eps=LN_EPS)
            self.ln_hh = nn.LayerNorm(4 * hidden, eps=LN_EPS)
            self.ln_cell = nn.LayerNorm(hidden, eps=LN_EPS)
            self.reset_parameters()

        def reset_parameters(self) -> None:
            bound = 1.0 / math.sqrt(self.hidden)
            with torch.no_grad():
                for w in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh):
                    w.uniform_(-bound, bound)
                if self.bias is not None:
                    self.bias.zero_()
                    self.bias[self.hidden : 2 * self.hidden].fill_(1.0)  # forget gate
                for ln in (self.ln_ih, self.ln_hh, self.ln_cell):
                    if self.flavour == "reference":  # the reference draws its norms' gain and bias too
                        norm_bound = 1.0 / math.sqrt(ln.normalized_shape[0])
                        ln.weight.uniform_(-norm_bound, norm_bound)
                        ln.bias.uniform_(-norm_bound, norm_bound)
                    else:
                        ln.reset_parameters()  # weight 1, bias 0

        def input_gates(self, x: torch.Tensor) -> torch.Tensor:
            """LN_ih(W_ih x + b_ih) (+ b) for all steps in one matmul: (T, B, d) -> (T, B, 4h)."""
            projected = F.linear(x, self.weight_ih, self.bias_ih)
            if self.bias is None:
                return unbiased_norm(projected, self.ln_ih)
            return self.ln_ih(projected) + self.bias

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (T, B, d) -> (T, B, h)
            if self.flavour == "reference":
                return scan_reference(self.input_gates(x), self)
            return scan(self.input_gates(x), self.weight_hh, self.bias_hh, self.ln_hh, self.ln_cell)

    class LSTMBody(Body):
        """Stacked LN-LSTM layers (`layers`), optionally residual, with an optional position table."""

        def __init__(self, hidden: int, options: LSTMOptions) -> None:
            super().__init__()
            self.blocks_path = BLOCKS
            self.residual = options.residual
            self.layers = nn.ModuleList(LNLSTMLayer(hidden, hidden, options.flavour) for _ in range(options.layers))
            self.positions: nn.Embedding | None = None
            self.position_paths = {}
            if options.positions:
                self.positions = nn.Embedding(MAX_POSITIONS, hidden)
                nn.init.normal_(self.positions.weight, 0.0, POSITION_STD)
                self.position_paths = {"positions": 0}

        def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # (B, T, d) -> (B, T, d)
            # unidirectional: a right-padded sequence's real steps never read its pads, so `mask` changes nothing
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
