"""Table 17 (Section 3.14, "How well do the trends hold across other transformer models?"): test
accuracy of frozen pretrained base-size transformers other than GPT-2, each with the FPT groups trained
(input, output, positions, layer norms). Spec: experiments/table17.toml (no offline counterpart).

Rows are the spec's `task` axis: "ListOps" = listops, "CIFAR-10" = cifar10. Columns are its `variant`
axis: "GPT-2 (FPT Default)" = gpt2 (the same trials as Table 2's FPT cells), "BERT" = bert
(bert-base), "T5" = t5 (t5-base, encoder only), "Longformer" = longformer (longformer-base).

No `compare`: the paper compares architectures, i.e. columns, and the rows are tasks.
"""

from fptlab.report import Column, Row, Table, paper_grid

TABLE = Table(
    key="table17",
    title="Test accuracy for frozen pretrained transformer variants (base model sizes)",
    section="3.14",
    rows=(
        Row("ListOps", {"task": "listops"}),
        Row("CIFAR-10", {"task": "cifar10"}),
    ),
    columns=(
        Column("GPT-2 (FPT Default)", {"variant": "gpt2"}),
        Column("BERT", {"variant": "bert"}),
        Column("T5", {"variant": "t5"}),
        Column("Longformer", {"variant": "longformer"}),
    ),
    paper=paper_grid("""
                 | GPT-2 (FPT Default) | BERT  | T5    | Longformer
        ListOps  | 38.4%               | 38.3% | 15.4% | 17.0%
        CIFAR-10 | 68.2%               | 68.8% | 64.7% | 66.8%
    """),
    notes=(
        "Every body is pretrained, frozen, base size; each trains its own FPT groups (input, output, positions, "
        "layer norms). T5 is its encoder only (Section 3.14). GPT-2 (FPT Default) = Table 2's FPT trials.",
    ),
)
