"""Sweep-spec expansion contracts: Cartesian products, zip, variants, when, exclude, task sections,
deduplication, deterministic order, stable hashes, growth that keeps existing hashes, inheritance,
and the example specs in experiments/. All pure: no Ray, torch or data."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from fptlab.config import apply_overrides, config_from_dict
from fptlab.errors import ConfigError
from fptlab.sweep import expand, load_spec, spec_from_dict
from tests.sweep.conftest import SMOKE

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def spec(body: str, name: str = "t") -> dict:
    return tomllib.loads(f'[experiment]\nname = "{name}"\n{body}')


def labels(cells) -> list[dict]:
    return [c.labels for c in cells]


# ---- the issue's smallest spec --------------------------------------------------------------------------
def test_smoke_spec_expands_to_eight_cells_in_order(write):
    s = load_spec(write(SMOKE))
    assert (s.name, s.description, len(s.cells), s.axes) == ("smoke", "", 8, ["init", "lr", "seed"])
    assert labels(s.cells)[:3] == [
        {"init": "pretrained", "lr": 1e-3, "seed": 0},
        {"init": "pretrained", "lr": 1e-3, "seed": 1},
        {"init": "pretrained", "lr": 3e-4, "seed": 0},
    ]
    assert s.cells[-1].labels == {"init": "random", "lr": 3e-4, "seed": 1}
    assert s.cells[0].label == "init=pretrained lr=0.001 seed=0"
    assert len(set(s.hashes)) == 8 and (s.excluded, s.duplicates) == (0, 0)


def test_cells_are_the_configs_run_set_would_build(write):
    """Every key is a run-config key exactly as `fptlab run --set` takes it: same config, same hash."""
    for cell in load_spec(write(SMOKE)).cells:
        sets = [f"{k}={json.dumps(v)}" for k, v in cell.labels.items()]
        base = {"task": "bit_xor", "backbone": "minilm", "steps": 20, "eval_every": 10}
        assert cell.config == config_from_dict(apply_overrides(base, sets))
        assert cell.hash == cell.config.hash


def test_growing_seeds_keeps_existing_hashes(write):
    before = load_spec(write(SMOKE)).hashes
    after = load_spec(write(SMOKE.replace("seed = [0, 1]", "seed = [0, 1, 2]"), "grown.toml")).hashes
    assert len(after) == 12
    assert set(before) <= set(after) and len(set(after) - set(before)) == 4


def test_growing_an_axis_value_keeps_existing_hashes(write):
    before = load_spec(write(SMOKE)).hashes
    after = load_spec(write(SMOKE.replace("lr = [1e-3, 3e-4]", "lr = [1e-3, 3e-4, 1e-4]"), "grown.toml")).hashes
    assert len(after) == 12 and set(before) <= set(after)


def test_hashes_are_stable_across_processes(write):
    path = write(SMOKE)
    code = f"from fptlab.sweep import load_spec; s = load_spec({str(path)!r}); print(s.hash, *s.hashes)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    s = load_spec(path)
    assert out.stdout.split() == [s.hash, *s.hashes]


def test_expansion_is_pure_and_light():
    code = (
        "import sys; from fptlab.sweep import load_spec; "
        f"load_spec({str(EXPERIMENTS / 'table2.toml')!r}); "
        "print(sorted(m for m in ('torch', 'transformers', 'ray', 'sqlalchemy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_canonical_json_round_trips_to_the_same_cells(write):
    s = load_spec(write(SMOKE))
    again = spec_from_dict(json.loads(s.text), origin="again")
    assert again.hashes == s.hashes and again.hash == s.hash
    assert load_spec(write(SMOKE + "\n# a comment changes nothing\n", "other.toml")).hash == s.hash


def test_order_is_deterministic(write):
    text = SMOKE + '\n[[zip]]\n"bit_xor.n_bits" = [3, 4]\nsteps = [5, 6]\n'
    path = write(text)
    assert load_spec(path).hashes == load_spec(path).hashes == [c.hash for c in expand(tomllib.loads(text))]


# ---- axes ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "grid, count",
    [
        ("lr = [1e-3]", 1),
        ("lr = [1e-3, 3e-4]\nsteps = [1, 2, 3]", 6),
        ("lr = [1e-3, 3e-4]\nsteps = [1, 2, 3]\ninit = [\"pretrained\", \"random\"]\nbit_xor.n_bits = [3, 4]", 24),
    ],
)
def test_cartesian_counts(grid, count):
    assert len(expand(spec(f'[defaults]\ntask = "bit_xor"\n[grid]\n{grid}'))) == count


def test_no_grid_is_one_cell_and_an_empty_grid_is_a_mistake():
    assert len(expand(spec('[defaults]\ntask = "bit_xor"'))) == 1
    with pytest.raises(ConfigError, match="grid: is empty"):
        expand(spec('[defaults]\ntask = "bit_xor"\n[grid]\n'))


def test_seeds_sugar_is_the_seed_axis():
    sugar = expand(tomllib.loads('seeds = [0, 1, 2]\n[experiment]\nname = "a"\n[defaults]\ntask = "bit_xor"'))
    axis = expand(spec('[defaults]\ntask = "bit_xor"\n[grid]\nseed = [0, 1, 2]'))
    assert [c.hash for c in sugar] == [c.hash for c in axis]
    assert labels(sugar) == [{"seed": 0}, {"seed": 1}, {"seed": 2}]


def test_zip_advances_together_and_crosses_the_rest():
    cells = expand(spec(
        '[defaults]\nsteps = 7\n[grid]\ninit = ["pretrained", "random"]\n'
        '[[zip]]\ntask = ["bit_xor", "bit_memory"]\nsteps = [20, 40]\n'
        '[[zip]]\nlr = [1e-3, 1e-4]\nbatch_size = [4, 8]'
    ))
    assert len(cells) == 2 * 2 * 2
    assert {(c.config.task, c.config.steps) for c in cells} == {("bit_xor", 20), ("bit_memory", 40)}
    assert {(c.config.lr, c.config.batch_size) for c in cells} == {(1e-3, 4), (1e-4, 8)}
    assert list(cells[0].labels) == ["init", "task", "steps", "lr", "batch_size"]


def test_list_valued_axis_takes_lists():
    cells = expand(spec('[defaults]\ntask = "bit_xor"\n[grid]\ntrain = [["input", "output"], ["output", "layernorm"]]'))
    assert [c.config.train for c in cells] == [("input", "output"), ("output", "layernorm")]


def test_dotted_and_nested_task_keys_are_the_same():
    nested = expand(spec('[defaults]\ntask = "bit_xor"\n[grid]\nbit_xor.n_bits = [3, 4]'))
    quoted = expand(spec('[defaults]\ntask = "bit_xor"\n[grid]\n"bit_xor.n_bits" = [3, 4]'))
    assert [c.hash for c in nested] == [c.hash for c in quoted]
    assert [c.config.task_options.n_bits for c in nested] == [3, 4]


# ---- variants -------------------------------------------------------------------------------------------------
VARIANTS = '[defaults]\ntask = "bit_xor"\n[variants]\nfpt = { backbone = "gpt2", init = "pretrained" }\nrandom = { backbone = "gpt2", init = "random" }\nsmall = { backbone = "minilm" }\n'


def test_variants_form_one_axis_outermost():
    cells = expand(spec(VARIANTS + "[grid]\nseed = [0, 1]"))
    assert [c.labels["variant"] for c in cells] == ["fpt", "fpt", "random", "random", "small", "small"]
    assert [(c.config.backbone, c.config.init) for c in cells[::2]] == [("gpt2", "pretrained"), ("gpt2", "random"), ("minilm", "pretrained")]


def test_grid_variant_chooses_and_orders_variants():
    cells = expand(spec(VARIANTS + '[grid]\nseed = [0, 1]\nvariant = ["random", "fpt"]'))
    assert labels(cells)[:2] == [{"seed": 0, "variant": "random"}, {"seed": 0, "variant": "fpt"}]
    assert len(cells) == 4


def test_variants_can_be_zipped():
    cells = expand(spec(VARIANTS + '[[zip]]\nvariant = ["fpt", "small"]\nsteps = [10, 20]'))
    assert [(c.labels["variant"], c.config.steps, c.config.backbone) for c in cells] == [("fpt", 10, "gpt2"), ("small", 20, "minilm")]


def test_variant_overrides_defaults():
    cells = expand(spec('[defaults]\ntask = "bit_xor"\nlr = 0.5\n[variants]\na = {}\nb = { lr = 0.1 }'))
    assert [c.config.lr for c in cells] == [0.5, 0.1]


# ---- when, exclude, task sections, dedup ----------------------------------------------------------------------
def test_when_applies_in_order_and_labels_show_the_result():
    cells = expand(spec(
        '[grid]\ntask = ["bit_xor", "bit_memory"]\nlr = [1e-3]\n'
        '[[when]]\nmatch = { task = "bit_memory" }\nset = { lr = 1e-4 }\n'
        '[[when]]\nmatch = { lr = 1e-4 }\nset = { steps = 3 }\n'
    ))
    assert [(c.config.task, c.config.lr, c.config.steps) for c in cells] == [("bit_xor", 1e-3, 1000), ("bit_memory", 1e-4, 3)]
    assert cells[1].labels == {"task": "bit_memory", "lr": 1e-4}


def test_when_matches_defaults_task_options_variants_and_any_of():
    cells = expand(spec(
        '[grid]\ntask = ["bit_xor", "bit_memory", "listops"]\n'
        '[variants]\nfpt = {}\nrnd = { init = "random" }\n'
        '[[when]]\nmatch = { backbone = "minilm", bit_xor.n_bits = 5, variant = "rnd" }\nset = { steps = 2 }\n'
        '[[when]]\nmatch = { task = ["bit_memory", "listops"], init = "pretrained" }\nset = { steps = 9 }\n'
    ))
    steps = {(c.labels["variant"], c.config.task): c.config.steps for c in cells}
    assert steps == {
        ("fpt", "bit_xor"): 1000, ("fpt", "bit_memory"): 9, ("fpt", "listops"): 9,
        ("rnd", "bit_xor"): 2, ("rnd", "bit_memory"): 1000, ("rnd", "listops"): 1000,
    }


def test_exclude_drops_matching_cells_with_any_of():
    s = spec_from_dict(spec(
        '[grid]\ntask = ["bit_xor", "bit_memory", "listops"]\ninit = ["pretrained", "random"]\n'
        '[[exclude]]\ntask = ["bit_memory", "listops"]\ninit = "random"\n'
        '[[exclude]]\ntask = "bit_xor"\ninit = "pretrained"\n'
    ))
    assert [(c.config.task, c.config.init) for c in s.cells] == [("bit_xor", "random"), ("bit_memory", "pretrained"), ("listops", "pretrained")]
    assert s.excluded == 3


def test_exclude_sees_when_overrides_and_variants():
    cells = expand(spec(
        '[defaults]\ntask = "bit_xor"\n[variants]\na = {}\nb = { steps = 5 }\n[grid]\nlr = [1e-3, 1e-2]\n'
        '[[when]]\nmatch = { lr = 1e-2 }\nset = { steps = 7 }\n'
        '[[exclude]]\nsteps = 7\nvariant = "a"\n'
    ))
    assert [(c.labels["variant"], c.config.lr, c.config.steps) for c in cells] == [("a", 1e-3, 1000), ("b", 1e-3, 5), ("b", 1e-2, 7)]


def test_task_sections_apply_only_to_their_task():
    cells = expand(spec(
        '[grid]\ntask = ["bit_xor", "listops"]\n'
        '[defaults.listops]\nsource = "generated"\nmax_len = 64\n[defaults.bit_xor]\nn_bits = 3\n'
    ))
    xor, listops = (c.config for c in cells)
    assert xor.task_options.n_bits == 3 and "listops" not in xor.to_dict()
    assert (listops.task_options.source, listops.task_options.max_len) == ("generated", 64)


def test_identical_configs_are_deduplicated_keeping_the_first():
    s = spec_from_dict(spec('[grid]\ntask = ["listops", "bit_xor"]\nbit_xor.n_bits = [3, 4]\nlr = [1e-3, 0.001]'))
    assert [c.labels for c in s.cells] == [
        {"task": "listops", "bit_xor.n_bits": None, "lr": 1e-3},
        {"task": "bit_xor", "bit_xor.n_bits": 3, "lr": 1e-3},
        {"task": "bit_xor", "bit_xor.n_bits": 4, "lr": 1e-3},
    ]
    assert s.duplicates == 5


# ---- inheritance ------------------------------------------------------------------------------------------------
def test_inheritance_merges_tables_and_replaces_lists(write):
    write('[experiment]\nname = "base"\ndescription = "the base"\n[defaults]\ntask = "bit_xor"\nsteps = 9\n[defaults.bit_xor]\nn_bits = 3\n'
          '[grid]\nlr = [1e-3, 3e-4]\nseed = [0, 1]\n[[when]]\nmatch = { seed = 1 }\nset = { steps = 1 }\n', "base.toml")
    child = write('[experiment]\nname = "child"\nbase = "base.toml"\n[defaults]\nsteps = 5\n[defaults.bit_xor]\ntest_size = 8\n'
                  '[grid]\nseed = [0]\n', "child.toml")
    s = load_spec(child)
    assert (s.name, s.description, [Path(p).name for p in s.sources]) == ("child", "", ["base.toml", "child.toml"])
    assert labels(s.cells) == [{"lr": 1e-3, "seed": 0}, {"lr": 3e-4, "seed": 0}]
    opts = s.cells[0].config.task_options
    assert (s.cells[0].config.steps, opts.n_bits, opts.test_size) == (5, 3, 8)
    assert '"base"' not in s.text.split('"defaults"')[0]  # the child's [experiment], without base


def test_inheritance_chains_through_folders(write, tmp_path):
    (tmp_path / "common").mkdir()
    write('[defaults]\ntask = "bit_xor"\n', "common/root.toml")
    write('[experiment]\nbase = "root.toml"\n[grid]\nseed = [0, 1]\n', "common/mid.toml")
    s = load_spec(write('[experiment]\nname = "leaf"\nbase = "common/mid.toml"\n'))
    assert len(s.cells) == 2 and len(s.sources) == 3


# ---- the example specs ------------------------------------------------------------------------------------------
def test_example_smoke_is_the_issue_spec():
    assert (EXPERIMENTS / "smoke.toml").read_text() == SMOKE
    assert len(load_spec(EXPERIMENTS / "smoke.toml").cells) == 8


def test_example_table2():
    s = load_spec(EXPERIMENTS / "table2.toml")
    tasks = ["bit_memory", "bit_xor", "listops", "mnist", "cifar10", "cifar10_lra", "remote_homology"]
    source, cells = s.cells[0], s.cells[1:]
    assert source.labels == {"source": "bit"} and len(cells) == 4 * 7 * 3
    assert (source.config.task, source.config.init, source.config.train, source.config.save_body) == ("bit_memory", "random", ("all",), True)
    assert {c.config.task for c in cells} == set(tasks) and {c.labels["variant"] for c in cells} == {"fpt", "random", "bit", "vit"}
    for c in cells:
        variant = c.labels["variant"]
        assert c.config.backbone == ("vit-base" if variant == "vit" else "gpt2")
        assert c.config.init == ("random" if variant == "random" else "pretrained")
        assert c.config.weights == (f"trial:{source.hash}" if variant == "bit" else "auto")
        assert c.config.lr == (1e-4 if c.config.task == "remote_homology" else 1e-3)
        assert c.config.train == ("input", "output", "positions", "layernorm")
        if c.config.task in ("cifar10", "cifar10_lra"):
            assert c.config.task_options.augment is True
        if c.config.task in ("listops", "mnist", "remote_homology"):  # faithful specs pin their data
            assert c.config.task_options.source == {"listops": "lra", "mnist": "official", "remote_homology": "tape"}[c.config.task]


def test_example_offline_table2_inherits_the_offline_base():
    s = load_spec(EXPERIMENTS / "offline" / "table2.toml")
    assert [Path(p).relative_to(EXPERIMENTS).as_posix() for p in s.sources] == ["offline/base.toml", "offline/table2.toml"]
    assert {c.config.backbone for c in s.cells} == {"minilm"} and len(s.cells) == 2 * 5 * 3  # fpt, random x 5 offline tasks


# ---- [model] keys and [sources] (Bit-pretrained transfer) -------------------------------------------------
def test_model_options_are_axes_and_match_keys():
    s = spec_from_dict(spec('[defaults]\ntask = "listops"\nbackbone = "gpt2"\n[defaults.listops]\nsource = "generated"\n'
                            '[grid]\ninit = ["pretrained", "random"]\nmodel.depth = [1, 2, 6]\n'
                            '[[exclude]]\n"model.depth" = 6\ninit = "random"\n'))
    assert [(c.labels["init"], c.labels["model.depth"]) for c in s.cells] == [
        ("pretrained", 1), ("pretrained", 2), ("pretrained", 6), ("random", 1), ("random", 2)]
    assert s.cells[0].config.model_options.depth == 1


@pytest.mark.parametrize(
    "body, message",
    [
        ('[defaults]\ntask = "bit_xor"\n[grid]\nmodel.layrs = [3]\n', "unknown model option 'layrs'. Did you mean 'layers'?"),
        ('[defaults]\ntask = "bit_xor"\nbackbone = "gpt2"\n[grid]\nmodel.layers = [3]\n', "'model.layers' is an option of the lstm backbones"),
        ('[defaults]\ntask = "bit_xor"\n[grid]\ntrain = [["output", "atention@-1"]]\n', "grid.train[0][1]: Unknown parameter group 'atention'"),
        ('[defaults]\ntask = "bit_xor"\ninit = "pretrained"\nweights = "source:bitt"\n[sources.bit]\ntask = "bit_memory"\n',
         "defaults.weights: unknown source 'bitt'. Did you mean 'bit'?"),
        ('[defaults]\ntask = "bit_xor"\ninit = "pretrained"\nweights = "source:bit"\n', "declares no [sources.bit] table"),
        ('[defaults]\ntask = "bit_xor"\n[sources.bit]\ntask = "bit_memory"\nsave_body = false\n', "a source exists to save its body"),
    ],
)
def test_model_and_source_mistakes_name_the_key(body, message):
    from fptlab.errors import FptlabError

    with pytest.raises(FptlabError, match=message.replace("[", r"\[").replace("]", r"\]").replace("?", r"\?").replace(".", r"\.")):
        spec_from_dict(spec(body))


BIT = """
[defaults]
backbone = "gpt2-tiny"
steps = 4
[sources.bit]
task = "bit_memory"
init = "random"
train = ["all"]
[variants]
random = { init = "random" }
bit = { init = "pretrained", weights = "source:bit" }
[grid]
task = ["bit_xor", "listops"]
[[when]]
match = { task = "bit_memory" }
set = { steps = 8 }
"""


def test_sources_come_first_and_cells_name_their_hash():
    s = spec_from_dict(spec(BIT))
    source = s.cells[0]
    assert source.labels == {"source": "bit"} and source.config.save_body and source.config.steps == 8  # [[when]] applied
    assert source.config.train == ("all",) and source.config.backbone == "gpt2-tiny"
    bits = [c for c in s.cells if c.labels.get("variant") == "bit"]
    assert [c.config.weights for c in bits] == [f"trial:{source.hash}"] * 2
    assert s.axes == ["variant", "task"] and len(s.cells) == 5
    # A change to the source changes the cells that start from it (their hash names the body).
    other = spec_from_dict(spec(BIT.replace('train = ["all"]', 'train = ["all"]\nlr = 3e-4')))
    assert {c.hash for c in other.cells if c.labels.get("variant") == "bit"}.isdisjoint(c.hash for c in bits)
    assert {c.hash for c in other.cells if c.labels.get("variant") == "random"} == {
        c.hash for c in s.cells if c.labels.get("variant") == "random"}


def test_a_grid_cell_that_is_the_sources_run_is_kept_once_with_its_labels():
    # Table 1's "Full" on Bit Memory at seed 0 is exactly Table 2's Bit source: one trial, not a lost cell.
    text = BIT.replace('random = { init = "random" }', 'full = { init = "random", train = ["all"], save_body = true }').replace(
        'task = ["bit_xor", "listops"]', 'task = ["bit_memory"]')
    s = spec_from_dict(spec(text))
    full = [c for c in s.cells if c.labels.get("variant") == "full"]
    source_hash = next(c.config.weights for c in s.cells if c.labels.get("variant") == "bit").removeprefix("trial:")
    assert [c.hash for c in full] == [source_hash]  # the grid cell is the source's run, under the grid's labels
    assert s.cells[0].hash == source_hash and len(s.cells) == 2  # first: it runs before the cell that starts from it
    assert not any("source" in c.labels for c in s.cells) and s.duplicates == 0


def test_a_worker_refuses_a_config_that_does_not_hash_to_its_trial():
    from fptlab.errors import FptlabError
    from fptlab.sweep.trainable import check_identity

    cfg = config_from_dict({"task": "bit_xor", "lr": 3e-4})
    check_identity(cfg, cfg.hash)
    with pytest.raises(FptlabError, match=rf"trial 0123456789abcdef: the config this worker received hashes to {cfg.hash}"):
        check_identity(cfg, "0123456789abcdef")
