"""Figure 5 (Section 3.5): the first block's attention (mean over heads) of the frozen randomly
initialised transformer on Bit XOR. Spec: experiments/figure5.toml, one label set, variant random x
task bit_xor (Table 2's Random cells on Bit XOR, 3 seeds, which record `attention` artifacts); offline
counterpart experiments/offline/figure5.toml (random MiniLM, bidirectional).

Drawn as Figure 3 (analysis/_attention.py). The paper's point is a comparison: the random transformer
"also learns to correlate the two diagonal elements [...] although the magnitude of the diagonals is
lower". So a note sets this figure's attention mass on the XOR partners beside FPT's, read from Figure
3's spec (the same Table 2 runs, variant fpt) when those maps are in the database too.
"""

from __future__ import annotations

from typing import Any

from fptlab.analysis import _attention, figure3

from fptlab.report import Figure

WHERE = {"variant": "random", "task": "bit_xor"}


def draw(ctx: Any) -> list[tuple[str, Any]]:
    random = _attention.load(ctx, WHERE)
    out = _attention.draw_attention(ctx, random, "Random init", "the random frozen transformer")
    ours = random.partner_mass()
    if ours is None:
        return out
    fpt = _fpt_maps(ctx)
    theirs = fpt.partner_mass() if fpt is not None else None
    if theirs is None:
        ctx.notes.append(f"Attention on the XOR partners: random {ours[0]:.2f} (uniform: {ours[1]:.2f}); FPT's maps "
                         "(Figure 3's runs) are not in this database to compare.")
        return out
    weaker = "weaker than" if ours[0] < theirs[0] else "not weaker than"
    ctx.notes.append(f"Attention on the XOR partners (mean over outputs and seeds): random {ours[0]:.2f} vs FPT "
                     f"{theirs[0]:.2f} (uniform: {ours[1]:.2f}), {weaker} FPT's; the paper finds the random "
                     "transformer's diagonals weaker.")
    return out


def _fpt_maps(ctx: Any) -> _attention.AttentionRuns | None:
    """Figure 3's maps (its spec, this report's database and --offline setting), without its notes."""
    from fptlab.errors import FptlabError
    from fptlab.report.engine import FigureContext
    from fptlab.report.source import Snapshot, experiments_dir, load_cells

    options = ctx.options
    try:
        cells = load_cells(figure3.FIGURE.spec_name, offline=options.offline, folder=experiments_dir(options.experiments),
                           store=ctx.store, data_dir=options.data_dir)
    except FptlabError:
        return None
    snap = Snapshot.read(ctx.store, [c.hash for c in cells.cells])
    return _attention.load(FigureContext(figure3.FIGURE, cells, snap, options, ctx.tables, ctx.store), figure3.WHERE)


FIGURE = Figure(
    key="figure5",
    title="First-layer attention of a random frozen transformer on Bit XOR",
    section="3.5",
    draw=draw,
    notes=(
        "Paper: the random transformer \"also learns to correlate the two diagonal elements on Bit XOR, although the "
        "magnitude of the diagonals is lower (note the extra attention weights distributed in between the diagonals)\". "
        "Compare with Figure 3; each figure has its own colour scale, so read the colorbars.",
        "Maps are the first transformer block's attention probabilities, mean over heads, recorded after training "
        "on a fixed probe batch of test examples (attention_maps in the run's config).",
    ),
)
