"""Table 18 (Section 3.12, "Parameter ablations for pretrained models", page 16): test accuracy of a
frozen pretrained GPT-2 base when only the output layer and one other group are trained. Spec:
experiments/table18.toml; offline counterpart experiments/offline/table18.toml (MiniLM, five tasks,
peptides in the Homology row).

Rows are the spec's `task` axis (TASK_ROWS, shared with Tables 19-21). Columns are its `variant` axis:
"output only" = output, "output + input" = output_input, "output + positions" = output_positions,
"output + layernorm" = output_layernorm.

No `compare`: the paper compares the columns (it bolds each task's best), and the rows are tasks.
"""

from fptlab.report import AnyOf, Column, Row, Table, paper_grid

TASK_ROWS = (  # the paper's row labels for its seven tasks (Tables 18-21)
    Row("Bit Memory", {"task": "bit_memory"}),
    Row("Bit XOR", {"task": "bit_xor"}),
    Row("ListOps", {"task": "listops"}),
    Row("MNIST", {"task": "mnist"}),
    Row("CIFAR-10", {"task": "cifar10"}),
    Row("CIFAR-10 LRA", {"task": "cifar10_lra"}),
    Row("Homology", {"task": AnyOf("remote_homology", "peptides")}),  # peptides: the offline stand-in
)

COLUMNS = (  # shared with Table 20 (the same grid, random init)
    Column("output only", {"variant": "output"}),
    Column("output + input", {"variant": "output_input"}),
    Column("output + positions", {"variant": "output_positions"}),
    Column("output + layernorm", {"variant": "output_layernorm"}),
)

TABLE = Table(
    key="table18",
    title="Finetuning the output layer and one group each, pretrained frozen transformer",
    section="3.12",
    rows=TASK_ROWS,
    columns=COLUMNS,
    paper=paper_grid("""
                     | output only | output + input | output + positions | output + layernorm
        Bit Memory   | 76%         | 98%            | 93%                | 94%
        Bit XOR      | 56%         | 72%            | 84%                | 98%
        ListOps      | 15%         | 17%            | 35%                | 36%
        MNIST        | 23%         | 85%            | 93%                | 96%
        CIFAR-10     | 25%         | 53%            | 38%                | 54%
        CIFAR-10 LRA | 17%         | 22%            | 30%                | 39%
        Homology     | 2%          | 8%             | 8%                 | 9%
    """),
    notes=(
        "Each column trains the output layer plus the named group; everything else stays frozen. The paper bolds "
        "each task's best column (output + input on Bit Memory, output + layernorm elsewhere).",
        "output only and output + layernorm are the same trials as Table 19's output only and + layernorm.",
    ),
)
