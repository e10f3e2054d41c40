"""Table 2, tuned (experiments/table2-tuned.toml): frozen GPT-2 base, language-pretrained (FPT) vs
random, and the same two bodies with every parameter trained, each arm (row x task) at its own best
learning rate chosen on the validation split (`fptlab.report.tuned`; after Rothermel et al. 2021).
Beside each arm: the paper's number (Table 2's FPT and Random rows) and ours at the paper's fixed rate."""

from fptlab.analysis.table2 import TABLE as TABLE2

from fptlab.report import Table, variant_rows

TABLE = Table(
    key="table2-tuned",
    title="Table 2 with each arm at its best lr on validation: frozen vs fully trained, pretrained vs random",
    section="3.2 (tuned, after Rothermel et al. 2021)",
    rows=variant_rows(("FPT", "fpt"), ("Random", "random"), ("FPT full", "fpt_full"), ("Random full", "full")),
    columns=TABLE2.columns,
    paper={k: v for k, v in TABLE2.paper.items() if k[0] in ("FPT", "Random")},
    compare=(("FPT", "Random"), ("FPT full", "Random full"), ("FPT", "FPT full"), ("Random", "Random full")),
    tuned=True,
    notes=("The paper's numbers are Table 2's, at its fixed rates (1e-3; 1e-4 on homology); the paper has no fully "
           "trained pretrained row, and its Full row (Table 1) keeps 3 blocks on CIFAR-10 where this one trains all 12.",),
)
