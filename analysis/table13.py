"""Table 13 (Section 3.11, "Can training more parameters improve performance?"): the pretrained GPT-2
base with the FPT groups trained plus every block's feed-forward layers, attention layers, or both (all
parameters), with FPT's optimiser and learning rate. Spec: experiments/table13.toml (no offline
counterpart).

Rows = the spec's `variant` axis: "FPT" = fpt (Table 2's FPT runs, same hashes), "+ Feedforward" =
feedforward, "+ Attention" = attention, "+ Both" = both (train = ["all"]). Columns = the `task` axis
under the paper's abbreviations (Memory = bit_memory, XOR = bit_xor, C10 = cifar10, C10 LRA =
cifar10_lra, Homology = remote_homology). A run that diverged (a NaN/inf loss, or an accuracy collapse:
fptlab.report.divergence, the one definition every table uses) marks its cell † as in the paper, and
counts with its accuracy before the divergence."""

from fptlab.report import Table, paper_grid, task_columns, variant_rows

TABLE = Table(
    key="table13",
    title="Additionally finetuning the feed-forward layers, the attention layers, or both",
    section="3.11",
    rows=variant_rows(("FPT", "fpt"), ("+ Feedforward", "feedforward"), ("+ Attention", "attention"), ("+ Both", "both")),
    columns=task_columns("Memory", "XOR", "ListOps", "MNIST", "C10", "C10 LRA", "Homology"),
    paper=paper_grid("""
                      | Memory | XOR  | ListOps | MNIST   | C10     | C10 LRA | Homology
        FPT           | 100%   | 100% | 38.4%   | 98.0%   | 68.2%   | 38.6%   | 12.7%
        + Feedforward | 100%   | 100% | 36.0%   | 98.3%   | 76.6%   | 38.2%   | 13.1%
        + Attention   | 100%   | 100% | 36.8%   | 89.0% † | 47.7% † | 23.0%   | 10.9%
        + Both        | 100%   | 100% | 35.8%   | 93.1% † | 32.9%   | 21.0%   | 10.5%
    """),
    compare=(("FPT", "+ Feedforward"), ("FPT", "+ Attention"), ("FPT", "+ Both")),
    notes=(
        "All rows use FPT's optimiser and learning rate (no per-layer scheme, as in the paper). "
        "+ Both trains every parameter of the 12-block model (depth fixed, unlike the paper's \"Full Transformer\").",
        "†: at least one seed diverged (definition below); such a run counts with its accuracy before the divergence "
        "(the paper: \"number reported before divergence\").",
    ),
)
