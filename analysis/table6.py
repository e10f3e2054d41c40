"""Table 6 (Section 3.4, Appendix D.4): gradient steps until convergence, pretrained (FPT) vs randomly
initialised (Random) GPT-2 base, frozen, with the same batch size and learning rate. Spec:
experiments/table6.toml, which keeps Table 2's fpt and random variants (the very same runs; nothing new
trains); offline counterpart experiments/offline/table6.toml (MiniLM; peptides in the Homology column).

Rows "FPT" / "Random" map to the spec's `variant` label (fpt / random), valued by steps to converge read
off each run's test-accuracy curve (fptlab.report.convergence). "Speedup" is derived: Random steps ÷
FPT steps, column by column. Columns map to `task`.
"""

from fptlab.report import AnyOf, Column, Row, Table, paper_grid
from fptlab.report.build import TableResult, ratio_row


def speedup(result: TableResult) -> None:
    """Speedup = mean Random steps / mean FPT steps; "> Nx" when a Random seed never converged, "—"
    when an FPT seed never did (no ratio can be read then)."""
    ratio_row(result, "Speedup", "Random", "FPT")


TABLE = Table(
    key="table6",
    title="Gradient steps to converge, pretrained vs random init",
    section="3.4",
    value="steps_to_converge",
    rows=(
        Row("FPT", {"variant": "fpt"}),
        Row("Random", {"variant": "random"}),
        Row("Speedup", derived=True),
    ),
    columns=(
        Column("Memory", {"task": "bit_memory"}),
        Column("XOR", {"task": "bit_xor"}),
        Column("ListOps", {"task": "listops"}),
        Column("MNIST", {"task": "mnist"}),
        Column("C10", {"task": "cifar10"}),
        Column("C10 LRA", {"task": "cifar10_lra"}),
        Column("Homology", {"task": AnyOf("remote_homology", "peptides")}),  # peptides: the offline stand-in
    ),
    paper=paper_grid("""
                | Memory   | XOR      | ListOps  | MNIST    | C10      | C10 LRA  | Homology
        FPT     | 1 × 10^4 | 5 × 10^2 | 2 × 10^3 | 5 × 10^3 | 4 × 10^5 | 3 × 10^5 | 1 × 10^5
        Random  | 4 × 10^4 | 2 × 10^4 | 6 × 10^3 | 2 × 10^4 | 4 × 10^5 | 6 × 10^5 | 1 × 10^5
        Speedup | 4x       | 40x      | 3x       | 4x       | 1x       | 2x       | 1x
    """),
    compare=(("FPT", "Random"),),
    post=speedup,
    curves=True,
    notes=(
        "FPT and Random are Table 2's runs (same config hashes). Speedup = Random steps ÷ FPT steps (means over "
        "seeds); '> Nx' when some Random seed never converged (a lower bound), '—' when some FPT seed never did.",
    ),
)
