"""The LN-LSTM's torch code (see `fptlab.backbones.lstm` for the equations, the flavours and the init):
imported on first use, so that registering the family imports no torch."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from fptlab.backbones._body import Body

POSITION_STD = 0.02
LN_EPS = 1e-6  # the paper's code normalises with eps 1e-6
REFERENCE_DROPOUT = 0.1  # the paper's code: dropout on every layer's h_t


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

    def __init__(self, hidden: int, options: Any, *, blocks_path: str, max_positions: int) -> None:
        super().__init__()
        self.blocks_path = blocks_path
        self.residual = options.residual
        self.layers = nn.ModuleList(LNLSTMLayer(hidden, hidden, options.flavour) for _ in range(options.layers))
        self.positions: nn.Embedding | None = None
        self.position_paths = {}
        if options.positions:
            self.positions = nn.Embedding(max_positions, hidden)
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
