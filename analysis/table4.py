"""Table 4 (Section 3.3, Appendix D.3): test accuracy of a frozen, randomly initialised "standard" LSTM
(768 wide, no residual connections or positions; input, output and layer norms trained) with 12 vs 3
layers. Spec: experiments/table4.toml (no offline counterpart).

Rows map to the spec's `model.layers` label: "12" = 12 (= Table 5's "12-Layer LSTM"), "3" = 3 (= Table
3's LSTM). Columns map to `task`.
"""

from fptlab.report import Column, Row, Table, paper_grid

TABLE = Table(
    key="table4",
    title="Frozen random \"standard\" LSTM, 12 vs 3 layers",
    section="3.3",
    rows=(
        Row("12", {"model.layers": 12}),
        Row("3", {"model.layers": 3}),
    ),
    columns=(
        Column("ListOps", {"task": "listops"}),
        Column("MNIST", {"task": "mnist"}),
        Column("CIFAR-10", {"task": "cifar10"}),
        Column("C10 LRA", {"task": "cifar10_lra"}),
    ),
    paper=paper_grid("""
           | ListOps | MNIST | CIFAR-10 | C10 LRA
        12 | 16.2%   | 11.7% | 10.8%    | 10.4%
        3  | 16.8%   | 70.9% | 34.4%    | 10.4%
    """),
    compare=(("3", "12"),),
    notes=("Rows: the number of layers of a \"standard\" LSTM (768 wide, no residual connections or positions; frozen, "
           "random init; input, output and layer norms trained at lr 3e-4, Appendix C).",),
)
