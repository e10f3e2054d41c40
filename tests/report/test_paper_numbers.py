"""Every analysis module's transcribed paper numbers match the paper's text, cell by cell, by the
paper's own row and column labels, and every number the paper prints for a table is transcribed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fptlab.report import catalog
from fptlab.report.declare import Table, parse_paper_value

DATA = Path(__file__).parent / "data" / "paper-tables.tsv"
PAPER = Path(__file__).resolve().parents[3] / "shared" / "paper" / "fpt-paper.md"


def clean(text: str) -> str:
    text = re.sub(r"</?(b|sup)>", "", text).replace("$", "").replace("\\times", "×")
    text = re.sub(r"_\{(\w+)\}", r"_\1", text)  # $n_{layers}$ -> n_layers
    return re.sub(r"\s+", " ", text).strip()


def paper_tables(text: str) -> dict[int, dict[tuple[str, str], str]]:
    tables: dict[int, dict[tuple[str, str], str]] = {}
    number, header = None, None
    for line in text.splitlines():
        m = re.fullmatch(r"## Table (\d+)", line)
        if m:
            number, header = int(m.group(1)), None
            tables[number] = {}
        elif "\t" in line and number is not None:
            cells = [clean(c) for c in line.split("\t")]
            if header is None:
                header = cells
                continue
            for column, value in zip(header[1:], cells[1:]):
                if value not in ("-", ""):
                    tables[number][(cells[0], column)] = value
    return tables


PAPER_TABLES = paper_tables(DATA.read_text())
MODULES = [t for t in catalog.items().values() if isinstance(t, Table) and t.key.startswith("table")]


def test_the_vendored_tables_are_the_papers(tmp_path: Path) -> None:
    if not PAPER.is_file():
        pytest.skip(f"the paper text is not beside this checkout ({PAPER})")
    lines = PAPER.read_text().splitlines()
    tab_lines = [ln for ln in lines if "\t" in ln]
    vendored = [ln for ln in DATA.read_text().splitlines() if "\t" in ln]
    assert vendored == [ln for ln in tab_lines if ln in vendored] and set(vendored) <= set(tab_lines)
    assert sorted(PAPER_TABLES) == list(range(1, 23))


@pytest.mark.parametrize("table", MODULES, ids=lambda t: t.key)
def test_module_numbers_match_the_paper(table: Table) -> None:
    printed = PAPER_TABLES[int(re.match(r"\d+", table.number).group())]  # table1-tuned prints Table 1's
    if table.tuned:  # a tuned table carries the paper's numbers for the rows it tunes, all of them
        printed = {k: v for k, v in printed.items() if k[0] in {r.label for r in table.rows}}
    transcribed = {key: clean(v.text) for key, v in table.paper.items()}
    wrong = {k: (v, printed.get(k)) for k, v in transcribed.items() if printed.get(k) != v}
    assert not wrong, f"{table.key}: transcribed (ours, paper's): {wrong}"
    missing = sorted(set(printed) - set(transcribed))
    assert not missing, f"{table.key}: the paper prints these cells, the module lacks them: {missing}"
    for key, value in table.paper.items():
        assert parse_paper_value(printed[key]).value == value.value
