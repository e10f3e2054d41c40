"""The bodies as the paper ran them (issue 16, sections 3-4): pads masked in bidirectional bodies, the
ViT checkpoints the paper's code and text each name with the reference's dropout, and the reference's
LN-LSTM as a flavour; every new option's default keeps stored hashes."""

from __future__ import annotations

import math

import pytest
import torch

from fptlab.backbones import BACKBONES
from fptlab.config import config_from_dict
from fptlab.model import build_model, masks_pads
from fptlab.tasks import TaskSpec

PADDED = TaskSpec("tokens", 9, 12, n_classes=3, pad_id=0)
BIDIRECTIONAL = ["bert-tiny", "t5-tiny", "longformer-tiny", "vit-tiny"]


def model_for(name: str, spec: TaskSpec = PADDED, **raw):
    torch.manual_seed(0)
    cfg = config_from_dict({"task": "listops", "backbone": name, "init": "random", **raw})
    return build_model(spec, cfg).eval()


@pytest.mark.parametrize("name", BIDIRECTIONAL)
def test_real_positions_do_not_change_when_padding_is_appended(name: str) -> None:
    model = model_for(name)
    real = torch.tensor([[3, 5, 7, 2, 4], [6, 1, 8, 0, 0]])  # the second sequence already ends in two pads
    longer = torch.cat([real, torch.zeros(2, 7, dtype=torch.long)], dim=1)  # 7 more pads: 12 tokens
    with torch.no_grad():
        short_h = model.backbone(model.input(real), real != 0)
        long_h = model.backbone(model.input(longer), longer != 0)
        unmasked = model.backbone(model.input(longer))
    assert masks_pads(config_from_dict({"task": "listops", "backbone": name}), PADDED, BACKBONES.get(name))
    torch.testing.assert_close(long_h[0, :5], short_h[0, :5], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(long_h[1, :3], short_h[1, :3], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(unmasked[0, :5], short_h[0, :5], atol=1e-4)  # without the mask the pads leak in


def test_causal_and_recurrent_bodies_and_unpadded_tasks_run_unmasked() -> None:
    cfg = config_from_dict({"task": "listops", "backbone": "gpt2-tiny"})
    assert not masks_pads(cfg, PADDED, BACKBONES.get("gpt2-tiny"))
    assert not masks_pads(config_from_dict({"task": "listops", "backbone": "lstm-tiny"}), PADDED, BACKBONES.get("lstm-tiny"))
    assert not masks_pads(config_from_dict({"task": "bit_xor", "backbone": "bert-tiny"}), TaskSpec("dense", 1, 10, 2), BACKBONES.get("bert-tiny"))
    off = config_from_dict({"task": "listops", "backbone": "bert-tiny", "mask_padding": False})
    assert not masks_pads(off, PADDED, BACKBONES.get("bert-tiny"))


def test_the_readout_of_a_padded_sequence_is_the_same_whatever_the_padding() -> None:
    """End to end through the model: logits of a right-padded protein-style batch (read at the last
    real token) do not depend on how many pads follow it."""
    spec = TaskSpec("tokens", 9, 12, n_classes=3, readout="last_real", pad_id=0)
    model = model_for("bert-tiny", spec)
    x = torch.tensor([[2, 5, 7, 3, 0, 0, 0, 0, 0, 0, 0, 0]])
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x[:, :6]), atol=1e-5, rtol=1e-4)


# ---- ViT -------------------------------------------------------------------------------------------------
def test_vit_defaults_are_the_papers_code_and_the_21k_weights_are_named() -> None:
    assert BACKBONES.get("vit-base").default_weights == "google/vit-base-patch16-224"
    assert BACKBONES.get("vit-base-in21k").default_weights == "google/vit-base-patch16-224-in21k"
    assert BACKBONES.get("vit-timm").weights_location("auto") == "timm/vit_base_patch16_224.orig_in21k_ft_in1k"
    assert BACKBONES.get("vit-timm-in21k").weights_location("auto") == "timm/vit_base_patch16_224.orig_in21k"


def test_vit_dropout_options_reach_the_body_and_default_to_zero() -> None:
    plain = model_for("vit-tiny", TaskSpec("dense", 3, 6, n_classes=2))
    assert plain.backbone.model.config.hidden_dropout_prob == 0.0 and plain.backbone.dropout.p == 0.0
    dropped = model_for("vit-tiny", TaskSpec("dense", 3, 6, n_classes=2), model={"hidden_dropout": 0.1, "attention_dropout": 0.1})
    config = dropped.backbone.model.config
    assert config.hidden_dropout_prob == 0.1 and config.attention_probs_dropout_prob == 0.1 and dropped.backbone.dropout.p == 0.1
    with pytest.raises(Exception, match="hidden_dropout must be in"):
        config_from_dict({"task": "bit_xor", "backbone": "vit-tiny", "model": {"hidden_dropout": 1.5}})


def test_new_options_at_their_defaults_keep_every_hash() -> None:
    base = {"task": "listops", "backbone": "bert-tiny", "init": "random"}
    same = [config_from_dict({**base, **extra}).hash for extra in (
        {}, {"mask_padding": True}, {"min_delta": 0.0}, {"val_fraction": None}, {"patience": None})]
    assert len(set(same)) == 1
    assert config_from_dict({**base, "mask_padding": False}).hash != same[0]
    lstm = {"task": "bit_xor", "backbone": "lstm-tiny"}
    assert config_from_dict(lstm).hash == config_from_dict({**lstm, "model": {"flavour": "fptlab"}}).hash
    vit = {"task": "bit_xor", "backbone": "vit-tiny"}
    assert config_from_dict(vit).hash == config_from_dict({**vit, "model": {"hidden_dropout": 0.0}}).hash


# ---- the reference's LN-LSTM ----------------------------------------------------------------------------
def lstm(flavour: str, **raw):
    return model_for("lstm-tiny", TaskSpec("dense", 3, 5, n_classes=2), model={"flavour": flavour}, **raw)


def test_the_reference_lstm_has_no_gate_bias_and_draws_its_norms() -> None:
    ours, ref = lstm("fptlab"), lstm("reference")
    names = {n for n, _ in ref.backbone.named_parameters()}
    assert "layers.0.bias" not in names and "layers.0.bias" in {n for n, _ in ours.backbone.named_parameters()}
    layer = ref.backbone.layers[0]
    for ln, width in ((layer.ln_ih, 4 * 32), (layer.ln_cell, 32)):
        bound = 1 / math.sqrt(width)
        assert ln.weight.abs().max() <= bound and ln.bias.abs().max() <= bound and ln.weight.std() > 0
    assert torch.equal(ours.backbone.layers[0].ln_cell.weight, torch.ones(32))  # fptlab: 1 / 0
    assert ours.backbone.layers[0].bias[32:64].eq(1).all()  # fptlab's forget-gate bias


def test_the_reference_lstm_starts_from_a_random_state_and_drops_h_in_training() -> None:
    ref = lstm("reference")
    x = torch.randn(2, 5, 3)
    with torch.no_grad():
        torch.manual_seed(1)
        a = ref(x)
        torch.manual_seed(1)
        b = ref(x)
        c = ref(x)
    torch.testing.assert_close(a, b)  # seeded: reproducible
    assert not torch.allclose(a, c)  # a fresh random h_0, c_0 at every forward, evaluation included
    ours = lstm("fptlab")
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ours(x))  # zeros: deterministic
    ref.train()
    h = ref.input(x)
    torch.manual_seed(2)
    out = ref.backbone.layers[0](h.transpose(0, 1))
    assert (out == 0).float().mean() > 0.03  # dropout 0.1 on h_t at every step


def test_the_reference_lstm_normalises_with_the_unbiased_variance() -> None:
    ref = lstm("reference")
    layer = ref.backbone.layers[0]
    x = torch.randn(4, 1, 32)  # (T, B, d): a layer's input is the body's width
    pre = torch.nn.functional.linear(x, layer.weight_ih, layer.bias_ih)
    expected = (pre - pre.mean(-1, keepdim=True)) / torch.sqrt(pre.var(-1, keepdim=True, unbiased=True) + 1e-6)
    torch.testing.assert_close(layer.input_gates(x), expected * layer.ln_ih.weight + layer.ln_ih.bias)
