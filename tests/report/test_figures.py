"""Contracts of the report's plotting layer (fptlab/report/figures.py): each function returns a
Figure with the promised axes, labels and artists, skips NaN cells, survives empty input, and the
figure saves as real PNG/SVG files and data URIs."""

from __future__ import annotations

import base64
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from fptlab.errors import FptlabError
from fptlab.report import figures as F

PNG = b"\x89PNG\r\n\x1a\n"
TASKS = ["Bit Memory", "Bit XOR", "ListOps"]


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def _bars(ax) -> list[Rectangle]:
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def _note_only(fig: Figure, note: str = "no data yet") -> bool:
    return len(fig.axes) == 1 and not fig.axes[0].axison and note in _texts(fig.axes[0])


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def bar_frame(rng) -> pd.DataFrame:
    rows = []
    for row in ("FPT", "Full", "LSTM"):
        for task in TASKS:
            mean = float(rng.uniform(20, 99))
            rows.append({"column": task, "row": row, "mean": mean, "ci_low": mean - 2, "ci_high": mean + 2, "paper": mean + 1})
    frame = pd.DataFrame(rows)
    frame.loc[8, "mean"] = np.nan  # LSTM · ListOps not run
    frame.loc[0, ["ci_low", "ci_high"]] = np.nan  # n < 2: no error bar
    frame.loc[4, "paper"] = np.nan  # no paper value
    return frame


def _causal_map(rng, t: int) -> np.ndarray:
    att = np.tril(rng.random((t, t)))  # (T, T), rows = queries
    return att / att.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- bars


def test_bars_draws_one_bar_per_run_cell_and_skips_nan(bar_frame):
    fig = F.bars(bar_frame, title="Figure 1")
    (ax,) = fig.axes
    assert ax.get_title() == "Figure 1" and ax.get_ylabel() == "test accuracy (%)"
    assert len(_bars(ax)) == 8  # 9 cells, one NaN mean
    assert _texts(ax) == ["n/a"]
    assert [t.get_text() for t in ax.get_xticklabels()] == TASKS
    paper = [c for c in ax.collections if isinstance(c, LineCollection) and c.get_label() == "paper"]
    assert len(paper) == 1 and len(paper[0].get_segments()) == 8  # 9 cells, one without paper value
    errbars = [c for c in ax.collections if isinstance(c, LineCollection) and c.get_label() != "paper"]
    assert sum(len(c.get_segments()) for c in errbars) == 7  # 8 bars, one without a CI
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["FPT", "Full", "LSTM", "paper"]


def test_bars_keeps_order_of_first_appearance(bar_frame):
    fig = F.bars(bar_frame.iloc[::-1], title="t")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == TASKS[::-1]


def test_bars_all_nan_and_empty():
    frame = pd.DataFrame({"column": ["A", "B"], "row": ["FPT", "FPT"], "mean": [np.nan] * 2,
                          "ci_low": [np.nan] * 2, "ci_high": [np.nan] * 2, "paper": [np.nan] * 2})
    fig = F.bars(frame, title="t")
    assert _texts(fig.axes[0]) == ["n/a", "n/a"] and not _bars(fig.axes[0])
    assert _note_only(F.bars(pd.DataFrame(), title="t"))


# ---------------------------------------------------------------- attention


def test_attention_map_masks_the_causal_corner(rng):
    att = _causal_map(rng, 10)
    fig = F.attention_map(att, title="Figure 3", tick_labels=[f"x{i}" for i in range(10)])
    ax, cbar = fig.axes
    assert ax.get_title() == "Figure 3"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("key (input position)", "query (output position)")
    assert cbar.get_ylabel() == "attention weight"
    image = ax.images[0].get_array()
    assert np.array_equal(np.ma.getmaskarray(image), np.triu(np.ones((10, 10), bool), k=1))
    assert [t.get_text() for t in ax.get_xticklabels()][:2] == ["x0", "x1"]


def test_attention_map_non_causal_and_nan(rng):
    att = rng.random((6, 6))
    att[2, 3] = np.nan
    mask = np.ma.getmaskarray(F.attention_map(att, title="t", causal=False).axes[0].images[0].get_array())
    assert mask.sum() == 1 and mask[2, 3]


def test_attention_map_long_sequence_has_readable_ticks(rng):
    ax = F.attention_map(_causal_map(rng, 120), title="Figure 4").axes[0]
    assert len(ax.get_xticks()) <= 12


@pytest.mark.parametrize("bad", [np.zeros((0, 0)), np.full((3, 3), np.nan), np.zeros(4)])
def test_attention_map_empty(bad):
    assert _note_only(F.attention_map(bad, title="t"))


def test_attention_grid_panels_share_one_colorbar(rng):
    maps = [("FPT", _causal_map(rng, 10)), ("Random", _causal_map(rng, 10)), ("empty", np.zeros((0, 0)))]
    fig = F.attention_grid(maps, title="Figure 5")
    panels = [ax for ax in fig.axes if ax.images]
    colorbars = [ax for ax in fig.axes if ax.get_ylabel() == "attention weight"]
    assert [ax.get_title() for ax in panels] == ["FPT", "Random"] and len(colorbars) == 1
    assert fig.get_suptitle() == "Figure 5"
    assert panels[0].images[0].get_clim() == panels[1].images[0].get_clim()
    assert np.ma.getmaskarray(panels[1].images[0].get_array())[0, 1]
    assert _note_only(F.attention_grid([], title="t"))


# ---------------------------------------------------------------- Figure 6


def _std_rows(rng) -> list[dict]:
    rows = []
    for block in range(4):
        for group in ("attention", "feedforward"):
            for kind in ("weight", "bias"):
                rows.append({"block": block, "group": group, "kind": kind, "std": float(rng.uniform(0.05, 0.2))})
                rows.append({"block": block, "group": group, "kind": kind, "std": 0.02, "label": "random"})
    rows[0]["std"] = np.nan  # pretrained attention weight, block 0
    return rows


def test_param_std_by_layer_two_panels_one_line_per_series(rng):
    fig = F.param_std_by_layer(_std_rows(rng), title="Figure 6", reference={"weight": 0.02, "bias": 0.0})
    weights, biases = fig.axes
    assert (weights.get_title(), biases.get_title()) == ("weights", "biases")
    assert weights.get_xlabel() == "layer (block index)" and weights.get_ylabel() == "standard deviation"
    assert fig.get_suptitle() == "Figure 6"
    for ax, ref in ((weights, 0.02), (biases, 0.0)):
        lines = {line.get_label(): line for line in ax.lines}
        assert set(lines) == {"pretrained · attention", "pretrained · feedforward", "random · attention",
                              "random · feedforward", "default init"}
        assert lines["default init"].get_ydata()[0] == ref
    assert len({line.get_label(): line for line in weights.lines}["pretrained · attention"].get_xdata()) == 3  # NaN skipped
    legend = fig.legends[0]
    assert len(legend.get_texts()) == 5


def test_param_std_by_layer_empty_and_missing_kind(rng):
    assert _note_only(F.param_std_by_layer([], title="t"))
    only_weights = [r for r in _std_rows(rng) if r["kind"] == "weight"]
    fig = F.param_std_by_layer(only_weights, title="t")
    assert not fig.axes[1].lines and "no data yet" in _texts(fig.axes[1])


# ---------------------------------------------------------------- convergence


def _curves(rng) -> pd.DataFrame:
    rows = []
    for row, speed in (("FPT", 200), ("Random", 2000)):
        for seed in range(3):
            for step in range(0, 5001 + 100 * seed, 250 + 50 * seed):  # seeds evaluate at different steps
                rows.append({"row": row, "seed": seed, "step": step, "value": 100 * (1 - np.exp(-step / speed)) + rng.normal(0, 1)})
    rows.append({"row": "Single", "seed": 0, "step": 100, "value": 10.0})
    rows.append({"row": "Single", "seed": 0, "step": 200, "value": np.nan})
    rows.append({"row": "Single", "seed": 0, "step": 300, "value": 30.0})
    return pd.DataFrame(rows)


def test_convergence_mean_line_band_and_level(rng):
    curves = _curves(rng)
    fig = F.convergence(curves, title="Section 3.4", level=99.0)
    (ax,) = fig.axes
    assert ax.get_title() == "Section 3.4" and ax.get_xlabel() == "gradient step" and ax.get_ylabel() == "test accuracy (%)"
    labels = [line.get_label() for line in ax.lines]
    assert labels == ["FPT (mean of 3 seeds)", "Random (mean of 3 seeds)", "Single (1 seed)", "convergence level"]
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 2  # no band for a single seed
    fpt = ax.lines[0]
    union = np.unique(curves[curves["row"] == "FPT"]["step"])
    assert np.array_equal(fpt.get_xdata(), union) and np.isfinite(fpt.get_ydata()).all()
    assert list(ax.lines[2].get_ydata()) == [10.0, 30.0]  # NaN value dropped
    assert "band: min–max over seeds" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_convergence_interpolates_within_each_seed_range():
    curves = pd.DataFrame({"row": "FPT", "seed": [0, 0, 1, 1], "step": [0, 10, 0, 20], "value": [0.0, 10.0, 0.0, 40.0]})
    line = F.convergence(curves, title="t").axes[0].lines[0]
    assert list(line.get_xdata()) == [0, 10, 20]
    assert list(line.get_ydata()) == [0.0, 15.0, 40.0]  # seed 1 interpolated at 10; seed 0 has no step 20


def test_convergence_log_and_empty(rng):
    ax = F.convergence(_curves(rng), title="t", xlog=True).axes[0]
    assert ax.get_xscale() == "log" and all((line.get_xdata() > 0).all() for line in ax.lines[:3])
    assert _note_only(F.convergence(pd.DataFrame(columns=["row", "seed", "step", "value"]), title="t"))


# ---------------------------------------------------------------- paper vs ours


def test_paper_vs_ours_square_diagonal_and_three_annotations(rng):
    paper = rng.uniform(10, 100, 8)
    ours = paper + rng.normal(0, 2, 8)
    ours[5] = paper[5] - 30
    points = pd.DataFrame({"label": [f"cell {i}" for i in range(8)], "row": ["FPT", "Random"] * 4,
                           "paper": paper, "ours": ours, "low": ours - 1, "high": ours + 1})
    points.loc[6, "paper"] = np.nan
    points.loc[7, ["low", "high"]] = np.nan
    fig = F.paper_vs_ours(points, title="All cells")
    (ax,) = fig.axes
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("paper (%)", "ours (%)", "All cells")
    assert ax.get_xlim() == ax.get_ylim() and ax.get_aspect() == 1.0
    assert sum(len(c.get_offsets()) for c in ax.collections if c.get_label() in ("FPT", "Random")) == 7
    assert "y = x" in [line.get_label() for line in ax.lines]
    notes = _texts(ax)
    assert len(notes) == 3 and "cell 5" in notes and "cell 6" not in notes


def test_paper_vs_ours_nothing_to_compare():
    points = pd.DataFrame({"label": ["a"], "row": ["FPT"], "paper": [np.nan], "ours": [50.0], "low": [np.nan], "high": [np.nan]})
    assert _note_only(F.paper_vs_ours(points, title="t"), "no cells with both values yet")
    assert _note_only(F.paper_vs_ours(pd.DataFrame(), title="t"), "no cells with both values yet")


# ---------------------------------------------------------------- output


def test_save_writes_png_and_svg(tmp_path, bar_frame):
    paths = F.save(F.bars(bar_frame, title="t"), tmp_path / "nested" / "fig1.bars")
    assert [p.name for p in paths] == ["fig1.bars.png", "fig1.bars.svg"]
    png, svg = paths
    assert png.read_bytes().startswith(PNG)
    assert ET.parse(svg).getroot().tag.endswith("svg")


def test_data_uri_png_and_svg(rng):
    fig = F.attention_map(_causal_map(rng, 5), title="t")
    uri = F.data_uri(fig)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]).startswith(PNG)
    svg = F.data_uri(fig, "svg")
    assert svg.startswith("data:image/svg+xml;base64,")
    assert ET.fromstring(base64.b64decode(svg.split(",", 1)[1])).tag.endswith("svg")
    with pytest.raises(FptlabError, match="'gif'"):
        F.data_uri(fig, "gif")


def test_placeholder_figures_save(tmp_path):
    png, _ = F.save(F.param_std_by_layer([], title="t"), tmp_path / "empty")
    assert png.read_bytes().startswith(PNG)


def test_imports_neither_torch_nor_pyplot():
    code = "import sys, fptlab.report.figures; print(sorted({'torch', 'matplotlib.pyplot'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_param_std_by_layer_all_nan_has_no_legend():
    fig = F.param_std_by_layer([{"block": 0, "group": "attention", "kind": "weight", "std": np.nan}], title="t")
    assert not fig.legends and all(not ax.lines for ax in fig.axes)
