"""Table 20 (Section 3.12, "Parameter ablations for random models", page 16): Table 18 with the frozen
GPT-2 base randomly initialised: the output layer and one other group trained. Spec:
experiments/table20.toml (table18.toml with init = "random"); offline counterpart
experiments/offline/table20.toml (MiniLM, five tasks, peptides in the Homology row).

Rows are the spec's `task` axis and columns its `variant` axis, as in Table 18: "output only" = output,
"output + input" = output_input, "output + positions" = output_positions, "output + layernorm" =
output_layernorm.

No `compare`: the paper compares the columns (it bolds each task's best), and the rows are tasks.
"""

from fptlab.report import Table, paper_grid

from .table18 import COLUMNS, TASK_ROWS

TABLE = Table(
    key="table20",
    title="Finetuning the output layer and one group each, random frozen transformer",
    section="3.12",
    rows=TASK_ROWS,
    columns=COLUMNS,
    paper=paper_grid("""
                     | output only | output + input | output + positions | output + layernorm
        Bit Memory   | 75%         | 75%            | 75%                | 75%
        Bit XOR      | 50%         | 51%            | 59%                | 100%
        ListOps      | 17%         | 17%            | 18%                | 35%
        MNIST        | 25%         | 28%            | 34%                | 83%
        CIFAR-10     | 20%         | 24%            | 21%                | 46%
        CIFAR-10 LRA | 11%         | 16%            | 12%                | 34%
        Homology     | 2%          | 2%             | 6%                 | 9%
    """),
    notes=(
        "Each column trains the output layer plus the named group of a randomly initialised body; everything else "
        "stays frozen. The paper bolds output + layernorm on every task but Bit Memory (all four 75%).",
        "output only and output + layernorm are the same trials as Table 21's output only and + layernorm.",
    ),
)
