"""Figure 4 (Section 3.5): the first block's attention (mean over heads) of FPT on Bit Memory. Spec:
experiments/figure4.toml, one label set, variant fpt x task bit_memory (Table 2's FPT cells on Bit
Memory, 3 seeds, which record `attention` artifacts); offline counterpart
experiments/offline/figure4.toml (MiniLM, bidirectional; the reduced Bit Memory of 3 strings x 6 tokens).

Drawn as Figure 3 (analysis/_attention.py): the first seed's probe examples side by side, titled with the
string each query recalls, and the map averaged over examples and seeds; dashed lines separate the
strings and the query. Since the recalled string differs between examples, the average blurs it; the
caption gives, per example, the query rows' attention on the recalled string against each other string.
"""

from __future__ import annotations

from typing import Any

from fptlab.analysis._attention import draw_attention, load

from fptlab.report import Figure

WHERE = {"variant": "fpt", "task": "bit_memory"}


def draw(ctx: Any) -> list[tuple[str, Any]]:
    return draw_attention(ctx, load(ctx, WHERE), "FPT", "FPT")


FIGURE = Figure(
    key="figure4",
    title="First-layer attention of FPT on Bit Memory",
    section="3.5",
    draw=draw,
    notes=(
        "Paper: \"FPT learns to attend to the correct string based on finding similarity to the inputs, not relying "
        "solely on position as in Bit XOR\": in the query rows, look for weight on the block of the string the "
        "query recalls (named in each panel's title).",
        "Maps are the first transformer block's attention probabilities, mean over heads, recorded after training "
        "on a fixed probe batch of test examples (attention_maps in the run's config).",
    ),
)
