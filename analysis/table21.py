"""Table 21 (Section 3.12, page 16): Table 19 with the frozen GPT-2 base randomly initialised: trained
groups added one after another. Spec: experiments/table21.toml (table19.toml, so table15.toml, with
init = "random"); offline counterpart experiments/offline/table21.toml (MiniLM, five tasks, peptides in
the Homology row).

Rows are the spec's `task` axis and columns its `variant` axis, as in Table 19: "output only" = output,
"+ layernorm" = plus_layernorm, "+ input" = plus_input, "+ positions" = plus_positions (the random
GPT-2 with the FPT groups: Table 2's Random trials).

No `compare`: the paper compares the columns, and the rows are tasks.
"""

from fptlab.report import Table, paper_grid

from .table18 import TASK_ROWS
from .table19 import COLUMNS

TABLE = Table(
    key="table21",
    title="Successively adding finetuned parameters, random frozen transformer",
    section="3.12",
    rows=TASK_ROWS,
    columns=COLUMNS,
    paper=paper_grid("""
                     | output only | + layernorm | + input | + positions
        Bit Memory   | 75%         | 75%         | 75%     | 76%
        Bit XOR      | 50%         | 100%        | 100%    | 100%
        ListOps      | 17%         | 35%         | 36%     | 37%
        MNIST        | 25%         | 83%         | 92%     | 92%
        CIFAR-10     | 20%         | 46%         | 56%     | 62%
        CIFAR-10 LRA | 11%         | 34%         | 36%     | 36%
        Homology     | 2%          | 9%          | 9%      | 9%
    """),
    notes=(
        "Each column trains the groups of the column before it plus the named one, on a randomly initialised body. "
        "+ positions is Table 2's Random row (the same trials): the paper prints 37% for its ListOps here but 34.3% "
        "in Table 2, from one unseeded run each.",
    ),
)
