"""The LN-LSTM family (paper Section 3.3, Tables 3-5): groups, causality, options, the cell against a
plain reference, and that a frozen LSTM still trains its layer norms."""

from __future__ import annotations

import pytest
import torch

from fptlab.backbones import BACKBONES
from fptlab.config import config_from_dict
from fptlab.errors import ConfigError, IncompatibleError
from fptlab.model import apply_trainable, build_model, parameter_groups
from fptlab.plan import resolve_config
from fptlab.tasks import TaskSpec
from fptlab.train import train

TASK = TaskSpec("dense", 3, 6, n_classes=4)
H = 32  # lstm-tiny's hidden size
PER_LAYER = 2 * 4 * H * H + 3 * 4 * H + 2 * (2 * 4 * H) + 2 * H  # W_ih, W_hh, b_ih, b_hh, b, LN_ih, LN_hh, LN_cell


def cfg_of(**model):
    return config_from_dict({"task": "bit_xor", "backbone": "lstm-tiny", "init": "random", "model": model})


def build(**model):
    torch.manual_seed(0)
    return build_model(TASK, cfg_of(**model))


def body_counts(model):
    groups = parameter_groups(model, BACKBONES.get("lstm-tiny"))  # asserts exactly one group per parameter
    out: dict[str, int] = {}
    for name, param in model.named_parameters():
        if name.startswith("backbone."):
            out[groups[name]] = out.get(groups[name], 0) + param.numel()
    return out


# ---- a plain reference: one example, one step at a time, layer norm written out ------------------
def ln(v, weight, bias, eps=1e-6):
    mean = v.mean()
    var = ((v - mean) ** 2).mean()
    return (v - mean) / torch.sqrt(var + eps) * weight + bias


def reference_layer(layer, xs):  # xs (T, d) -> (T, h), one example
    h = torch.zeros(H, dtype=xs.dtype)
    c = torch.zeros(H, dtype=xs.dtype)
    outs = []
    for x in xs:
        pre = (ln(layer.weight_ih @ x + layer.bias_ih, layer.ln_ih.weight, layer.ln_ih.bias)
               + ln(layer.weight_hh @ h + layer.bias_hh, layer.ln_hh.weight, layer.ln_hh.bias) + layer.bias)
        i, f, o, g = pre[:H], pre[H:2 * H], pre[2 * H:3 * H], pre[3 * H:]
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        c = ln(c, layer.ln_cell.weight, layer.ln_cell.bias)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs)


def randomize_norms(body):
    """Layer norms away from 1/0, so the reference comparison exercises them."""
    with torch.no_grad():
        for name, param in body.named_parameters():
            if ".ln_" in name:
                param.normal_(1.0 if name.endswith("weight") else 0.0, 0.3)


@pytest.mark.parametrize("model", [{}, {"residual": True, "positions": True, "layers": 2}], ids=["plain", "residual+positions"])
def test_body_matches_plain_reference(model):
    body = build(**model).backbone.double()
    randomize_norms(body)
    x = torch.randn(2, 6, H, dtype=torch.float64)
    with torch.no_grad():
        got = body(x)
        for b in range(2):
            y = x[b] + (body.positions.weight[:6] if body.positions is not None else 0)
            for layer in body.layers:
                y = y + reference_layer(layer, y) if body.residual else reference_layer(layer, y)
            torch.testing.assert_close(got[b], y, rtol=1e-9, atol=1e-9)


def test_init():
    layer = build().backbone.layers[0]
    bound = 1 / H**0.5
    for param in (layer.weight_ih, layer.weight_hh, layer.bias_ih, layer.bias_hh):
        assert param.abs().max() <= bound and param.std() > bound / 4
    assert torch.equal(layer.bias[H:2 * H], torch.ones(H)) and layer.bias[:H].abs().sum() == 0 and layer.bias[2 * H:].abs().sum() == 0
    for norm in (layer.ln_ih, layer.ln_hh, layer.ln_cell):
        assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)


def test_frozen_recurrence_still_trains_layer_norms():
    model = build(layers=2)
    cfg = cfg_of(layers=2)
    groups = apply_trainable(model, BACKBONES.get("lstm-tiny"), cfg.train)
    model(torch.randn(4, 6, 3)).sum().backward()
    for name, param in model.named_parameters():
        if groups[name] == "recurrent":
            assert not param.requires_grad and param.grad is None, name
        else:  # every layer norm of every layer gets gradient through the frozen recurrence
            assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_zero_tokens_keep_gradients_moderate():
    # Bit XOR's 0 bits reach the body as exact zero vectors (the input layer's bias starts at 0); with
    # the zero initial state, a layer norm of a constant vector would scale gradients by 1/sqrt(eps).
    model = build()
    x = torch.zeros(4, 6, 3)
    x[:, 1::2] = 1.0  # a zero token first: without b_ih, b_hh this reached gradients of ~1e17
    model(x).sum().backward()
    worst = max(p.grad.abs().max().item() for p in model.parameters())
    assert worst < 100


def test_causal():
    model = build(residual=True, positions=True).eval()
    x = torch.randn(1, 6, 3)
    y = x.clone()
    y[0, -1] += 1.0  # change only the last token
    with torch.no_grad():
        h1, h2 = model.backbone(model.input(x)), model.backbone(model.input(y))
    assert torch.equal(h1[0, :-1], h2[0, :-1])
    assert not torch.equal(h1[0, -1], h2[0, -1])
    assert BACKBONES.get("lstm").causal and not BACKBONES.get("lstm").attention_maps


def test_groups_and_options():
    assert body_counts(build()) == {"recurrent": 3 * (PER_LAYER - 18 * H), "layernorm": 3 * 18 * H}
    assert body_counts(build(layers=12)) == {"recurrent": 12 * (PER_LAYER - 18 * H), "layernorm": 12 * 18 * H}
    assert body_counts(build(residual=True)) == body_counts(build())  # residual adds no parameters
    with_positions = body_counts(build(positions=True))
    assert with_positions.pop("positions") == TASK.seq_len * H  # the task's rows of the 1024-row table
    assert with_positions == body_counts(build())
    body = build(positions=True).backbone
    assert body.position_paths == {"positions": 0} and body.position_lengths() == {"positions": 1024}
    assert build().backbone.position_paths == {} and build().backbone.positions is None


def test_residual_changes_output():
    x = torch.randn(2, 6, H)
    with torch.no_grad():
        assert not torch.allclose(build().backbone(x), build(residual=True).backbone(x))


def test_depth_keeps_first_layers():
    full, cut = build(layers=4), build(layers=4, depth=1)
    assert full.backbone.n_blocks() == 4 and cut.backbone.n_blocks() == 1
    assert torch.equal(full.backbone.layers[0].weight_hh, cut.backbone.layers[0].weight_hh)  # same seed: the first layer
    with pytest.raises(ConfigError, match="depth"):
        cfg_of(layers=2, depth=3)
    with pytest.raises(ConfigError, match="layers"):
        cfg_of(layers=0)


def test_defaults_paper():
    cfg = config_from_dict({"task": "bit_xor", "backbone": "lstm"})
    assert cfg.train == ("input", "output", "layernorm") and cfg.lr == 3e-4 and cfg.init == "random"
    assert config_from_dict({"task": "bit_xor", "backbone": "lstm", "lr": 1e-3}).lr == 1e-3  # a set key wins
    assert cfg_of(positions=True).train == ("input", "output", "positions", "layernorm")


def test_attention_group_is_an_error_naming_lstm_groups():
    with pytest.raises(IncompatibleError, match="recurrent"):
        resolve_config(config_from_dict({"task": "bit_xor", "backbone": "lstm-tiny", "init": "random", "train": ["attention"]}))
    with pytest.raises(IncompatibleError, match="recurrent"):
        apply_trainable(build(), BACKBONES.get("lstm-tiny"), ("attention",))


def test_pretrained_without_weights_is_a_clear_error():
    cfg = config_from_dict({"task": "bit_xor", "backbone": "lstm-tiny", "init": "pretrained"})
    with pytest.raises(IncompatibleError, match="no pretrained weights"):
        resolve_config(cfg)


def test_saved_state_fits_a_fresh_body():
    body = build(positions=True, layers=2).backbone
    fresh = BACKBONES.get("lstm-tiny").build(BACKBONES.get("lstm-tiny"), cfg_of(positions=True, layers=2).model_options)
    fresh.load_state_dict(body.full_state(), strict=True)


def test_five_step_run():
    result = train(config_from_dict({"task": "bit_xor", "backbone": "lstm-tiny", "init": "random", "steps": 5, "eval_every": 5,
                                     "bit_xor": {"n_bits": 3, "test_size": 16}}))
    assert result.steps == 5 and result.status == "completed"
    assert result.params_by_group["recurrent"] > 0 and result.params_by_group["attention"] == 0
