"""The T5 encoder and Longformer families (paper Section 3.14, Table 17): groups, masks, depth,
positions, attention maps, pretrained loading and a short training run, on their tiny variants."""

from __future__ import annotations

import pytest
import torch

from fptlab.backbones import BACKBONES
from fptlab.config import config_from_dict
from fptlab.errors import DataNotFoundError
from fptlab.model import apply_trainable, build_model, count_parameters, parameter_groups
from fptlab.tasks import TaskSpec
from fptlab.train import train

TINY = ["t5-tiny", "longformer-tiny"]
T = 5  # not a multiple of longformer-tiny's window (8): its input is padded inside the model
DENSE = TaskSpec("dense", 3, T, n_classes=4)


def _cfg(backbone: str, **model: int):
    return config_from_dict({"task": "bit_xor", "backbone": backbone, "init": "random", "model": model})


def _model(backbone: str, task: TaskSpec = DENSE, **model: int):
    torch.manual_seed(0)
    return build_model(task, _cfg(backbone, **model))


@pytest.mark.parametrize("name", TINY + ["t5-base", "longformer-base"])
def test_every_parameter_in_exactly_one_group(name):
    model = build_model(DENSE, _cfg(name), meta=True)
    groups = parameter_groups(model, BACKBONES.get(name))  # asserts one group per parameter
    assert set(groups.values()) == {"input", "output", "positions", "layernorm", "attention", "feedforward", "embeddings"}


@pytest.mark.parametrize("name", TINY)
def test_bidirectional(name):
    model = _model(name).eval()
    x = torch.randn(1, T, 3)
    y = x.clone()
    y[0, -1] += 1.0  # change only the last token
    with torch.no_grad():
        h1, h2 = model.backbone(model.input(x)), model.backbone(model.input(y))
    assert (h1[0, 0] - h2[0, 0]).abs().max().item() > 1e-6


@pytest.mark.parametrize("name", TINY)
def test_depth_keeps_first_blocks(name):
    spec = BACKBONES.get(name)
    full, one = _model(name), _model(name, depth=1)
    assert (full.backbone.n_blocks(), one.backbone.n_blocks()) == (2, 1)
    assert sum(p.numel() for p in one.parameters()) < sum(p.numel() for p in full.parameters())
    assert one(torch.randn(2, T, 3)).shape == (2, 1, 4)
    groups = apply_trainable(one, spec, ("attention@-1",))
    trained = [n for n, p in one.named_parameters() if p.requires_grad]
    assert trained and all(groups[n] == "attention" and spec.layer_of(n.partition(".")[2]) == 0 for n in trained)
    assert len(trained) == sum(g == "attention" for g in groups.values())


def test_t5_relative_bias_is_positions_in_block_zero():
    model = _model("t5-tiny", depth=1)
    groups = parameter_groups(model, BACKBONES.get("t5-tiny"))
    positions = [n for n, g in groups.items() if g == "positions"]
    assert positions == ["backbone.model.encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    assert count_parameters(model, groups).by_group["positions"] == 32 * 2  # buckets × heads


def test_t5_attention_maps():
    model = _model("t5-tiny").eval()
    with torch.no_grad():
        maps = model.attention_maps(torch.randn(3, T, 3))
    assert maps.shape == (3, T, T)
    torch.testing.assert_close(maps.sum(-1), torch.ones(3, T))
    assert model.backbone.model.config._attn_implementation != "eager"  # restored after the probe


def test_longformer_positions_and_padding():
    model = _model("longformer-tiny").eval()
    table = model.backbone.model.embeddings.position_embeddings
    assert tuple(table.weight.shape) == (T + 2, 32)  # rows 0, 1 (padding) and positions 2 .. T + 1
    groups = parameter_groups(model, BACKBONES.get("longformer-tiny"))
    assert count_parameters(model, groups).by_group["positions"] == (T + 2) * 32
    assert not BACKBONES.get("longformer-tiny").attention_maps
    x = model.input(torch.randn(2, T, 3))
    with torch.no_grad():
        before = model.backbone(x)
        model.backbone.model.embeddings.word_embeddings.weight[1] += 5.0  # what the padding tokens read
        after = model.backbone(x)
    assert before.shape == (2, T, 32)
    torch.testing.assert_close(before, after)  # padding is masked out of every attention


@pytest.mark.parametrize("length", [1, 2, 3, 4])
def test_longformer_short_sequences_narrow_the_window_exactly(length):
    body = _model("longformer-tiny", task=TaskSpec("dense", 3, length, n_classes=4)).backbone.eval()
    x = torch.randn(2, length, 32)
    positions = torch.arange(2, 2 + length).expand(2, -1)
    with torch.no_grad():
        reference = body.model(inputs_embeds=x, position_ids=positions).last_hidden_state  # padded to the full window (8)
        torch.testing.assert_close(body(x), reference)
    assert [b.attention.self.one_sided_attn_window_size for b in body.blocks()] == [4, 4]  # restored
    assert body.model.config.attention_window == [8, 8]


@pytest.mark.parametrize("name", ["t5-base", "longformer-base"])
def test_pretrained_offline_is_a_clear_error(name):
    cfg = config_from_dict({"task": "bit_xor", "backbone": name})
    with pytest.raises(DataNotFoundError, match=rf"backbone '{name}'.*--set weights=PATH"):
        build_model(DENSE, cfg)


def test_load_from_a_local_checkpoint(tmp_path):
    import transformers

    from fptlab.backbones import longformer, t5

    spec = BACKBONES.get("t5-tiny")
    config = t5.build(spec, spec.Options()).model.config.to_dict()
    seq2seq = transformers.T5ForConditionalGeneration(transformers.T5Config(**{**config, "is_encoder_decoder": True}))
    seq2seq.save_pretrained(tmp_path / "t5")  # encoder and decoder: the encoder alone is loaded
    body = t5.load(spec, spec.Options(), str(tmp_path / "t5"))
    name = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
    torch.testing.assert_close(body.model.get_parameter(name), seq2seq.get_parameter(name))

    spec = BACKBONES.get("longformer-tiny")
    masked_lm = transformers.LongformerForMaskedLM(longformer.build(spec, spec.Options()).model.config)
    masked_lm.save_pretrained(tmp_path / "longformer")
    body = longformer.load(spec, spec.Options(), str(tmp_path / "longformer")).fit(2, T)
    torch.testing.assert_close(body.model.embeddings.position_embeddings.weight,
                               masked_lm.longformer.embeddings.position_embeddings.weight[: T + 2])


@pytest.mark.parametrize("name", TINY)
def test_three_training_steps(name, tmp_path):
    cfg = config_from_dict({"task": "bit_xor", "backbone": name, "init": "random", "steps": 3, "eval_every": 3,
                            "bit_xor": {"n_bits": 3, "test_size": 16}})
    result = train(cfg, data_dir=tmp_path)
    assert result.status == "completed" and result.steps == 3
    assert result.trainable_params < result.total_params


@pytest.mark.parametrize("name", TINY)
def test_saved_body_round_trip(name, tmp_path):
    from fptlab import bodies

    spec = BACKBONES.get(name)
    model = _model(name, depth=1).eval()
    bodies.save_body(model.backbone, spec, spec.Options(depth=1), tmp_path, config_hash="0" * 16, versions={})
    body = bodies.load_body(spec, spec.Options(depth=1), tmp_path).fit(1, T).eval()
    x = torch.randn(2, T, 32)
    with torch.no_grad():
        torch.testing.assert_close(body(x), model.backbone(x))
