"""The figure modules (analysis/figure1.py, figure3-6.py) on small databases built through the store API,
with real artifact files in the formats fptlab.artifacts writes: what each draws (panel count, axes,
image data equal to the stored attention, the causal triangle, one line per series), what a missing or
unreachable artifact gives (a note naming the trial, no exception), and the PNG/SVG files `fptlab
report --figure N --out FILE` writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.colors import to_hex
from matplotlib.patches import Rectangle
from typer.testing import CliRunner

from fptlab.cli import app
from fptlab.report.engine import ReportOptions, make_report
from fptlab.report.figures import PALETTE
from fptlab.store import Store
from tests.report.builders import record, register, spec_cells, write_attention, write_param_stats

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
N, T = 4, 10  # probe examples; Bit XOR sequence length (5 + 5 bits)


def _causal_maps(rng: np.random.Generator, n: int, t: int, causal: bool = True) -> np.ndarray:
    """(n, t, t) rows of probabilities, zero on keys after the query when causal."""
    raw = rng.random((n, t, t)) + 0.05
    if causal:
        raw = np.tril(raw)
    return raw / raw.sum(axis=-1, keepdims=True)


@pytest.fixture()
def db(tmp_path: Path, data_dir: Path) -> tuple[Store, str, dict]:
    """Table 2's trials registered (Figures 3-6 read the same hashes); nothing run yet.
    Returns the store, its URL and {(variant, task): [hash by seed]}."""
    url = f"sqlite:///{tmp_path / 'f.db'}"
    store = Store(url)
    store.ensure_schema()
    cells = spec_cells(EXPERIMENTS / "table2.toml", data_dir)
    register(store, "table2", [cfg for _, cfg in cells])
    by: dict = {}
    for labels, cfg in sorted(cells, key=lambda lc: lc[0].get("seed", 0)):
        by.setdefault((labels.get("variant"), labels.get("task")), []).append(cfg.hash)
    return store, url, by


def _report(key: str, store: Store, data_dir: Path, offline: bool = False, *, storage: Path) -> object:
    options = ReportOptions(experiments=EXPERIMENTS, data_dir=data_dir, offline=offline, storage=storage)
    [out] = make_report([key], store, options)
    return out


def _with_maps(store: Store, hashes: list[str], maps: list[np.ndarray], folder: Path, inputs: np.ndarray | None = None,
               *, storage: Path) -> None:
    for i, (h, att) in enumerate(zip(hashes, maps, strict=True)):
        record(store, h, accuracy=1.0)
        store.add_artifact(h, "attention", *write_attention(folder / f"run{i}", att, inputs, storage=storage))


def _images(fig) -> list:
    return [ax for ax in fig.axes if ax.images]


@pytest.mark.parametrize("spec", ["figure3", "figure4", "figure5", "figure6"])
def test_figure_specs_select_table2_trials(spec: str, db: tuple, data_dir: Path) -> None:
    _, _, by = db
    table2 = {h for hashes in by.values() for h in hashes}
    ours = {cfg.hash for _, cfg in spec_cells(EXPERIMENTS / f"{spec}.toml", data_dir)}
    assert ours and ours <= table2  # nothing new trains: the figures read Table 2's runs


def test_figure3_draws_the_first_seed_and_the_mean_over_seeds(db: tuple, tmp_path: Path, data_dir: Path) -> None:
    store, _, by = db
    rng = np.random.default_rng(0)
    maps = [_causal_maps(rng, N, T) for _ in range(3)]
    bits = rng.integers(0, 2, size=(N, T, 1)).astype(np.float32)
    _with_maps(store, by[("fpt", "bit_xor")], maps, tmp_path, inputs=bits, storage=tmp_path)
    out = _report("figure3", store, data_dir, storage=tmp_path)
    assert out.title == "Figure 3: First-layer attention of FPT on Bit XOR"
    assert len(out.figures) == 2
    (grid_caption, grid), (mean_caption, single) = out.figures
    panels = _images(grid)
    assert len(panels) == N
    for k, ax in enumerate(panels):
        data = ax.images[0].get_array()
        np.testing.assert_allclose(data.filled(0), maps[0][k], atol=1e-6)  # seed 0, example k
        assert data.mask[np.triu_indices(T, 1)].all() and not data.mask[np.tril_indices(T)].any()
        first, second = "".join(str(int(b)) for b in bits[k, :5, 0]), "".join(str(int(b)) for b in bits[k, 5:, 0])
        assert ax.get_title() == f"example {k + 1}: {first} ⊕ {second}"
    assert panels[0].get_ylabel() == "query (output position)"
    assert panels[-1].get_xlabel() == "key (input position)"
    [ax] = _images(single)
    expected = np.mean([m.mean(axis=0) for m in maps], axis=0)
    np.testing.assert_allclose(ax.images[0].get_array().filled(0), expected, atol=1e-6)
    assert ax.images[0].get_array().mask[np.triu_indices(T, 1)].all()
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("key (input position)", "query (output position)")
    assert "mean over 3 seeds" in ax.get_title()
    mass = np.mean([expected[5 + i, i] + expected[5 + i, 5 + i] for i in range(5)])
    assert f"puts {mass:.2f} of its attention on its two XOR partners" in mean_caption
    assert "inputs 0-4 are the first bitstring, 5-9 the second" in grid_caption and "causal" in grid_caption
    assert [line.get_xdata()[0] for line in ax.lines if line.get_xdata()[0] == line.get_xdata()[-1]] == [4.5]
    assert not [n for n in out.notes if "not finished" in n]


def test_figure3_missing_and_unreachable_artifacts_are_notes(db: tuple, tmp_path: Path, data_dir: Path) -> None:
    store, _, by = db
    s0, s1, s2 = by[("fpt", "bit_xor")]
    record(store, s0, accuracy=1.0)  # finished, no artifact
    record(store, s1, accuracy=1.0)
    gone = tmp_path / "elsewhere" / "attention.safetensors"
    store.add_artifact(s1, "attention", "elsewhere/attention.safetensors", {"examples": N})  # storage not mounted here
    maps = _causal_maps(np.random.default_rng(1), N, T)
    _with_maps(store, [s2], [maps], tmp_path, storage=tmp_path)
    out = _report("figure3", store, data_dir, storage=tmp_path)
    assert any(f"trial {s0[:12]}" in n and "without an attention artifact" in n for n in out.notes)
    assert any(f"trial {s1[:12]}" in n and str(gone) in n and "not reachable" in n for n in out.notes)
    (_, grid), (_, single) = out.figures
    assert "seed 2" in grid.get_suptitle() and len(_images(grid)) == N
    np.testing.assert_allclose(_images(single)[0].images[0].get_array().filled(0), maps.mean(axis=0), atol=1e-6)
    assert "1 seed" in _images(single)[0].get_title()


def test_figure3_nothing_finished_is_a_placeholder_and_a_fill_command(db: tuple, tmp_path: Path, data_dir: Path) -> None:
    store, _, _ = db
    out = _report("figure3", store, data_dir, storage=tmp_path)
    [(caption, fig)] = out.figures
    assert "no attention maps yet" in caption and not _images(fig)
    assert any("3 trial(s) not finished" in n and "fptlab sweep" in n for n in out.notes)


def test_figure3_offline_minilm_is_not_masked(tmp_path: Path, data_dir: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'o.db'}")
    store.ensure_schema()
    cells = sorted(spec_cells(EXPERIMENTS / "offline" / "figure3.toml", data_dir), key=lambda lc: lc[0]["seed"])
    register(store, "figure3-offline", [cfg for _, cfg in cells])
    maps = [_causal_maps(np.random.default_rng(s), N, T, causal=False) for s in range(3)]
    _with_maps(store, [cfg.hash for _, cfg in cells], maps, tmp_path, storage=tmp_path)
    out = _report("figure3", store, data_dir, offline=True, storage=tmp_path)
    (caption, grid), _ = out.figures
    for k, ax in enumerate(_images(grid)):
        data = ax.images[0].get_array()
        assert not np.ma.getmaskarray(data).any()
        np.testing.assert_allclose(data, maps[0][k], atol=1e-6)
    assert "(minilm) attends both ways" in caption


def test_figure4_marks_the_strings_and_names_the_recalled_one(db: tuple, tmp_path: Path, data_dir: Path) -> None:
    store, _, by = db
    rng = np.random.default_rng(2)
    t = 120  # 5 strings of 1000 bits at 50 bits per token, then the query
    strings = rng.choice([-1.0, 1.0], size=(N, 5, 1000))
    which = [2, 0, 4, 1]
    query = strings[np.arange(N), which] * (rng.random((N, 1000)) >= 0.5)
    inputs = np.concatenate([strings.reshape(N, -1), query], axis=1).reshape(N, t, 50)
    maps = [_causal_maps(rng, N, t) for _ in range(3)]
    _with_maps(store, by[("fpt", "bit_memory")], maps, tmp_path, inputs=inputs, storage=tmp_path)
    out = _report("figure4", store, data_dir, storage=tmp_path)
    (caption, grid), (_, single) = out.figures
    panels = _images(grid)
    assert [ax.get_title() for ax in panels] == [f"example {k + 1}: query = string {w + 1}" for k, w in enumerate(which)]
    for ax in [*panels, *_images(single)]:
        assert list(ax.get_xticks()) == [0, 20, 40, 60, 80, 100, 119]
    assert "inputs 0-99 are the 5 strings" in caption and "100-119 the masked query" in caption
    np.testing.assert_allclose(_images(single)[0].images[0].get_array().filled(0),
                               np.mean([m.mean(axis=0) for m in maps], axis=0), atol=1e-6)
    per_string = [m[k, 100:, :100].reshape(20, 5, 20).sum(axis=-1).mean(axis=0) for m in maps for k in range(N)]
    recalled = np.mean([p[w] for p, w in zip(per_string, which * 3, strict=True)])
    others = np.mean([np.delete(p, w).mean() for p, w in zip(per_string, which * 3, strict=True)])
    assert f"put {recalled:.2f} of their attention on the recalled string and {others:.2f} on each other string " \
           f"(mean over {3 * N} examples)" in out.figures[1][0]


def test_figure5_compares_partner_attention_with_fpt(db: tuple, tmp_path: Path, data_dir: Path) -> None:
    store, _, by = db
    rng = np.random.default_rng(3)
    random_maps = [_causal_maps(rng, N, T) for _ in range(3)]
    _with_maps(store, by[("random", "bit_xor")], random_maps, tmp_path / "random", storage=tmp_path)
    out = _report("figure5", store, data_dir, storage=tmp_path)
    assert len(out.figures) == 2
    assert any("FPT's maps (Figure 3's runs) are not in this database" in n for n in out.notes)

    fpt = np.zeros((N, T, T))
    fpt[:, :5, :5] = np.eye(5)  # first string: attend to self
    for i in range(5):
        fpt[:, 5 + i, i] = fpt[:, 5 + i, 5 + i] = 0.5  # outputs: all weight on the two XOR partners
    _with_maps(store, by[("fpt", "bit_xor")], [fpt] * 3, tmp_path / "fpt", storage=tmp_path)
    out = _report("figure5", store, data_dir, storage=tmp_path)
    mean = np.mean([m.mean(axis=0) for m in random_maps], axis=0)
    mass = np.mean([mean[5 + i, i] + mean[5 + i, 5 + i] for i in range(5)])
    [note] = [n for n in out.notes if "Attention on the XOR partners" in n]
    assert f"random {mass:.2f} vs FPT 1.00" in note and "weaker than FPT's" in note


def _stats_rows(rng: np.random.Generator, weight: float, bias: float, spread: float) -> list[dict]:
    return [{"block": b, "group": g, "kind": k, "numel": 100, "mean": 0.0,
             "std": (weight if k == "weight" else bias) + spread * rng.random()}
            for b in range(12) for g in ("attention", "feedforward") for k in ("weight", "bias")]


def test_figure6_pretrained_and_random_series_against_the_default_init(db: tuple, tmp_path: Path, data_dir: Path) -> None:
    store, _, by = db
    rng = np.random.default_rng(4)
    pretrained = _stats_rows(rng, 0.1, 0.05, 0.1)
    random_runs = [_stats_rows(rng, 0.02, 0.0, 0.001) for _ in range(2)]
    for i, (h, rows) in enumerate(zip(by[("fpt", "bit_xor")][:2], [pretrained, pretrained], strict=True)):
        record(store, h, accuracy=1.0)
        store.add_artifact(h, "param_stats", *write_param_stats(tmp_path / f"p{i}", "gpt2", rows, storage=tmp_path))
    for i, (h, rows) in enumerate(zip(by[("random", "bit_xor")][:2], random_runs, strict=True)):
        record(store, h, accuracy=1.0)
        store.add_artifact(h, "param_stats", *write_param_stats(tmp_path / f"r{i}", "gpt2", rows, storage=tmp_path))
    h3 = by[("random", "bit_xor")][2]
    record(store, h3, accuracy=1.0)  # finished, its statistics never written
    out = _report("figure6", store, data_dir, storage=tmp_path)
    [(caption, fig)] = out.figures
    weights, biases = fig.axes[:2]
    assert (weights.get_title(), biases.get_title()) == ("weights", "biases")
    assert weights.get_xlabel() == "layer (block index)" and weights.get_ylabel() == "standard deviation"
    for ax, kind, ref in ((weights, "weight", 0.02), (biases, "bias", 0.0)):
        series = {line.get_label(): line for line in ax.lines if not line.get_label().startswith("default")}
        assert set(series) == {"pretrained · attention", "pretrained · feedforward", "random · attention", "random · feedforward"}
        want = np.mean([[r["std"] for r in rows if r["group"] == "attention" and r["kind"] == kind] for rows in random_runs], axis=0)
        np.testing.assert_allclose(series["random · attention"].get_ydata(), want)
        [default] = [line for line in ax.lines if line.get_label() == "default init"]
        assert default.get_ydata()[0] == ref
    assert "pretrained: 2 runs; random: 2 runs" in caption
    assert any(f"trial {h3[:12]}" in n and "without a param_stats artifact" in n for n in out.notes)


def test_figure1_bars_are_table1s_cells(tmp_path: Path, data_dir: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 't1.db'}")
    store.ensure_schema()
    cells = spec_cells(EXPERIMENTS / "table1.toml", data_dir)
    register(store, "table1", [cfg for _, cfg in cells])
    accs = {"bit_memory": 0.97, "bit_xor": 0.97, "listops": 0.38, "mnist": 0.98, "cifar10": 0.70, "cifar10_lra": 0.40,
            "remote_homology": 0.12}
    for labels, cfg in cells:
        if labels["variant"] == "fpt":
            record(store, cfg.hash, accuracy=accs[labels["task"]] + 0.01 * labels["seed"])
        elif (labels["variant"], labels["task"]) == ("full", "bit_memory"):
            record(store, cfg.hash, accuracy=0.99)
    out = _report("figure1", store, data_dir, storage=tmp_path)
    [(caption, fig)] = out.figures
    ax = fig.axes[0]
    heights = sorted(round(p.get_height(), 6) for p in ax.patches if isinstance(p, Rectangle))
    assert heights == sorted([round(100 * a + 1, 6) for a in accs.values()] + [99.0])  # 7 FPT bars + Full · Bit Memory
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("lit.") == 4 and texts.count("n/a") == 3 + 6  # Full: 3 tasks unrun; LSTM: 6
    [paper] = [c for c in ax.collections if isinstance(c, LineCollection) and c.get_label() == "paper"]
    assert len(paper.get_segments()) == 21  # the paper's number on every cell
    assert ax.get_ylabel() == "test accuracy (%)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Bit Memory", "XOR", "ListOps", "MNIST", "CIFAR-10", "C10 LRA", "Homology"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["FPT", "Full", "LSTM", "paper"]
    assert "Full · ListOps: Tay et al. (2020)" in caption and "LSTM · Homology: Rao et al. (2019)" in caption


def test_figure1_offline_has_no_table1_and_says_so(tmp_path: Path, data_dir: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'e.db'}")
    store.ensure_schema()
    out = _report("figure1", store, data_dir, offline=True, storage=tmp_path)
    [(_, fig)] = out.figures
    assert not fig.axes[0].axison  # a placeholder
    assert any("no offline counterpart" in n for n in out.notes)


def test_figure1_with_nothing_run_keeps_one_colour_per_row(tmp_path: Path, data_dir: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'e.db'}")
    store.ensure_schema()
    [(_, fig)] = _report("figure1", store, data_dir, storage=tmp_path).figures
    legend = fig.axes[0].get_legend()
    colours = {t.get_text(): to_hex(h.get_facecolor()) for h, t in zip(legend.legend_handles, legend.get_texts(), strict=True)
               if t.get_text() != "paper"}
    assert colours == {"FPT": PALETTE[0].lower(), "Full": PALETTE[1].lower(), "LSTM": PALETTE[2].lower()}


def test_cli_writes_png_and_svg_figure_files(db: tuple, tmp_path: Path) -> None:
    store, url, by = db
    _with_maps(store, by[("fpt", "bit_xor")], [_causal_maps(np.random.default_rng(5), N, T)] * 3, tmp_path / "runs", storage=tmp_path)
    target = tmp_path / "out" / "r.md"
    result = CliRunner().invoke(app, ["report", "--figure", "3", "--out", str(target), "--db", url,
                                      "--experiments", str(EXPERIMENTS), "--storage", str(tmp_path)])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "out" / "r-figures"
    assert sorted(p.name for p in folder.iterdir()) == ["figure3-1.png", "figure3-1.svg", "figure3-2.png", "figure3-2.svg"]
    assert (folder / "figure3-1.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "<svg" in (folder / "figure3-2.svg").read_text()[:2000]
