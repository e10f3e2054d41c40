"""Table 22 (Appendix B.5, "Model Sizes"; used in Section 3.7): the GPT-2 sizes' hyperparameters.
Descriptive: no spec (spec=None), nothing to run; every cell is printed from the backbone registry
(`fptlab.backbones.BACKBONES`) by the post hook, without torch.

Rows are backbones: "Small (Base)" = gpt2, "Medium" = gpt2-medium, "Large" = gpt2-large. Columns:
"n_layers" = BackboneSpec.n_layers, "n_dim" = BackboneSpec.d_model, "n_heads" = the GPT-2 family's size
table (`fptlab.backbones.gpt2.SIZES`; a BackboneSpec has no head count), "# Parameters" = the body's
parameter count computed from those hyperparameters (`gpt2_parameters`; tests check it against torch).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from fptlab.report import Column, Row, Table, paper_grid
from fptlab.report.stats import Stat
from fptlab.report.values import format_count

if TYPE_CHECKING:
    from fptlab.report.build import TableResult

SIZES = {"Small (Base)": "gpt2", "Medium": "gpt2-medium", "Large": "gpt2-large"}  # row label -> backbone
LAYERS, DIM, HEADS, PARAMS = "n_layers", "n_dim", "n_heads", "# Parameters"


def gpt2_parameters(width: int, layers: int, vocab: int, positions: int) -> int:
    """Parameters of a GPT-2 body (transformers' GPT2Model, no LM head): token table V·d, position table
    P·d, per block 12·d² + 13·d (ln_1 2d, attention qkv 3d² + 3d and projection d² + d, ln_2 2d, MLP
    4d² + 4d and 4d² + d), and the final layer norm 2d."""
    return vocab * width + positions * width + layers * (12 * width * width + 13 * width) + 2 * width


def describe(backbone: str) -> dict[str, int | None]:
    """What the registry knows of `backbone` for this table's columns (None: not recorded)."""
    from fptlab.backbones import BACKBONES  # imports no torch; kept out of the catalog's import

    spec = BACKBONES.get(backbone)
    heads = vocab = None
    if spec.family == "gpt2":
        from fptlab.backbones import gpt2

        width, _, heads, _, vocab = gpt2.SIZES[backbone]
        assert width == spec.d_model, f"{backbone}: registry and size table disagree"
    params = None
    if vocab is not None and spec.max_positions is not None:
        params = gpt2_parameters(spec.d_model, spec.n_layers, vocab, spec.max_positions)
    return {LAYERS: spec.n_layers, DIM: spec.d_model, HEADS: heads, PARAMS: params}


def fill(result: TableResult) -> None:
    for row, backbone in SIZES.items():
        for column, value in describe(backbone).items():
            cell = result.cell(row, column)
            cell.unit = "params" if column == PARAMS else "count"
            if value is None:
                cell.text = "—"
                continue
            cell.stat = Stat(float(value), math.nan, 1, math.nan, math.nan)
            cell.text = format_count(value) if column == PARAMS else str(value)


TABLE = Table(
    key="table22",
    title="Hyperparameters for architectures for larger model sizes",
    section="B.5",
    rows=tuple(Row(label, derived=True) for label in SIZES),
    columns=tuple(Column(label, derived=True) for label in (LAYERS, DIM, HEADS, PARAMS)),
    spec=None,
    paper=paper_grid("""
                     | n_layers | n_dim | n_heads | # Parameters
        Small (Base) | 12       | 768   | 12      | 117M
        Medium       | 24       | 1024  | 16      | 345M
        Large        | 36       | 1280  | 20      | 774M
    """),
    post=fill,
    notes=(
        "From the backbone registry (gpt2, gpt2-medium, gpt2-large), not from runs. # Parameters counts the GPT-2 "
        "body (token and position tables, blocks, final layer norm): 124.4M, 354.8M and 774.0M, what torch counts "
        "for transformers' GPT2Model. The paper's 117M and 345M are the GPT-2 paper's original counts, which "
        "OpenAI's GPT-2 repository later corrected to 124M and 355M (\"our original parameter counts were wrong\").",
        "A run's total_params (`fptlab run --dry-run`) also counts the task's input and output layers.",
    ),
)
