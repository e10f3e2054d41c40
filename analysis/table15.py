"""Table 15 (Section 3.12, "Which parameters of the model are important to finetune?"): a frozen
pretrained GPT-2 base, successively adding trained parameter groups. Spec: experiments/table15.toml
(Table 19 is the same grid, same hashes); offline counterpart experiments/offline/table15.toml (MiniLM,
five offline tasks, peptides in the Homology row).

Rows = the spec's `task` axis under the paper's labels (Bit Memory = bit_memory, Bit XOR = bit_xor,
ListOps, MNIST, CIFAR-10 = cifar10, CIFAR-10 LRA = cifar10_lra, Homology = remote_homology or, offline,
peptides). Columns = the `variant` axis, each adding a group to the one before:
  "output only" = output, "+ layernorm" = plus_layernorm, "+ input" = plus_input,
  "+ positions" = plus_positions (output, layer norms, input, positions: FPT itself, Table 2's FPT runs)."""

from fptlab.report import AnyOf, Column, Row, Table, paper_grid

TABLE = Table(
    key="table15",
    title="Successively adding finetuned parameter groups",
    section="3.12",
    rows=(
        Row("Bit Memory", {"task": "bit_memory"}),
        Row("Bit XOR", {"task": "bit_xor"}),
        Row("ListOps", {"task": "listops"}),
        Row("MNIST", {"task": "mnist"}),
        Row("CIFAR-10", {"task": "cifar10"}),
        Row("CIFAR-10 LRA", {"task": "cifar10_lra"}),
        Row("Homology", {"task": AnyOf("remote_homology", "peptides")}),  # peptides: the offline stand-in
    ),
    columns=(
        Column("output only", {"variant": "output"}),
        Column("+ layernorm", {"variant": "plus_layernorm"}),
        Column("+ input", {"variant": "plus_input"}),
        Column("+ positions", {"variant": "plus_positions"}),
    ),
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
    # No `compare`: the paper compares columns (each group added), and the rows must stay the paper's tasks.
    notes=(
        "Columns are cumulative: each trains the groups of the column before plus its own; + positions is FPT "
        "(Table 2's FPT runs). The input layer is orthogonally initialised (embeddings: Gaussian) whether it trains or not.",
        "The paper prints these numbers to the whole percent; Table 19 is the same grid.",
    ),
)
