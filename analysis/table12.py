"""Table 12 (Section 3.10, "What is the role of model depth in token mixing?", without finetuning
layernorm): ListOps by depth with only the output layer trained, on features computed once (as in
Section 3.9's reservoir setup). Spec: experiments/table12.toml (no offline counterpart).

Columns = the spec's `variant` axis: "Pretrained" = pretrained, "Random" = random. Rows, the paper's
"Number of Layers", by config values (the spec lists its six filled cells as one [[zip]]):
  "1", "3", "6" - backbone gpt2, model.depth 1 / 3 / 6 (the first blocks of GPT-2 base)
  "12"          - backbone gpt2, model.depth 0 (all 12 blocks)
  "24"          - backbone gpt2-medium (all 24 blocks)
The paper ran neither Random at 1, 3, 6 nor Pretrained at 24 ("-"); the spec has no trials there
either, so those cells select nothing and show "—"."""

from fptlab.report import Column, Row, Table, paper_grid

TABLE = Table(
    key="table12",
    title="ListOps by depth, output layer only",
    section="3.10",
    where={"task": "listops"},
    rows=(
        Row("1", {"backbone": "gpt2", "model.depth": 1}),
        Row("3", {"backbone": "gpt2", "model.depth": 3}),
        Row("6", {"backbone": "gpt2", "model.depth": 6}),
        Row("12", {"backbone": "gpt2", "model.depth": 0}),
        Row("24", {"backbone": "gpt2-medium", "model.depth": 0}),
    ),
    columns=(
        Column("Pretrained", {"variant": "pretrained"}),
        Column("Random", {"variant": "random"}),
    ),
    paper=paper_grid("""
             | Pretrained | Random
        1    | 12%        | -
        3    | 18%        | -
        6    | 33%        | -
        12   | 33%        | 17%
        24   | -          | 17%
    """),
    # No `compare`: the paper compares the columns, and only row "12" has both; the rows must stay the
    # paper's "Number of Layers".
    notes=(
        "Rows 1, 3, 6, 12: the first blocks of GPT-2 base (12 = all of them); row 24: all of GPT-2 medium. "
        "\"—\": a cell the paper did not run, nor does the spec.",
        "Only the output layer trains, on the body's features computed once (no dropout; Section 3.9). Pretrained "
        "at 12 layers is the same run as Table 10's Output Only on ListOps.",
    ),
)
