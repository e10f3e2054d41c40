"""ViT bodies (paper Section 3.2, Appendix D.2): groups, the new zero position table, bidirectional
attention, depth, attention maps against the block's own computation, offline loading, and vit-timm's
clear error without the timm extra."""

from __future__ import annotations

import importlib.util
import sys
import types

import pytest
import torch
from torch import nn

from fptlab.backbones import BACKBONES
from fptlab.backbones import vit as vit_module
from fptlab.config import config_from_dict
from fptlab.errors import DataNotFoundError
from fptlab.model import apply_trainable, build_model, parameter_groups
from fptlab.plan import summarize
from fptlab.tasks import TaskSpec
from fptlab.train import train

DENSE = TaskSpec("dense", 3, 6, n_classes=4)
HAS_TIMM = importlib.util.find_spec("timm") is not None


def cfg(backbone: str = "vit-tiny", **raw):
    return config_from_dict({"task": "bit_xor", "backbone": backbone, "init": "random", **raw})


def tiny(**raw):
    torch.manual_seed(0)
    return build_model(DENSE, cfg(**raw)).eval()


def test_every_parameter_in_exactly_one_group():
    model = tiny()
    groups = parameter_groups(model, BACKBONES.get("vit-tiny"))  # asserts exactly one group each
    assert set(groups.values()) == {"input", "output", "positions", "layernorm", "attention", "feedforward", "embeddings"}
    embeddings = {n.removeprefix("backbone.model.embeddings.") for n, g in groups.items() if g == "embeddings"}
    assert embeddings == {"cls_token", "position_embeddings", "patch_embeddings.projection.weight", "patch_embeddings.projection.bias"}
    assert [n for n, g in groups.items() if g == "positions"] == ["backbone.positions.weight"]


def test_new_position_table_zero_trainable_and_vit_embeddings_frozen():
    c = cfg()
    model = build_model(DENSE, c)
    table = model.backbone.positions
    assert tuple(table.weight.shape) == (6, 32) and tuple(table.tail.shape) == (1024 - 6, 32)  # T rows, rest aside
    assert not table.weight.detach().any() and not table.tail.any()
    groups = apply_trainable(model, BACKBONES.get("vit-tiny"), c.train)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "backbone.positions.weight" in trainable
    assert {groups[n] for n in trainable} == {"input", "output", "positions", "layernorm"}
    assert not any(groups[n] == "embeddings" for n in trainable)


def test_bidirectional():
    model = tiny()
    x = torch.randn(1, 6, 3)
    y = x.clone()
    y[0, -1] += 1.0  # change only the last token
    with torch.no_grad():
        h1, h2 = model.backbone(model.input(x)), model.backbone(model.input(y))
    assert (h1[0, 0] - h2[0, 0]).abs().max().item() > 1e-4  # the first token sees the last


def test_forward_is_layernorm_of_blocks_of_inputs_plus_positions():
    model = tiny()
    body = model.backbone
    with torch.no_grad():
        body.positions.weight.normal_()
        x = torch.randn(2, 6, 32)
        h = x + body.positions.weight
        for block in body.blocks():
            out = block(h)
            h = out[0] if isinstance(out, tuple) else out
        torch.testing.assert_close(body(x), body.model.layernorm(h))


def test_depth_one_keeps_one_block_and_runs():
    model = tiny(model={"depth": 1})
    assert model.backbone.n_blocks() == 1 and model.backbone.model.config.num_hidden_layers == 1
    assert model(torch.randn(2, 6, 3)).shape == (2, 1, 4)


def test_attention_maps_match_the_blocks_own_attention():
    model = tiny()
    body = model.backbone
    with torch.no_grad():
        body.positions.weight.normal_()  # positions must enter the attention too
    x = torch.randn(2, 6, 3)
    maps = model.attention_maps(x)
    assert maps.shape == (2, 6, 6)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 6))

    attn = body.blocks()[0].attention
    seen: dict[str, torch.Tensor] = {}
    hooks = [attn.register_forward_hook(lambda m, a, out: seen.update(weights=out[1])),
             attn.o_proj.register_forward_pre_hook(lambda m, a: seen.update(context=a[0])),
             attn.v_proj.register_forward_hook(lambda m, a, out: seen.update(values=out))]
    body.model.set_attn_implementation("eager")  # so the block returns its probabilities
    with torch.no_grad():
        h = model.input(x)
        probs = body.first_attention(h)  # (B, H, T, T)
        body(h)
    for hook in hooks:
        hook.remove()
    torch.testing.assert_close(probs, seen["weights"])
    values = seen["values"].unflatten(-1, (2, -1)).transpose(1, 2)  # (B, H, T, dh)
    torch.testing.assert_close((probs @ values).transpose(1, 2).flatten(2), seen["context"])  # probs @ V is the context


def test_vit_base_pretrained_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match=r"'vit-base'.*--set weights=PATH"):
        build_model(DENSE, config_from_dict({"task": "bit_xor", "backbone": "vit-base", "init": "pretrained"}))


def _old_layout(name: str) -> str:
    """A transformers-5.9+ ViTModel key under the hub checkpoints' (pre-5.9) names."""
    for new, old in (("layers.", "encoder.layer."), ("attention.q_proj", "attention.attention.query"),
                     ("attention.k_proj", "attention.attention.key"), ("attention.v_proj", "attention.attention.value"),
                     ("attention.o_proj", "attention.output.dense"), ("mlp.fc1", "intermediate.dense"), ("mlp.fc2", "output.dense")):
        name = name.replace(new, old)
    return name


def test_load_reads_a_checkpoint_in_the_hubs_layout(tmp_path):
    from safetensors.torch import save_file

    spec = BACKBONES.get("vit-tiny")
    source = vit_module.build(spec, spec.Options()).model
    state = {_old_layout(k): v.contiguous() for k, v in source.state_dict().items()}
    assert any("encoder.layer.0.attention.attention.query" in k for k in state)
    source.config.save_pretrained(tmp_path)
    save_file(state, str(tmp_path / "model.safetensors"))
    body = vit_module.load(spec, spec.Options(), str(tmp_path))
    loaded = dict(body.model.named_parameters())
    for name, param in source.named_parameters():
        torch.testing.assert_close(loaded[name], param)
    assert not body.positions.weight.detach().any()


def test_three_training_steps_complete():
    result = train(cfg(steps=3, eval_every=3, bit_xor={"n_bits": 3, "test_size": 16}))
    assert result.status == "completed" and result.steps == 3


# ---- vit-timm ------------------------------------------------------------------------------------
def test_vit_timm_spec():
    spec = BACKBONES.get("vit-timm")
    assert (spec.family, spec.d_model, spec.n_layers, spec.max_positions, spec.causal) == ("vit", 768, 12, 1024, False)


@pytest.mark.skipif(HAS_TIMM, reason="timm is installed")
@pytest.mark.parametrize("init", ["random", "pretrained"])
def test_vit_timm_without_timm_is_a_clear_error(init):
    c = config_from_dict({"task": "bit_xor", "backbone": "vit-timm", "init": init})
    with pytest.raises(DataNotFoundError, match=r"pip install 'fptlab\[timm\]'.*--backbone vit-base"):
        build_model(DENSE, c)
    with pytest.raises(DataNotFoundError, match=r"fptlab\[timm\]"):
        summarize(c)  # --dry-run builds on the meta device, which needs timm too


def _fake_timm() -> types.SimpleNamespace:
    """A module with timm's ViT attribute names (not timm's code): enough to check the glue."""
    class Attn(nn.Module):
        def __init__(self, d, heads):
            super().__init__()
            self.num_heads, self.scale = heads, (d // heads) ** -0.5
            self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)

        def forward(self, x):
            q, k, v = self.qkv(x).unflatten(-1, (3, self.num_heads, -1)).permute(2, 0, 3, 1, 4)
            return self.proj(((q @ k.transpose(-1, -2) * self.scale).softmax(-1) @ v).transpose(1, 2).flatten(2))

    class Block(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.norm1, self.attn, self.norm2 = nn.LayerNorm(d), Attn(d, 2), nn.LayerNorm(d)
            self.mlp = nn.Sequential()
            self.mlp.fc1, self.mlp.act, self.mlp.fc2 = nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d)

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    def create_model(name, pretrained=False, num_classes=0, drop_rate=0.0, attn_drop_rate=0.0):
        m = nn.Module()
        m.embed_dim = d = 8  # tiny: build does not check the width (load does)
        m.patch_embed = nn.Sequential()
        m.patch_embed.proj = nn.Conv2d(3, d, 4, 4)
        m.cls_token, m.pos_embed = nn.Parameter(torch.zeros(1, 1, d)), nn.Parameter(torch.zeros(1, 5, d))
        m.pos_drop, m.norm_pre, m.blocks, m.norm = nn.Dropout(drop_rate), nn.Identity(), nn.Sequential(*[Block(d) for _ in range(12)]), nn.LayerNorm(d)
        m.drop_rates = (drop_rate, attn_drop_rate)
        return m

    return types.SimpleNamespace(create_model=create_model)


def test_vit_timm_body_glue_with_a_stand_in(monkeypatch):
    from fptlab.backbones import vit_timm

    monkeypatch.setitem(sys.modules, "timm", _fake_timm())
    spec = BACKBONES.get("vit-timm")
    assert vit_timm.build(spec, spec.Options(hidden_dropout=0.1, attention_dropout=0.1)).model.drop_rates == (0.1, 0.1)
    body = vit_timm.build(spec, spec.Options())
    names = [n for n, _ in body.named_parameters()]
    assert all(len(spec.group_of(n)) == 1 for n in names), [(n, spec.group_of(n)) for n in names]
    assert {g for n in names for g in spec.group_of(n)} == {"embeddings", "positions", "layernorm", "attention", "feedforward"}
    assert not body.positions.weight.detach().any() and tuple(body.positions.weight.shape) == (1024, 8)
    body.fit(2, 5)
    x = torch.randn(2, 5, 8)
    assert body(x).shape == (2, 5, 8) and body.n_blocks() == 2
    attn, seen = body.blocks()[0].attn, {}
    hooks = [attn.qkv.register_forward_hook(lambda m, a, out: seen.update(v=out.unflatten(-1, (3, 2, -1))[:, :, 2].transpose(1, 2))),
             attn.proj.register_forward_pre_hook(lambda m, a: seen.update(context=a[0]))]
    body(x)
    probs = body.first_attention(x)  # (B, H, T, T); qkv ran again, but on the same input
    for hook in hooks:
        hook.remove()
    assert probs.shape == (2, 2, 5, 5)
    torch.testing.assert_close((probs @ seen["v"]).transpose(1, 2).flatten(2), seen["context"])
