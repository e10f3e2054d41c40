"""Malformed sweep specs: each raises ConfigError naming the file, the key's full path, the expected
form or allowed values, and a did-you-mean where one applies."""

from __future__ import annotations

import pytest

from fptlab.errors import ConfigError
from fptlab.sweep import load_spec

HEAD = '[experiment]\nname = "t"\n'
TASK = HEAD + '[defaults]\ntask = "bit_xor"\n'
VARIANTS = TASK + '[variants]\nfpt = { init = "pretrained" }\nrandom = { init = "random" }\n'

CASES = {
    # [experiment]
    "missing experiment": ('[defaults]\ntask = "bit_xor"\n', ["experiment: missing [experiment] table", 'name = "smoke"']),
    "missing name": ('[experiment]\ndescription = "x"\n', ["experiment.name: missing", 'name = "smoke"']),
    "bad name": ('[experiment]\nname = "my smoke!"\n', ["experiment.name: must be letters, digits", "[A-Za-z0-9_.-]+", "'my smoke!'"]),
    "unknown experiment key": ('[experiment]\nname = "t"\nnmae = "x"\n', ["experiment.nmae: unknown experiment key 'nmae'. Did you mean 'name'?"]),
    "description not a string": ('[experiment]\nname = "t"\ndescription = 3\n', ["experiment.description: must be a string"]),
    # top level
    "unknown top-level table": (TASK + "[gird]\nlr = [1e-3]\n", ["unknown top-level key 'gird'. Did you mean 'grid'?", "Valid: defaults, exclude"]),
    "unknown top-level key": ("seed = [0, 1]\n" + TASK, ["unknown top-level key 'seed'. Did you mean 'seeds'?"]),
    "invalid toml": (HEAD + "[grid]\nlr = = 3\n", ["not valid TOML", "line 4"]),
    "defaults not a table": ("defaults = 3\n" + HEAD, ["defaults: must be a table", "got 3"]),
    "zip not an array": (TASK + "[zip]\nlr = [1e-3]\n", ["zip: must be an array of tables", "[[zip]]"]),
    # seeds
    "seeds not ints": ("seeds = [0, 1.5]\n" + TASK, ["seeds: must be a non-empty list of integers >= 0", "seeds = [0, 1, 2]", "[0, 1.5]"]),
    "seeds not a list": ("seeds = 3\n" + TASK, ["seeds: must be a non-empty list of integers"]),
    "seeds negative": ("seeds = [-1]\n" + TASK, ["seeds: must be a non-empty list of integers >= 0"]),
    # grid axes
    "axis not a list": (TASK + "[grid]\nlr = 1e-3\n", ["grid.lr: an axis must be a list of values", "lr = [1, 2]", "got 0.001"]),
    "empty axis": (TASK + "[grid]\nlr = []\n", ["grid.lr: an axis needs at least one value"]),
    "list-typed axis of strings": (TASK + '[grid]\ntrain = ["input", "output"]\n', ["grid.train[0]: each value of this axis is itself a list", '[["input", "output"], ["output"]]']),
    "task section axis": (TASK + "[grid]\nbit_xor = [3, 4]\n", ["grid.bit_xor: 'bit_xor' is a task section", "grid.bit_xor.n_bits"]),
    # unknown run-config keys, everywhere a key can be written
    "unknown key in defaults": (TASK + "lrr = 1e-3\n", ["defaults.lrr: unknown run-config key 'lrr'. Did you mean 'lr'?", "Valid:", "weight_decay"]),
    "unknown key in grid": (TASK + "[grid]\nstpes = [1, 2]\n", ["grid.stpes: unknown run-config key 'stpes'. Did you mean 'steps'?"]),
    "unknown key in variants": (TASK + '[variants]\nfpt = { innit = "random" }\n', ["variants.fpt.innit: unknown run-config key 'innit'. Did you mean 'init'?"]),
    "unknown key in when.set": (TASK + '[[when]]\nmatch = { task = "bit_xor" }\nset = { lrr = 1e-4 }\n', ["when[0].set.lrr: unknown run-config key 'lrr'. Did you mean 'lr'?"]),
    "unknown key in zip": (TASK + "[[zip]]\nlr = [1e-3]\nstep = [1]\n", ["zip[0].step: unknown run-config key 'step'. Did you mean 'steps'?"]),
    "unknown task section": (TASK + "[defaults.bit_xr]\nn_bits = 3\n", ["defaults.bit_xr: unknown run-config key 'bit_xr'. Did you mean 'bit_xor'?"]),
    "unknown task option": (TASK + "[defaults.bit_xor]\nnbits = 3\n", ["defaults.bit_xor.nbits: unknown bit_xor option 'nbits'. Did you mean 'n_bits'?", "test_size"]),
    # values
    "wrong type in axis": (TASK + '[grid]\nlr = [1e-3, "fast"]\n', ["'grid.lr[1]' must be a number, got 'fast'"]),
    "wrong type in defaults": (TASK + "steps = 1.5\n", ["'defaults.steps' must be an integer, got 1.5"]),
    "wrong type in task option axis": (TASK + '[grid]\nbit_xor.n_bits = [3, "x"]\n', ["'grid.bit_xor.n_bits[1]' must be an integer, got 'x'"]),
    "bad literal": (TASK + '[grid]\ninit = ["pretrained", "pretrianed"]\n', ["grid.init[1]: Unknown init 'pretrianed'. Did you mean 'pretrained'? Available: pretrained, random, stats."]),
    "bad literal in variant": (TASK + '[variants]\na = { optimizer = "adan" }\n', ["'variants.a.optimizer' must be one of 'adam', 'adamw', 'sgd'", "Did you mean 'adam'?"]),
    "out of range": (TASK + "[grid]\nlr = [1e-3, -1.0]\n", ["grid.lr[1]: 'lr' must be > 0, got -1.0"]),
    "unknown task": (HEAD + '[defaults]\ntask = "lstops"\n', ["defaults.task: Unknown task 'lstops'. Did you mean 'listops'?", "Available:", "mnist"]),
    "unknown task in axis": (HEAD + '[grid]\ntask = ["bit_xor", "mnsit"]\n', ["grid.task[1]: Unknown task 'mnsit'. Did you mean 'mnist'?"]),
    "unknown backbone": (TASK + '[grid]\nbackbone = ["gpt2", "gtp2"]\n', ["grid.backbone[1]: Unknown backbone 'gtp2'. Did you mean 'gpt2'?", "Available:", "minilm"]),
    "unknown group": (TASK + 'train = ["input", "outptu"]\n', ["defaults.train[1]: Unknown parameter group 'outptu'. Did you mean 'output'?"]),
    # zip and axis conflicts
    "zip unequal lengths": (HEAD + '[[zip]]\ntask = ["bit_xor", "bit_memory"]\nsteps = [1, 2, 3]\n', ["zip[0]: zipped lists must have equal lengths (zip[0].task has 2, zip[0].steps has 3)"]),
    "empty zip": (TASK + "[[zip]]\n", ["zip[0]: is empty"]),
    "grid and zip share a key": (TASK + "[grid]\nlr = [1e-3]\n[[zip]]\nlr = [1e-4]\nsteps = [1]\n", ["zip[0].lr: key 'lr' is already an axis at grid.lr"]),
    "two zips share a key": (TASK + "[[zip]]\nlr = [1e-3]\n[[zip]]\nlr = [1e-4]\n", ["zip[1].lr: key 'lr' is already an axis at zip[0].lr"]),
    "grid.seed and seeds": ("seeds = [0, 1]\n" + TASK + "[grid]\nseed = [0]\n", ["seeds: key 'seed' is already an axis at grid.seed", "`seeds` is the axis `seed`"]),
    "variant sets an axis key": (VARIANTS + '[grid]\ninit = ["random"]\n', ["variants.fpt.init: 'init' is set by this variant and is also an axis at grid.init"]),
    # variants
    "unknown variant": (VARIANTS + '[grid]\nvariant = ["fpt", "randm"]\n', ["grid.variant[1]: unknown variant 'randm'. Did you mean 'random'?", "Valid: fpt, random"]),
    "grid.variant without variants": (TASK + '[grid]\nvariant = ["fpt"]\n', ["grid.variant: names variants, but the spec declares no [variants] table"]),
    "variant not a list": (VARIANTS + '[grid]\nvariant = "fpt"\n', ["grid.variant: must be a list of variant names"]),
    "empty variants": (TASK + "[variants]\n", ["variants: is empty"]),
    "variant not a table": (TASK + "[variants]\nfpt = 3\n", ["variants.fpt: must be a table"]),
    "bad variant name": (TASK + '[variants]\n"a b" = {}\n', ["variants.a b: a variant name must be letters, digits"]),
    "exclude unknown variant": (VARIANTS + '[[exclude]]\nvariant = "fp"\n', ["exclude[0].variant: unknown variant 'fp'. Did you mean 'fpt'?"]),
    # when
    "when without match": (TASK + "[[when]]\nset = { lr = 1e-4 }\n", ["when[0].match: missing", "match = { task"]),
    "when without set": (TASK + '[[when]]\nmatch = { task = "bit_xor" }\n', ["when[0].set: missing"]),
    "when unknown key": (TASK + '[[when]]\nmatch = { task = "bit_xor" }\nset = { lr = 1e-4 }\nsett = {}\n', ["when[0].sett: unknown when key 'sett'. Did you mean 'set'?"]),
    "when match unknown key": (TASK + '[[when]]\nmatch = { tsk = "bit_xor" }\nset = { lr = 1e-4 }\n', ["when[0].match.tsk: unknown run-config key 'tsk'. Did you mean 'task'?"]),
    "when match bad value": (TASK + '[[when]]\nmatch = { task = "bit_xr" }\nset = { lr = 1e-4 }\n', ["when[0].match.task: Unknown task 'bit_xr'. Did you mean 'bit_xor'?"]),
    "when empty match": (TASK + "[[when]]\nmatch = {}\nset = { lr = 1e-4 }\n", ["when[0].match: is empty"]),
    "when set wrong type": (TASK + '[[when]]\nmatch = { task = "bit_xor" }\nset = { lr = "fast" }\n', ["'when[0].set.lr' must be a number, got 'fast'"]),
    "when variant without variants": (TASK + '[[when]]\nmatch = { variant = "fpt" }\nset = { lr = 1e-4 }\n', ["when[0].match.variant: names a variant, but the spec declares no [variants] table"]),
    # exclude
    "exclude unknown key": (TASK + '[[exclude]]\ninti = "random"\n', ["exclude[0].inti: unknown run-config key 'inti'. Did you mean 'init'?"]),
    "exclude bad value": (TASK + '[[exclude]]\ninit = ["random", "pretrianed"]\n', ["exclude[0].init[1]: Unknown init 'pretrianed'. Did you mean 'pretrained'?"]),
    "exclude removes everything": (TASK + '[grid]\ninit = ["pretrained", "random"]\n[[exclude]]\ntask = "bit_xor"\n', ["exclude: the exclusions remove all 2 cells"]),
    # cells
    "no task": (HEAD + "[grid]\nlr = [1e-3]\n", ["cell [lr=0.001]: no task", "defaults.task"]),
    "cell-level option conflict": (HEAD + '[defaults]\ntask = "bit_memory"\n[grid]\nbit_memory.bits_per_token = [50, 7]\n', ["cell [bit_memory.bits_per_token=7]", "multiple of bits_per_token"]),
}


@pytest.mark.parametrize("text, fragments", list(CASES.values()), ids=list(CASES))
def test_malformed_spec_names_file_key_and_fix(write, text, fragments):
    path = write(text)
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_missing_spec_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml: spec file not found"):
        load_spec(tmp_path / "nope.toml")


def test_missing_base_file(write):
    path = write(HEAD + 'base = "nope.toml"\n')
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert str(info.value).startswith(f"{path}: experiment.base: base spec 'nope.toml' not found")
    assert "relative to this file" in str(info.value)


def test_inheritance_cycle(write):
    write('[experiment]\nbase = "b.toml"\n', "a.toml")
    write('[experiment]\nbase = "a.toml"\n', "b.toml")
    top = write(HEAD + 'base = "a.toml"\n', "top.toml")
    with pytest.raises(ConfigError) as info:
        load_spec(top)
    message = str(info.value)
    assert "experiment.base: inheritance cycle:" in message and message.startswith(str(top.parent / "b.toml"))
    assert message.count("a.toml") == 2


def test_self_inheritance_is_a_cycle(write):
    path = write(HEAD + 'base = "spec.toml"\n')
    with pytest.raises(ConfigError, match="inheritance cycle"):
        load_spec(path)


def test_error_in_a_base_names_the_base_file(write):
    base = write('[defaults]\ntask = "bit_xor"\nlrr = 1\n', "base.toml")
    with pytest.raises(ConfigError) as info:
        load_spec(write(HEAD + 'base = "base.toml"\n'))
    assert str(info.value).startswith(f"{base}: defaults.lrr: unknown run-config key 'lrr'")


def test_conflict_made_by_merging_names_the_top_file(write):
    write('seeds = [0, 1]\n[defaults]\ntask = "bit_xor"\n', "base.toml")
    top = write(HEAD + 'base = "base.toml"\n[grid]\nseed = [3]\n')
    with pytest.raises(ConfigError, match=r"spec\.toml: seeds: key 'seed' is already an axis at grid\.seed"):
        load_spec(top)


def test_seeds_written_inside_a_table_gets_a_hint(write):
    with pytest.raises(ConfigError, match=r"grid\.seeds: unknown run-config key 'seeds'\. Did you mean 'seed'\?.*write it above the first \[table\]"):
        load_spec(write(TASK + "[grid]\nlr = [1e-3]\nseeds = [0, 1]\n"))
