"""Table 1, tuned (experiments/table1-tuned.toml): FPT vs a fully trained transformer (Full, random
init) vs language-pretrained GPT-2 with every parameter trained vs a fully trained LSTM, each arm
(row x task) at its own best learning rate chosen on the validation split (`fptlab.report.tuned`; after
Rothermel et al. 2021). Beside each arm: the paper's number and ours at the paper's fixed rate.
Table 1's literature cells stay the literature's."""

from fptlab.analysis.table1 import TABLE as TABLE1

from fptlab.report import Table, variant_rows

TABLE = Table(
    key="table1-tuned",
    title="Table 1 with each arm at its best lr on validation: FPT vs Full vs pretrained-full vs LSTM",
    section="3.1 (tuned, after Rothermel et al. 2021)",
    rows=variant_rows(("FPT", "fpt"), ("Full", "full"), ("Pretrained full", "fpt_full"), ("LSTM", "lstm")),
    columns=TABLE1.columns,
    paper=TABLE1.paper,
    literature=TABLE1.literature,
    compare=(("FPT", "Full"), ("FPT", "LSTM"), ("Pretrained full", "Full"), ("FPT", "Pretrained full")),
    tuned=True,
    notes=TABLE1.notes,
)
