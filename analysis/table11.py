"""Table 11 (Section 3.10, "What is the role of model depth in token mixing?", with finetuning
layernorm): ListOps with only the first 1, 2 or 6 blocks of GPT-2 base, classifying from their hidden
states; the output layer and the layer norms train, the input layer stays at its random init and the
positions stay frozen. Spec: experiments/table11.toml; offline counterpart
experiments/offline/table11.toml (MiniLM, generated ListOps; its 6 blocks are the whole body).

Rows = the spec's `model.depth` axis, under the paper's "Number of Layers" labels "1", "2", "6".
Columns = the `variant` axis: "Pretrained" = pretrained, "Random" = random. Task: listops only."""

from fptlab.report import Column, Row, Table, paper_grid

TABLE = Table(
    key="table11",
    title="ListOps by depth, layer norms trained",
    section="3.10",
    where={"task": "listops"},
    rows=(
        Row("1", {"model.depth": 1}),
        Row("2", {"model.depth": 2}),
        Row("6", {"model.depth": 6}),
    ),
    columns=(
        Column("Pretrained", {"variant": "pretrained"}),
        Column("Random", {"variant": "random"}),
    ),
    paper=paper_grid("""
            | Pretrained | Random
        1   | 17%        | 17%
        2   | 36%        | 16%
        6   | 38%        | 35%
    """),
    # No `compare`: the paper compares the columns (pretrained vs random at each depth), and the rows must
    # stay the paper's "Number of Layers"; read the two columns of a row side by side.
    notes=(
        "Rows: number of blocks kept, the first 1, 2 or 6 of the pretrained or random body (GPT-2 base has 12); "
        "the read-out is their last hidden state.",
        "Trained: the output layer and the layer norms only; the input layer is randomly initialised and frozen, "
        "the positional embeddings frozen (Section 3.10).",
    ),
)
