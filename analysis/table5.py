"""Table 5 (Section 3.3, Appendix D.3): a frozen, randomly initialised 12-layer "standard" LSTM, then
with residual connections, then with positional embeddings too, vs the frozen random GPT-2. Spec:
experiments/table5.toml (no offline counterpart).

Rows map to the spec's `variant` label: "12-Layer LSTM" = lstm12 (= Table 4's "12"), "+ Residual
Connections" = residual, "+ Positional Embeddings" = positions (= Table 3's LSTM*), "Random
Transformer" = random (= Table 2's Random). Columns map to `task`.
"""

from fptlab.report import Table, paper_grid, task_columns, variant_rows

TABLE = Table(
    key="table5",
    title="12-layer frozen random LSTM with the transformer's residual connections and positions",
    section="3.3",
    rows=variant_rows(("12-Layer LSTM", "lstm12"), ("+ Residual Connections", "residual"), ("+ Positional Embeddings", "positions"), ("Random Transformer", "random")),
    columns=task_columns("ListOps", "MNIST", "CIFAR-10", "C10 LRA"),
    paper=paper_grid("""
                                | ListOps | MNIST | CIFAR-10 | C10 LRA
        12-Layer LSTM           | 16.2%   | 11.7% | 10.8%    | 10.4%
        + Residual Connections  | 16.8%   | 70.9% | 34.4%    | 10.4%
        + Positional Embeddings | 16.7%   | 92.5% | 43.5%    | 10.6%
        Random Transformer      | 34.3%   | 91.7% | 61.7%    | 36.1%
    """),
    compare=(
        ("+ Residual Connections", "12-Layer LSTM"),
        ("+ Positional Embeddings", "+ Residual Connections"),
        ("Random Transformer", "+ Positional Embeddings"),
    ),
    notes=(
        "Each LSTM row adds to the one above: residual connections, then a learned position table (trained). "
        "Every LSTM here has 12 layers x 768 and trains at lr 3e-4 (Appendix C).",
        "The paper's \"+ Residual Connections\" row repeats Table 4's 3-layer row digit for digit; we run what "
        "Appendix D.3 describes, a 12-layer LSTM with residual connections.",
    ),
)
