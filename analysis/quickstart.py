"""The quickstart (experiments/quickstart.toml): MiniLM with the paper's groups trained, language-
pretrained vs random init, on five offline tasks over three seeds. Not a paper table: the laptop-sized
check of the paper's central claim (Sections 3.1, 3.2 and 3.4) that `make quickstart` prints."""

from fptlab.report import Column, Row, Table

TABLE = Table(
    key="quickstart",
    title="MiniLM frozen, pretrained vs random init (offline data, CPU budget)",
    section="3.2, 3.4",
    rows=(
        Row("Pretrained", {"init": "pretrained"}),
        Row("Random", {"init": "random"}),
        Row("Pretrained: steps", {"init": "pretrained"}, value="steps_to_converge"),
        Row("Random: steps", {"init": "random"}, value="steps_to_converge"),
        Row("Random: steps to Pretrained's level", {"init": "random"}, value="steps_to_level", reference="Pretrained: steps"),
    ),
    columns=(
        Column("Bit XOR", {"task": "bit_xor"}),
        Column("Bit Memory", {"task": "bit_memory"}),
        Column("ListOps", {"task": "listops"}),
        Column("MNIST", {"task": "mnist"}),
        Column("Peptides", {"task": "peptides"}),
    ),
    compare=(("Pretrained", "Random"),),
    curves=True,
    notes=(
        "Rows 1-2: test accuracy at the step of best validation accuracy. Rows 3-4: steps to converge, each row to "
        "its own plateau; row 5: Random's steps until it reaches Pretrained's converged level (definitions below). "
        "Reduced tasks (short sequences, few hundred steps): compare the two rows, not the paper's numbers.",
    ),
)
