"""Table 3 (Section 3.3, Appendix D.3): test accuracy of frozen, randomly initialised bodies: a GPT-2
base transformer (Trans.) vs a 3-layer "standard" LSTM vs LSTM* (12 layers, residual connections and
positions). Spec: experiments/table3.toml (no offline counterpart).

Rows map to the spec's `variant` label: "Trans." = trans (Table 2's Random runs, same hashes), "LSTM" =
lstm (= Table 4's "3"), "LSTM*" = lstm_star (= Table 5's "+ Positional Embeddings"). Columns map to
`task`.
"""

from fptlab.report import Table, paper_grid, task_columns, variant_rows

TABLE = Table(
    key="table3",
    title="Frozen random transformer vs frozen random LSTM",
    section="3.3",
    rows=variant_rows(("Trans.", "trans"), ("LSTM", "lstm"), ("LSTM*", "lstm_star")),
    columns=task_columns("Bit Memory", "XOR", "ListOps", "MNIST", "CIFAR-10", "C10 LRA", "Homology"),
    paper=paper_grid("""
               | Bit Memory | XOR   | ListOps | MNIST | CIFAR-10 | C10 LRA | Homology
        Trans. | 75.8%      | 100%  | 34.3%   | 91.7% | 61.7%    | 36.1%   | 9.3%
        LSTM   | 50.9%      | 50.0% | 16.8%   | 70.9% | 34.4%    | 10.4%   | 6.6%
        LSTM*  | 75.0%      | 50.0% | 16.7%   | 92.5% | 43.5%    | 10.6%   | 8.6%
    """),
    compare=(("Trans.", "LSTM"), ("Trans.", "LSTM*")),
    notes=(
        "Every body is frozen and randomly initialised. Trans.: GPT-2 base, Table 2's Random runs (input, output, "
        "positions and layer norms trained; Appendix D.3 omits positions but says \"same as Random in Table 2\"). "
        "LSTM: 3 layers x 768, no residual connections or positions. LSTM*: 12 layers x 768 with residual "
        "connections and learned positions. LSTMs train at lr 3e-4 (Appendix C).",
    ),
)
