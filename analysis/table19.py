"""Table 19 (Section 3.12, page 16; the same numbers as Table 15): test accuracy of a frozen pretrained
GPT-2 base as trained groups are added one after another. Spec: experiments/table19.toml, which
inherits table15.toml (the same trials); offline counterpart experiments/offline/table19.toml (MiniLM,
five tasks, peptides in the Homology row).

Rows are the spec's `task` axis (Table 18's TASK_ROWS). Columns are its `variant` axis: "output only" =
output, "+ layernorm" = plus_layernorm (output, layer norms), "+ input" = plus_input (also the input
layer), "+ positions" = plus_positions (also the positions: FPT itself, Table 2's FPT trials).

No `compare`: the paper compares the columns, and the rows are tasks.
"""

from fptlab.report import Column, Table, paper_grid

from .table18 import TASK_ROWS

COLUMNS = (  # shared with Table 21 (the same grid, random init)
    Column("output only", {"variant": "output"}),
    Column("+ layernorm", {"variant": "plus_layernorm"}),
    Column("+ input", {"variant": "plus_input"}),
    Column("+ positions", {"variant": "plus_positions"}),
)

TABLE = Table(
    key="table19",
    title="Successively adding finetuned parameters, pretrained frozen transformer",
    section="3.12",
    rows=TASK_ROWS,
    columns=COLUMNS,
    paper=paper_grid("""
                     | output only | + layernorm | + input | + positions
        Bit Memory   | 76%         | 94%         | 100%    | 100%
        Bit XOR      | 56%         | 98%         | 98%     | 100%
        ListOps      | 15%         | 36%         | 36%     | 38%
        MNIST        | 23%         | 96%         | 98%     | 98%
        CIFAR-10     | 25%         | 54%         | 60%     | 68%
        CIFAR-10 LRA | 17%         | 39%         | 39%     | 39%
        Homology     | 2%          | 9%          | 10%     | 13%
    """),
    notes=(
        "Each column trains the groups of the column before it plus the named one. + positions is FPT "
        "(Table 2's FPT trials); this table's trials are Table 15's.",
    ),
)
