"""Table 7 (Section 3.6): train vs test accuracy on CIFAR-10 LRA: FPT (frozen GPT-2 base) underfits
where fully trained transformers overfit. Spec: experiments/table7.toml (Table 2's FPT runs on
cifar10_lra, same hashes; no offline counterpart).

Row "FPT (GPT-2)" maps to the spec's `variant` fpt; "Vanilla Transformer" and "Linformer" are Tay et
al. (2020)'s numbers (literature rows: nothing to run). Columns: "Test Accuracy" = test_accuracy,
"Train Accuracy" = train_accuracy (what every run records beside its test accuracy), "# Layers" =
derived by the post hook from the spec itself (the blocks the selected runs keep: `model.depth`, or
the backbone's full depth when it is 0); it needs no database, so it shows even before anything runs.
"""

from __future__ import annotations

from typing import Any

from fptlab.report import Column, Row, Table, paper_grid
from fptlab.report.build import TableResult

TAY = "Tay et al. (2020)"
LAYERS = "# Layers"


def layers_of(values: dict[str, Any]) -> int:
    """Blocks a run keeps, from its flattened config: its backbone's own rule (`BackboneSpec.depth_of`:
    model.depth, 0 = all; an LSTM's model.layers), from the registry (no torch is imported)."""
    from fptlab.backbones import BACKBONES

    spec = BACKBONES.get(str(values["backbone"]))
    options = spec.Options(**{k.removeprefix("model."): v for k, v in values.items() if k.startswith("model.")})
    return spec.depth_of(options)


def fill_layers(result: TableResult, column: str = LAYERS) -> None:
    """Fill derived column `column` of every row that selects runs with the blocks those runs keep
    ("12"; "12/24" if a row's runs differ; "—" when the row selects no cell of the spec)."""
    table = result.table
    for row in table.rows:
        cell = result.cells[(row.label, column)]
        if cell.literature or row.derived:
            continue
        cell.unit = "layers"
        chosen = result.spec.select({**table.where, **row.where}) if result.spec is not None else []
        counts = sorted({layers_of(c.values) for c in chosen})
        # Text only, no Stat: a count read from the config matches the paper's by construction, and a
        # "Δ +0" beside it would read as a measurement.
        cell.text = "/".join(str(n) for n in counts) if counts else "—"


TABLE = Table(
    key="table7",
    title="Train vs test accuracy on CIFAR-10 LRA",
    section="3.6",
    where={"task": "cifar10_lra"},
    rows=(
        Row("FPT (GPT-2)", {"variant": "fpt"}),
        Row("Vanilla Transformer", literature=TAY),
        Row("Linformer", literature=TAY),
    ),
    columns=(
        Column(LAYERS, derived=True),
        Column("Test Accuracy", value="test_accuracy"),
        Column("Train Accuracy", value="train_accuracy"),
    ),
    paper=paper_grid("""
                            | # Layers | Test Accuracy | Train Accuracy
        FPT (GPT-2)         | 12       | 38.6%         | 38.5%
        Vanilla Transformer | 3        | 42%           | 70%
        Linformer           | 3        | 39%           | 97%
    """),
    post=fill_layers,
    # No `compare`: FPT is the only row we run; the paper's contrast is train vs test (columns), read
    # off the FPT row.
    notes=(
        "# Layers: blocks our FPT runs keep, read from the spec (not measured). Vanilla Transformer and Linformer: "
        "Tay et al. (2020), 3 layers, fully trained; nothing to run.",
        "Train Accuracy: accuracy on the training batches of the last evaluation interval (the paper does not say "
        "how it measured train accuracy).",
    ),
)
