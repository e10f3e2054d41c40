"""Table 10 (Section 3.9, "Can we train a transformer by only finetuning the output layer?"): only the
output layer of the pretrained GPT-2 trained, on read-out features computed once (a linear classifier),
against FPT. Spec: experiments/table10.toml (no offline counterpart).

Rows = the spec's `task` axis: "ListOps" = listops, "CIFAR-10 LRA" = cifar10_lra. Columns:
  "Speedup"          - derived (no trials of its own): per task, mean seconds per training step of the
                       `fpt` runs ÷ mean seconds per step of the `output_only` runs (value kind
                       seconds_per_step, which leaves out the one pass computing the cached features:
                       the paper's "wall clock time per epoch (after the first)"). Filled by `_speedup`.
  "Output Only"      - variant output_only (train = ["output"], cache_features = true, dropout 0).
  "FPT"              - variant fpt (Table 2's FPT runs, same hashes).
  "Full Transformer" - quoted by the paper from Tay et al. (2020): nothing to run.
The paper prints one range, "500 – 2000×", for both tasks; its low end (500) is the number ours is
compared with."""

from fptlab.report import Column, Row, Table, paper_grid
from fptlab.report.build import TableResult, set_ratio, values_for

SPEEDUP = "Speedup"


def _speedup(result: TableResult) -> None:
    """Speedup per task = FPT seconds per step ÷ Output Only seconds per step (ratio of the seed means)."""
    table = result.table
    for row in table.rows:
        where = {**table.where, **row.where}
        fpt = values_for(result, {**where, "variant": "fpt"}, "seconds_per_step")
        cached = values_for(result, {**where, "variant": "output_only"}, "seconds_per_step")
        set_ratio(result.cell(row.label, SPEEDUP), fpt, cached)  # "—" until both have a finished run


TABLE = Table(
    key="table10",
    title="Training only the output layer on cached features vs FPT",
    section="3.9",
    rows=(
        Row("ListOps", {"task": "listops"}),
        Row("CIFAR-10 LRA", {"task": "cifar10_lra"}),
    ),
    columns=(
        Column(SPEEDUP, derived=True),
        Column("Output Only", {"variant": "output_only"}),
        Column("FPT", {"variant": "fpt"}),
        Column("Full Transformer", literature="Tay et al. (2020)"),
    ),
    paper=paper_grid("""
                     | Speedup     | Output Only | FPT   | Full Transformer
        ListOps      | 500 – 2000× | 32.8%       | 38.4% | 38%
        CIFAR-10 LRA | 500 – 2000× | 24.7%       | 38.6% | 42%
    """),
    # No `compare`: the paper compares columns (Output Only vs FPT), and the rows must stay the paper's tasks.
    post=_speedup,
    notes=(
        "Speedup = FPT seconds per training step ÷ Output Only seconds per training step (means over seeds), "
        "leaving out the one pass that computes the cached features: the paper's wall clock time per epoch after "
        "the first (same batch size, so per step = per epoch). Timings include evaluations and depend on the "
        "devices used (see provenance). Compared with the low end of the paper's 500 – 2000×.",
        "Output Only: random fixed input layer, frozen pretrained GPT-2, no dropout; CIFAR-10 LRA without "
        "augmentation (cached features need the same example every epoch), unlike FPT.",
        "Full Transformer: Tay et al. (2020)'s numbers, quoted by the paper.",
    ),
)
