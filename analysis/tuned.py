"""The offline tuned comparison (experiments/offline/tuned.toml): MiniLM frozen vs fully trained,
language-pretrained vs random, every arm (row x task) at its own best learning rate chosen on the
validation split (`fptlab.report.tuned`). Not a paper table: the laptop-sized form of the question
Rothermel et al. (2021) asked of the paper, whether "frozen matches full" and "pretrained beats random"
survive tuning. `fptlab report tuned` reads it (its spec exists only offline)."""

from fptlab.analysis.quickstart import TABLE as QUICKSTART

from fptlab.report import Table, variant_rows

TABLE = Table(
    key="tuned",
    title="Each arm at its best lr on validation: MiniLM frozen vs full, pretrained vs random (offline data, CPU budget)",
    section="3.1, 3.2 (tuned, after Rothermel et al. 2021)",
    rows=variant_rows(("Pretrained frozen", "fpt"), ("Random frozen", "random"), ("Pretrained full", "fpt_full"),
                      ("Random full", "full")),
    columns=QUICKSTART.columns,  # the five offline tasks
    compare=(("Pretrained frozen", "Random frozen"), ("Pretrained full", "Random full"),
             ("Pretrained frozen", "Pretrained full"), ("Random frozen", "Random full")),
    tuned=True,
    offline_only=True,
    notes=("Reduced tasks on a CPU budget (the quickstart's): compare the rows, not the paper's numbers.",),
)
