"""Figure 6 (Section 3.8, "Can performance be attributed simply to better statistics for
initialization?"): the standard deviation of the attention and feed-forward weights and biases by
layer, pretrained GPT-2 against its default initialisation (N(0, 0.02) weights, zero biases). Spec:
experiments/figure6.toml, variant fpt ("pretrained" series) and variant random ("random" series) on
task bit_xor (Table 2's runs, which record `param_stats` artifacts); offline counterpart
experiments/offline/figure6.toml (MiniLM, same default init).

Each finished trial's `param_stats.json` (`fptlab.artifacts.write_param_stats`: {"backbone", "rows":
[{block, group, kind, numel, mean, std}]}) describes the frozen body it started from; a series is the
mean over its trials of each (block, group, kind)'s std (pretrained bodies are identical across
seeds; random ones differ only by their seed's draw).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from fptlab.report import Figure

SERIES = (("pretrained", {"variant": "fpt", "task": "bit_xor"}), ("random", {"variant": "random", "task": "bit_xor"}))
REFERENCE = {"weight": 0.02, "bias": 0.0}  # GPT2Config.initializer_range; biases start at 0


def draw(ctx: Any) -> list[tuple[str, Any]]:
    from fptlab.report.figures import param_std_by_layer  # matplotlib loads only when drawing

    rows, counts, backbones = [], {}, set()
    for label, where in SERIES:
        stats = _stats(ctx, where)
        counts[label] = len(stats)
        backbones.update(s.get("backbone", "?") for s in stats)
        rows.extend(_averaged([s["rows"] for s in stats], label))
    if len(backbones) > 1:
        ctx.notes.append(f"figure6: the series come from different backbones ({', '.join(sorted(backbones))}).")
    body = ", ".join(sorted(backbones))
    title = f"Parameter standard deviation by layer{', ' + body if body else ''}"
    fig = param_std_by_layer(rows, title=title, reference=REFERENCE)
    runs = "; ".join(f"{label}: {n} run{'s' if n != 1 else ''}" for label, n in counts.items())
    caption = (f"Standard deviation of the attention and feed-forward weights (left) and biases (right) per block of "
               f"{body or 'the frozen body'}, pretrained vs default random init, mean over runs ({runs}). Dashed: the default init "
               "(0.02 for weights, 0 for biases).")
    return [(caption, fig)]


def _stats(ctx: Any, where: dict[str, Any]) -> list[dict[str, Any]]:
    """Each finished trial's parameter statistics; a trial without a readable file becomes a note."""
    cells = sorted(ctx.cells.select(where), key=lambda c: c.labels.get("seed", 0)) if ctx.cells is not None else []
    done = set(ctx.finished([c.hash for c in cells]))
    out = []
    for cell in cells:
        if cell.hash not in done:
            continue
        who = f"figure6: {cell.labels.get('variant')} seed {cell.labels.get('seed')} (trial {cell.hash[:12]})"
        found = ctx.artifacts(cell.hash, "param_stats")
        if not found:
            ctx.notes.append(f"{who} finished without a param_stats artifact (its param_stats = {cell.values.get('param_stats')}).")
            continue
        location = found[-1]["path"]
        if location is None:
            continue  # refused or not reachable here: the context noted why
        try:
            data = json.loads(location.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            ctx.notes.append(f"{who}: cannot read statistics file {location}: {e}")
            continue
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
            ctx.notes.append(f"{who}: statistics file {location} has no list of `rows`.")
            continue
        out.append(data)
    return out


def _averaged(runs: list[list[dict[str, Any]]], label: str) -> list[dict[str, Any]]:
    """One row per (block, group, kind): std and mean averaged over runs, labelled with the series."""
    pooled: dict[tuple[int, str, str], list[dict[str, Any]]] = {}
    for rows in runs:
        for r in rows:
            pooled.setdefault((int(r["block"]), str(r["group"]), str(r["kind"])), []).append(r)
    out = []
    for (block, group, kind), rs in sorted(pooled.items()):
        stds = np.array([float(r["std"]) for r in rs], dtype=float)
        means = np.array([float(r.get("mean", np.nan)) for r in rs], dtype=float)
        out.append({"label": label, "block": block, "group": group, "kind": kind, "numel": int(rs[0].get("numel", 0)),
                    "std": float(np.nanmean(stds)) if np.isfinite(stds).any() else np.nan,
                    "mean": float(np.nanmean(means)) if np.isfinite(means).any() else np.nan})
    return out


FIGURE = Figure(
    key="figure6",
    title="Parameter standard deviation by layer, pretrained vs default init",
    section="3.8",
    draw=draw,
    notes=(
        "The statistics are those of the frozen body each run starts from (these layers are not trained), so any "
        "finished run of a variant serves; Table 9 tests whether initialising with them recovers FPT's accuracy.",
    ),
)
