"""Table 2 (Section 3.2, Appendix D.2): test accuracy of a frozen GPT-2 base body by how its weights
were obtained: language-pretrained (FPT), random init (Random), trained on Bit Memory (Bit), or a
pretrained Vision Transformer (ViT). Spec: experiments/table2.toml (rows are its variants); offline
counterpart experiments/offline/table2.toml (MiniLM, no Bit/ViT, peptides in the Homology column)."""

from fptlab.report import Table, paper_grid, task_columns, variant_rows

TASKS = task_columns("Bit Memory", "XOR", "ListOps", "MNIST", "C10", "C10 LRA", "Homology")

TABLE = Table(
    key="table2",
    title="Test accuracy by pretraining modality, transformer frozen",
    section="3.2",
    rows=variant_rows(("FPT", "fpt"), ("Random", "random"), ("Bit", "bit"), ("ViT", "vit")),
    columns=TASKS,
    paper=paper_grid("""
               | Bit Memory | XOR  | ListOps | MNIST | C10   | C10 LRA | Homology
        FPT    | 100%       | 100% | 38.4%   | 98.0% | 68.2% | 38.6%   | 12.7%
        Random | 75.8%      | 100% | 34.3%   | 91.7% | 61.7% | 36.1%   | 9.3%
        Bit    | 100%       | 100% | 35.4%   | 97.8% | 62.6% | 36.7%   | 7.8%
        ViT    | 100%       | 100% | 37.4%   | 97.8% | 72.5% | 43.0%   | 7.5%
    """),
    compare=(("FPT", "Random"), ("FPT", "Bit"), ("FPT", "ViT")),
)
