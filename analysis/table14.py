"""Table 14 (Section 3.11): CIFAR-10 with the pretrained GPT-2 base, FPT plus more trained parameters.
Spec: experiments/table14.toml (no offline counterpart).

Row "CIFAR-10" = the spec's `task` axis (cifar10 only). Columns = the `variant` axis:
  "Base (FPT)"                   - fpt (Table 2's FPT on CIFAR-10, same hashes)
  "+ Finetuning All FF Layers"   - feedforward: FPT groups + every block's feed-forward layers (Table 13's
                                   "+ Feedforward" on CIFAR-10, same hashes)
  "+ Finetuning Last Attn Layer" - last_attention: FPT groups + every feed-forward layer + the last
                                   block's attention, as the caption says ("the feedforward layers and
                                   the last self-attention layer")."""

from fptlab.report import Column, Row, Table, paper_grid

TABLE = Table(
    key="table14",
    title="CIFAR-10, finetuning the feed-forward layers and the last attention layer",
    section="3.11",
    rows=(Row("CIFAR-10", {"task": "cifar10"}),),
    columns=(
        Column("Base (FPT)", {"variant": "fpt"}),
        Column("+ Finetuning All FF Layers", {"variant": "feedforward"}),
        Column("+ Finetuning Last Attn Layer", {"variant": "last_attention"}),
    ),
    paper=paper_grid("""
                 | Base (FPT) | + Finetuning All FF Layers | + Finetuning Last Attn Layer
        CIFAR-10 | 68.2%      | 76.6%                      | 80.0%
    """),
    # No `compare`: the paper's comparison runs along the one row (columns), whose labels are the paper's.
    notes=(
        "Columns add to the last: + Finetuning Last Attn Layer trains the FPT groups, every feed-forward layer "
        "and the last block's attention (the caption: \"the feedforward layers and the last self-attention layer\").",
    ),
)
