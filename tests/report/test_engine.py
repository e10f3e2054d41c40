"""The report engine on a small database built through the store API: cell statistics beside the
paper's numbers, Welch comparisons, diverged/failed/running/missing cells, fill commands, steps to
converge, and every output format, through the library and through `fptlab report`."""

from __future__ import annotations

import math
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fptlab.cli import app
from fptlab.report import catalog, render
from fptlab.report.engine import ReportOptions, make_report
from fptlab.store import Store
from tests.report.builders import VERSIONS, record, register, spec_cells

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
ACC = {  # (variant, task) -> per-seed final accuracies
    ("fpt", "listops"): [0.40, 0.38, 0.39],
    ("random", "listops"): [0.30, 0.31, 0.29],
    ("fpt", "bit_xor"): [1.0, 1.0, 1.0],
}


@pytest.fixture()
def db(tmp_path: Path, data_dir: Path) -> tuple[Store, str, dict]:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = Store(url)
    store.ensure_schema()
    cells = spec_cells(EXPERIMENTS / "table2.toml", data_dir)
    register(store, "table2", [cfg for _, cfg in cells])
    by = {}
    for labels, cfg in cells:
        by.setdefault((labels.get("variant"), labels.get("task")), []).append(cfg.hash)
    for key, accs in ACC.items():
        for h, acc in zip(by[key], accs):
            record(store, h, accuracy=acc, curve=[(100, acc / 2), (200, acc)])
    random_xor = by[("random", "bit_xor")]
    record(store, random_xor[0], status="diverged", accuracy=0.6)
    record(store, random_xor[1], status="failed")
    record(store, random_xor[2], status="running")
    return store, url, by


def table2(store: Store, url: str) -> object:
    [out] = make_report(["table2"], store, ReportOptions(db_url=url, experiments=EXPERIMENTS, plots=False))
    return out.result


def test_cells_carry_seed_statistics_and_the_papers_number(db: tuple) -> None:
    store, url, _ = db
    result = table2(store, url)
    cell = result.cell("FPT", "ListOps")
    assert cell.stat.n == 3 and cell.state == "done"
    assert cell.stat.mean == pytest.approx(39.0)
    assert cell.stat.std == pytest.approx(1.0)
    assert cell.stat.low < 39.0 < cell.stat.high
    assert cell.stat.high - 39.0 == pytest.approx(4.303 * 1.0 / math.sqrt(3), rel=1e-3)  # t(0.975, 2) = 4.303
    assert cell.paper.value == 38.4 and cell.difference() == pytest.approx(0.6)
    assert cell.ours() == "39.0% ± 1.0 (n=3)"


def test_welch_comparison_between_rows(db: tuple) -> None:
    store, url, _ = db
    result = table2(store, url)
    [comp] = [c for c in result.comparisons if c.column == "ListOps" and c.b == "Random"]
    assert comp.result.diff == pytest.approx(9.0)
    assert 0 < comp.result.p < 0.01  # 39 ± 1 vs 30 ± 1 over three seeds each
    assert comp.result.low < 9.0 < comp.result.high
    assert any("FPT − Random, ListOps: +9.0 pts" in line for line in render.comparison_lines(result))
    columns, rows = render.comparison_grid(result)
    assert columns == ["XOR", "ListOps"]  # only columns where some pair has values on both sides
    assert rows[0][0] == "FPT − Random" and rows[0][1][1].startswith("+9.0 [+")


def test_diverged_failed_running_and_missing_cells_are_shown_as_such(db: tuple) -> None:
    store, url, _ = db
    result = table2(store, url)
    xor = result.cell("Random", "XOR")
    assert xor.diverged == 1 and xor.state == "partial"
    assert xor.ours().startswith("60.0%†") and "failed 1" in xor.ours() and "running 1" in xor.ours()
    empty = result.cell("ViT", "Homology")
    assert empty.state == "empty" and empty.ours() == "queued 3"  # registered by a sweep, never run
    assert result.unfinished["failed"] == 1 and result.unfinished["running"] == 1
    assert result.fill == [f"fptlab sweep {EXPERIMENTS / 'table2.toml'} --db {url}",
                           f"fptlab sweep {EXPERIMENTS / 'table2.toml'} --db {url} --retry-failed"]
    assert sum(result.unfinished.values()) == len(result.provenance.hashes) - 10  # 9 finished + 1 diverged


def test_provenance_names_versions_devices_hosts_and_sources(db: tuple) -> None:
    store, url, _ = db
    p = table2(store, url).provenance
    assert p.versions == {f"fptlab {VERSIONS['fptlab']} · torch {VERSIONS['torch']} · transformers {VERSIONS['transformers']}": 10}
    assert p.devices == {"cuda:0": 10} and p.hosts == {"node-a": 10}
    assert p.sources["listops"] == ["lra"] and p.sources["remote_homology"] == ["tape"]
    assert not p.offline


def test_formats(db: tuple, tmp_path: Path) -> None:
    store, url, _ = db
    result = table2(store, url)
    md = render.to_markdown(result)
    assert "| FPT | " in md and "39.0% ± 1.0 (n=3) · paper 38.4% (+0.6 pts)" in md
    csv_text = render.to_csv([result])
    assert csv_text.splitlines()[0].startswith("artifact,row,column")
    assert len(csv_text.splitlines()) == 1 + 4 * 7
    tex = render.to_latex(result)
    assert r"\begin{tabular}{lccccccc}" in tex and r"39.0\% $\pm$ 1.0 (n=3) (38.4\%)" in tex


def test_empty_database_is_not_an_error(tmp_path: Path) -> None:
    runner = CliRunner(env={"COLUMNS": "220"})
    out = runner.invoke(app, ["report", "--table", "2", "--db", f"sqlite:///{tmp_path / 'none.db'}", "--experiments", str(EXPERIMENTS)])
    assert out.exit_code == 0, out.output
    assert "missing 3" in out.output and "fptlab sweep" in out.output
    assert not (tmp_path / "none.db").exists()  # reading creates nothing


def test_unknown_table_is_an_error_with_a_suggestion() -> None:
    out = CliRunner().invoke(app, ["report", "quickstrt"])
    assert out.exit_code == 1
    assert "Unknown table or figure 'quickstrt'. Did you mean 'quickstart'?" in out.output


def test_cli_html_page_is_well_formed_and_self_contained(db: tuple, tmp_path: Path) -> None:
    _, url, _ = db
    target = tmp_path / "report.html"
    out = CliRunner().invoke(app, ["report", "--table", "2", "--db", url, "--out", str(target), "--experiments", str(EXPERIMENTS)])
    assert out.exit_code == 0, out.output
    text = target.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert_balanced_html(text)
    assert "data:image/png;base64," in text  # the ours-vs-paper scatter, embedded
    assert 'src="http' not in text and "<link" not in text  # nothing fetched from elsewhere
    assert "39.0% ± 1.0 (n=3)" in text and "fptlab 0.3.0 · torch 2.13.0" in text


def test_catalog_lists_every_module_once() -> None:
    items = catalog.items()
    assert "table2" in items and "quickstart" in items
    keys = list(items)
    assert keys.index("table2") < keys.index("quickstart")


VOID = {"meta", "img", "br", "hr", "link", "input", "col", "source", "wbr"}


class _Balance(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def assert_balanced_html(text: str) -> None:
    """Well-formed HTML: every non-void element closed in order, nothing left open."""
    checker = _Balance()
    checker.feed(text)
    checker.close()
    assert not checker.errors, checker.errors[:5]
    assert checker.stack == [], checker.stack


def test_offline_counterparts_show_no_differences_to_the_paper(tmp_path: Path, data_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    store = Store(url)
    store.ensure_schema()
    cells = spec_cells(EXPERIMENTS / "offline" / "table2.toml", data_dir)
    register(store, "table2-offline", [cfg for _, cfg in cells])
    fpt_xor = [cfg.hash for labels, cfg in cells if labels.get("variant") == "fpt" and labels.get("task") == "bit_xor"]
    for h in fpt_xor:
        record(store, h, accuracy=1.0, curve=[(100, 1.0)])
    [out] = make_report(["table2"], store, ReportOptions(db_url=url, experiments=EXPERIMENTS, offline=True))
    cell = out.result.cell("FPT", "XOR")
    assert cell.stat.mean == 100.0 and cell.paper.value == 100.0
    assert math.isnan(cell.difference()) and render.diff_text(cell) == ""
    assert out.result.provenance.offline and out.result.fill[0].startswith("FPTLAB_OFFLINE=1 fptlab sweep")
    assert not any("against the paper" in caption for caption, _ in out.figures)  # no ours-vs-paper scatter offline
