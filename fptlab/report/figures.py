"""Figures for `fptlab report`: each function takes plain data and returns a matplotlib Figure.

- `bars`               Figure 1: test accuracy per task, FPT vs Full vs LSTM, paper values as ticks.
- `attention_map`      Figures 3-5 (Section 3.5): one first-layer attention map, causal corner masked.
- `attention_grid`     Figures 3-5 side by side (several inputs, or FPT vs random) on one colour scale.
- `param_std_by_layer` Figure 6 (Section 3.8): parameter standard deviation by layer vs default init.
- `convergence`        Section 3.4 / Table 6: test accuracy against gradient steps, band over seeds.
- `paper_vs_ours`      every reproduced cell: paper value against ours, with the y = x diagonal.

Figures are built as `matplotlib.figure.Figure` objects, never through pyplot, so rendering is
headless and safe to run from several threads. Every function copes with empty input and NaNs by
drawing a figure with a centred note instead of raising.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from fptlab.errors import FptlabError

# Okabe-Ito, colour-blind safe; black is kept for the paper's values and reference lines.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")
WIDE, SQUARE = (7.0, 4.0), (5.6, 4.8)
DPI = 110
_MIME = {"png": "image/png", "svg": "image/svg+xml"}


def _figure(size: tuple[float, float] = WIDE) -> Figure:
    return Figure(figsize=size, dpi=DPI, layout="constrained")


def _note(title: str, text: str = "no data yet", size: tuple[float, float] = WIDE) -> Figure:
    """A placeholder figure: the title and a centred note, no axes drawn."""
    fig = _figure(size)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, color="0.4", transform=ax.transAxes)
    return fig


def _floats(frame: pd.DataFrame, name: str) -> np.ndarray:
    """Column `name` as floats; all NaN when the column is absent."""
    if name not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


# ---------------------------------------------------------------- Figure 1


def bars(frame: pd.DataFrame, *, title: str, ylabel: str = "test accuracy (%)") -> Figure:
    """Grouped bars: x groups = `column`, hue = `row`; CI error bars; paper value as a black tick."""
    if frame is None or frame.empty:
        return _note(title)
    frame = frame.reset_index(drop=True)
    columns, rows = list(pd.unique(frame["column"])), list(pd.unique(frame["row"]))
    fig = _figure()
    ax = fig.add_subplot()
    width = 0.8 / len(rows)
    mean, low, high, paper = (_floats(frame, c) for c in ("mean", "ci_low", "ci_high", "paper"))
    xpos = frame["column"].map({c: i for i, c in enumerate(columns)}).to_numpy(dtype=float)
    xpos += (frame["row"].map({r: j for j, r in enumerate(rows)}).to_numpy(dtype=float) - (len(rows) - 1) / 2) * width
    for j, row in enumerate(rows):
        mine = (frame["row"] == row).to_numpy()
        ok = mine & np.isfinite(mean)
        ax.bar(xpos[ok], mean[ok], width * 0.92, color=_color(j), label=str(row), zorder=2)
        ci = ok & np.isfinite(low) & np.isfinite(high)
        if ci.any():
            err = np.clip([mean[ci] - low[ci], high[ci] - mean[ci]], 0, None)
            ax.errorbar(xpos[ci], mean[ci], yerr=err, fmt="none", ecolor="0.15", elinewidth=1, capsize=2, zorder=3)
        for x in xpos[mine & ~np.isfinite(mean)]:
            ax.text(x, 0, "n/a", ha="center", va="bottom", fontsize=7, color="0.35", rotation=90)
    has_paper = np.isfinite(paper)
    if has_paper.any():
        ax.hlines(paper[has_paper], xpos[has_paper] - width / 2, xpos[has_paper] + width / 2,
                  colors="black", linewidth=2.2, label="paper", zorder=4)
    crowded = sum(len(str(c)) for c in columns) > 60  # long task names: tilt them rather than overlap
    ax.set_xticks(range(len(columns)), [str(c) for c in columns], rotation=30 if crowded else 0,
                  ha="right" if crowded else "center")
    top = np.nanmax(np.concatenate([mean, high, paper, [0.0]]))
    ax.set_ylim(0, (105 if "%" in ylabel and top <= 100 else top * 1.08) or 1)  # room for paper ticks at 100
    ax.set_xlim(-0.5, len(columns) - 0.5)
    ax.set(ylabel=ylabel, title=title)
    ax.yaxis.grid(True, color="0.9", zorder=0)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    # Legend from the rows themselves, so a row with no bar yet still shows its colour; paper last.
    handles = [Patch(facecolor=_color(j), label=str(row)) for j, row in enumerate(rows)]
    if has_paper.any():
        handles.append(Line2D([], [], color="black", linewidth=2.2, label="paper"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


# ---------------------------------------------------------------- Figures 3-5


def _masked(attention: np.ndarray, causal: bool) -> np.ma.MaskedArray:
    """(T, T) map with NaNs, and the causal corner (key j > query i) when `causal`, masked."""
    att = np.asarray(attention, dtype=float)
    masked = np.ma.masked_invalid(att)
    if causal:
        masked[np.triu(np.ones(att.shape, dtype=bool), k=1)] = np.ma.masked
    return masked


def _is_map(attention: Any) -> bool:
    att = np.asarray(attention)
    return att.ndim == 2 and att.size > 0 and np.isfinite(att.astype(float)).any()


def _draw_map(ax: Any, masked: np.ma.MaskedArray, vmax: float, tick_labels: Sequence[str] | None) -> Any:
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#d9d9d9")
    im = ax.imshow(masked, cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest", aspect="equal")
    t = masked.shape[0]
    step = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 10**9) if t / s <= 12)  # at most a dozen ticks
    ticks = list(range(0, t, step))
    labels = [str(tick_labels[i]) for i in ticks] if tick_labels is not None and len(tick_labels) == t else None
    ax.set_xticks(ticks, labels)
    ax.set_yticks(ticks, labels)
    ax.tick_params(labelsize=8)
    if labels and max(map(len, labels)) > 3:
        ax.tick_params(axis="x", labelrotation=90)
    return im


def _vmax(maps: Sequence[np.ma.MaskedArray]) -> tuple[float, str]:
    """Colour-scale top and colorbar `extend`. Query 0 can only attend to key 0 (weight 1), so on long
    maps a handful of early rows would wash out the rest: clip at the 99th percentile when the max is
    an outlier, and show the clipping as an arrow on the colorbar."""
    values = np.concatenate([m.compressed() for m in maps])
    if values.size == 0 or values.max() <= 0:
        return 1.0, "neither"
    top, p99 = float(values.max()), float(np.percentile(values, 99))
    return (p99, "max") if 0 < p99 < top / 2 else (top, "neither")


def attention_map(attention: np.ndarray, *, title: str, tick_labels: Sequence[str] | None = None,
                  causal: bool = True) -> Figure:
    """Heatmap of one (T, T) attention map: rows = query (output) positions, cols = key (input) positions."""
    if not _is_map(attention):
        return _note(title, size=SQUARE)
    masked = _masked(attention, causal)
    fig = _figure(SQUARE)
    ax = fig.add_subplot()
    vmax, extend = _vmax([masked])
    im = _draw_map(ax, masked, vmax, tick_labels)
    ax.set(xlabel="key (input position)", ylabel="query (output position)", title=title)
    fig.colorbar(im, ax=ax, label="attention weight", shrink=0.9, extend=extend)
    return fig


def attention_grid(maps: Sequence[tuple[str, np.ndarray]], *, title: str, causal: bool = True) -> Figure:
    """Several (subtitle, (T, T) map) panels, up to four a row, sharing one colour scale and colorbar."""
    panels = [(name, _masked(att, causal)) for name, att in maps if _is_map(att)]
    if not panels:
        return _note(title)
    ncols = min(len(panels), 4)
    nrows = -(-len(panels) // ncols)
    fig = _figure((min(2.9 * ncols + 1.2, 13.0), 3.0 * nrows + 0.6))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    vmax, extend = _vmax([m for _, m in panels])
    for k, ax in enumerate(axes.flat):
        if k >= len(panels):
            ax.set_axis_off()
            continue
        name, masked = panels[k]
        im = _draw_map(ax, masked, vmax, None)
        ax.set_title(str(name), fontsize=10)
        if k + ncols >= len(panels):  # bottom panel of its column: label once per column
            ax.set_xlabel("key (input position)", fontsize=9)
        if k % ncols == 0:
            ax.set_ylabel("query (output position)", fontsize=9)
    fig.colorbar(im, ax=axes.ravel().tolist(), label="attention weight", shrink=0.85, extend=extend)
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------- Figure 6


def param_std_by_layer(rows: Sequence[Mapping[str, Any]], *, title: str,
                       reference: Mapping[str, float] | None = None) -> Figure:
    """Two panels (weights, biases): standard deviation by block, one line per (label, group)."""
    frame = pd.DataFrame(list(rows or []))
    if frame.empty or not {"block", "group", "kind", "std"} <= set(frame.columns):
        return _note(title)
    frame["label"] = frame["label"].fillna("pretrained") if "label" in frame else "pretrained"
    frame["std"] = _floats(frame, "std")
    series = list(dict.fromkeys(zip(frame["label"], frame["group"], strict=True)))
    labels = list(dict.fromkeys(frame["label"]))
    fig = _figure()
    axes = fig.subplots(1, 2, sharex=True)
    for ax, kind, name in zip(axes, ("weight", "bias"), ("weights", "biases"), strict=True):
        part = frame[(frame["kind"] == kind) & np.isfinite(frame["std"])]
        for i, (label, group) in enumerate(series):
            line = part[(part["label"] == label) & (part["group"] == group)].sort_values("block")
            if not line.empty:
                ax.plot(line["block"], line["std"], marker="o" if group == "attention" else "s", markersize=4,
                        linestyle=("-", "-.", ":")[labels.index(label) % 3], color=_color(i), label=f"{label} · {group}")
        if reference and kind in reference:
            ax.axhline(reference[kind], color="black", linestyle="--", linewidth=1, label="default init")
        if part.empty:
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", color="0.4", transform=ax.transAxes)
        ax.set(title=name, xlabel="layer (block index)", ylabel="standard deviation")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, color="0.92")
    handles = {h.get_label(): h for ax in axes for h in ax.get_legend_handles_labels()[0]}
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=min(len(handles), 3), frameon=False)
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------- Section 3.4


def _seed_grid(group: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Steps (union over seeds) and a (seeds, steps) array, each seed interpolated within its own range."""
    per_seed = [g.groupby("step")["value"].mean().sort_index() for _, g in group.groupby("seed", dropna=False)]
    steps = np.unique(np.concatenate([s.index.to_numpy(dtype=float) for s in per_seed]))
    values = np.full((len(per_seed), len(steps)), np.nan)
    for k, s in enumerate(per_seed):
        x, y = s.index.to_numpy(dtype=float), s.to_numpy(dtype=float)
        inside = (steps >= x[0]) & (steps <= x[-1])
        values[k, inside] = np.interp(steps[inside], x, y)
    return steps, values


def convergence(curves: pd.DataFrame, *, title: str, ylabel: str = "test accuracy (%)",
                level: float | None = None, xlog: bool = False) -> Figure:
    """Mean over seeds per series against gradient step, shaded min..max over seeds."""
    if curves is None or curves.empty:
        return _note(title)
    curves = curves.assign(step=_floats(curves, "step"), value=_floats(curves, "value"),
                           seed=curves.get("seed", 0), row=curves.get("row", ""))
    curves = curves[np.isfinite(curves["step"]) & np.isfinite(curves["value"]) & ((curves["step"] > 0) | (not xlog))]
    if curves.empty:
        return _note(title)
    fig = _figure()
    ax = fig.add_subplot()
    banded = False
    for i, (row, group) in enumerate(curves.groupby("row", sort=False)):
        steps, values = _seed_grid(group)
        n = len(values)
        ax.plot(steps, np.nanmean(values, axis=0), color=_color(i), linewidth=1.6,
                label=f"{row} (mean of {n} seeds)" if n > 1 else f"{row} (1 seed)")
        if n > 1:
            ax.fill_between(steps, np.nanmin(values, axis=0), np.nanmax(values, axis=0), color=_color(i), alpha=0.2, linewidth=0)
            banded = True
    if level is not None and np.isfinite(level):
        ax.axhline(level, color="black", linestyle=":", linewidth=1.2, label="convergence level")
    handles, labels = ax.get_legend_handles_labels()
    if banded:
        handles.append(Patch(color="0.6", alpha=0.4, linewidth=0))
        labels.append("band: min–max over seeds")
    if xlog:
        ax.set_xscale("log")
    ax.set(xlabel="gradient step", ylabel=ylabel, title=title)
    ax.grid(True, color="0.92")
    ax.legend(handles, labels, loc="best", fontsize=8, framealpha=0.9)
    return fig


def sensitivity(series: Sequence[tuple[str, Sequence[tuple[float, float, float, float, bool]], float | None, float | None]], *,
                title: str, xlabel: str = "lr", log: bool = True, ylabel: str = "validation accuracy (%)") -> Figure:
    """A tuned comparison, one task: per arm, validation accuracy (mean over seeds, min–max band) against
    the tuned value; ★ marks the selected value, ○ the fixed one, × a value cut by successive halving.
    `series`: (arm label, [(value, mean, low, high, cut)], selected, fixed)."""
    drawn = [(label, [p for p in points if np.isfinite(p[0]) and np.isfinite(p[1]) and (p[0] > 0 or not log)], sel, fixed)
             for label, points, sel, fixed in series]
    drawn = [d for d in drawn if d[1]]
    if not drawn:
        return _note(title)
    fig = _figure()
    ax = fig.add_subplot()
    for i, (label, points, selected, fixed) in enumerate(drawn):
        xs = np.array([p[0] for p in points])
        mean, low, high = (np.array([p[k] for p in points]) for k in (1, 2, 3))
        color = _color(i)
        ax.plot(xs, mean, color=color, linewidth=1.6, marker=".", label=label)
        ax.fill_between(xs, low, high, color=color, alpha=0.18, linewidth=0)
        for x, y, _lo, _hi, cut in points:
            if cut:
                ax.plot([x], [y], marker="x", color=color, markersize=8, linestyle="none")
            if selected is not None and np.isclose(x, selected):
                ax.plot([x], [y], marker="*", color=color, markersize=15, markeredgecolor="black", linestyle="none")
            if fixed is not None and np.isclose(x, fixed):
                ax.plot([x], [y], marker="o", markerfacecolor="none", color=color, markersize=12, linestyle="none")
    if log:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(True, color="0.92")
    handles, labels = ax.get_legend_handles_labels()
    from matplotlib.lines import Line2D

    handles += [Line2D([], [], marker="*", color="0.3", markeredgecolor="black", markersize=12, linestyle="none"),
                Line2D([], [], marker="o", markerfacecolor="none", color="0.3", markersize=10, linestyle="none"),
                Patch(color="0.6", alpha=0.4, linewidth=0)]
    labels += ["selected (best mean validation)", "fixed (untuned)", "band: min–max over seeds"]
    ax.legend(handles, labels, loc="best", fontsize=8, framealpha=0.9)
    return fig


# ---------------------------------------------------------------- all cells


def paper_vs_ours(points: pd.DataFrame, *, title: str, unit: str = "%") -> Figure:
    """Scatter of paper value (x) against ours (y) with CI bars; labels the 3 cells farthest from y = x."""
    if points is None or points.empty:
        return _note(title, "no cells with both values yet", SQUARE)
    points = points.assign(paper=_floats(points, "paper"), ours=_floats(points, "ours"), low=_floats(points, "low"),
                           high=_floats(points, "high"), row=points.get("row", ""), label=points.get("label", ""))
    points = points[np.isfinite(points["paper"]) & np.isfinite(points["ours"])].reset_index(drop=True)
    if points.empty:
        return _note(title, "no cells with both values yet", SQUARE)
    fig = _figure((6.6, 4.8))
    ax = fig.add_subplot()
    for i, (row, part) in enumerate(points.groupby("row", sort=False)):
        ci = part[np.isfinite(part["low"]) & np.isfinite(part["high"])]
        if not ci.empty:
            err = np.clip([ci["ours"] - ci["low"], ci["high"] - ci["ours"]], 0, None)
            ax.errorbar(ci["paper"], ci["ours"], yerr=err, fmt="none", ecolor=_color(i), elinewidth=1, capsize=2, alpha=0.8)
        ax.scatter(part["paper"], part["ours"], color=_color(i), s=28, label=str(row), zorder=3, edgecolor="white", linewidth=0.5)
    values = np.concatenate([points[c].to_numpy() for c in ("paper", "ours", "low", "high")])
    lo, hi = np.nanmin(values), np.nanmax(values)
    pad = 0.05 * (hi - lo) or 1.0
    lim = (lo - pad, hi + pad)
    ax.plot(lim, lim, color="0.5", linestyle="--", linewidth=1, label="y = x", zorder=1)
    ax.set(xlim=lim, ylim=lim, aspect="equal", xlabel=f"paper ({unit})", ylabel=f"ours ({unit})", title=title)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(6))
    far = (points["ours"] - points["paper"]).abs().sort_values(ascending=False).index[:3]
    for k in far:
        p = points.loc[k]
        right = p["paper"] < (lo + hi) / 2  # put the label towards the middle so it stays inside the axes
        ax.annotate(str(p.get("label", "")), (p["paper"], p["ours"]), xytext=(6 if right else -6, 4),
                    textcoords="offset points", ha="left" if right else "right", fontsize=8, color="0.2")
    ax.grid(True, color="0.92")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return fig


# ---------------------------------------------------------------- output


def save(fig: Figure, stem: Path | str, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Write `stem.<fmt>` for each format (creating the folder) and return the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.parent / f"{stem.name}.{fmt}"
        fig.savefig(path, format=fmt, dpi=DPI, metadata={"Date": None} if fmt == "svg" else None)
        paths.append(path)
    return paths


def data_uri(fig: Figure, fmt: str = "png") -> str:
    """The figure as a `data:` URI (PNG or SVG) for embedding in a self-contained HTML page."""
    if fmt not in _MIME:
        raise FptlabError(f"Unknown figure format {fmt!r} for a data URI; expected one of {sorted(_MIME)}.")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=DPI, metadata={"Date": None} if fmt == "svg" else None)
    return f"data:{_MIME[fmt]};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"
