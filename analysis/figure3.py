"""Figure 3 (Section 3.5, "What does the frozen self-attention attend to?"): the first block's attention
(mean over heads) of FPT on Bit XOR. Spec: experiments/figure3.toml, one label set, variant fpt x task
bit_xor (Table 2's FPT cells on Bit XOR, 3 seeds, which record `attention` artifacts); offline
counterpart experiments/offline/figure3.toml (MiniLM: it attends both ways, so no causal triangle).

Drawn by analysis/_attention.py (shared with Figures 4 and 5) from the finished trials' `attention`
artifacts: the probe examples of the first seed that has one, side by side, and the map averaged over
examples and then over seeds. The caption gives the attention mass on the two XOR partners of each
output (keys i and n+i for the output at n+i).
"""

from __future__ import annotations

from typing import Any

from fptlab.analysis._attention import draw_attention, load

from fptlab.report import Figure

WHERE = {"variant": "fpt", "task": "bit_xor"}
def draw(ctx: Any) -> list[tuple[str, Any]]:
    return draw_attention(ctx, load(ctx, WHERE), "FPT", "FPT")


FIGURE = Figure(
    key="figure3",
    title="First-layer attention of FPT on Bit XOR",
    section="3.5",
    draw=draw,
    notes=(
        "Paper: \"FPT learns to attend positionally to the two bits that are XOR'ed by the output token\": "
        "look for two diagonals in the output rows, one on the first string and one on the output's own position.",
        "Maps are the first transformer block's attention probabilities, mean over heads, recorded after training "
        "on a fixed probe batch of test examples (attention_maps in the run's config).",
    ),
)
