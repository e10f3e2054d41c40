"""What an analysis module declares: a paper table (rows x columns of cells, each cell the trials of a
sweep spec selected by axis values, with the paper's published number beside it) or a figure.

    TABLE = Table(
        key="table2", title="Pretraining modality", section="3.2",
        rows=(Row("FPT", {"variant": "fpt"}), Row("Random", {"variant": "random"})),
        columns=(Column("ListOps", {"task": "listops"}), Column("MNIST", {"task": "mnist"})),
        paper=paper_grid('''
            | ListOps | MNIST
            FPT    | 38.4% | 98.0%
            Random | 34.3% | 91.7%
        '''),
        compare=(("FPT", "Random"),),
    )

A cell's trials are the spec's cells whose labels (axis values, e.g. variant, task, seed) or config
values (dotted keys such as "model.depth") equal every key of table.where | row.where | column.where;
all seeds of those cells are pooled. Nothing here touches the database or torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fptlab.errors import FptlabError


@dataclass(frozen=True)
class PaperValue:
    """A number as the paper prints it: `text` verbatim ("89.0% †", "4 × 10^4", "117M"), `value`
    parsed (percent points, counts), `diverged` when marked † (reported before divergence)."""

    text: str
    value: float
    diverged: bool = False


class AnyOf(tuple):
    """A `where` value matching any of several values: `{"task": AnyOf("remote_homology", "peptides")}`
    (a plain list would be taken as one list-valued key such as `train`)."""

    def __new__(cls, *values: Any) -> AnyOf:
        return super().__new__(cls, values)


@dataclass(frozen=True)
class Row:
    label: str
    where: Mapping[str, Any] = field(default_factory=dict)
    literature: str | None = None  # a row the paper quotes from other work: nothing to run
    value: str | None = None  # this row's value kind, when it differs from the table's
    derived: bool = False  # no trials of its own: the table's `post` hook computes it (e.g. a speedup)
    reference: str | None = None  # value steps_to_level: the row whose converged level this row's steps measure


@dataclass(frozen=True)
class Column:
    label: str
    where: Mapping[str, Any] = field(default_factory=dict)
    value: str | None = None  # this column's value kind (e.g. Table 7's train accuracy column)
    literature: str | None = None
    derived: bool = False


@dataclass(frozen=True)
class Table:
    """One paper table. `value` names how a trial becomes a number (`fptlab.report.values.VALUES`);
    `compare` lists row pairs tested column by column (Welch's t-test, CI of the difference);
    `literature` marks single cells quoted from other work; `post` may add derived cells (ratios)."""

    key: str
    title: str
    section: str
    rows: tuple[Row, ...]
    columns: tuple[Column, ...]
    paper: Mapping[tuple[str, str], PaperValue] = field(default_factory=dict)
    spec: str | None = ""  # sweep spec name (experiments/<spec>.toml); "" = key; None = no runs (descriptive)
    value: str = "test_accuracy"
    where: Mapping[str, Any] = field(default_factory=dict)
    compare: tuple[tuple[str, str], ...] = ()
    literature: Mapping[tuple[str, str], str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    post: Callable[[Any], None] | None = None
    curves: bool = False  # draw convergence curves for every column in full reports
    tuned: bool = False  # a tuned comparison: its spec has a [tune] table; each arm at its own best value (`fptlab.report.tuned`)
    offline_only: bool = False  # its spec exists only as experiments/offline/<spec>.toml (read with or without --offline)
    kind: str = "table"

    @property
    def spec_name(self) -> str | None:
        return None if self.spec is None else (self.spec or self.key)

    @property
    def number(self) -> str:
        return self.key.removeprefix("table").removeprefix("figure")

    def __post_init__(self) -> None:
        for what, labels in (("row", [r.label for r in self.rows]), ("column", [c.label for c in self.columns])):
            dupes = sorted({x for x in labels if labels.count(x) > 1})
            if dupes:
                raise FptlabError(f"{self.key}: duplicate {what} labels {dupes}.")
        known_rows, known_cols = {r.label for r in self.rows}, {c.label for c in self.columns}
        for r, c in [*self.paper, *self.literature]:
            if r not in known_rows or c not in known_cols:
                raise FptlabError(f"{self.key}: paper/literature cell ({r!r}, {c!r}) is not a row x column of the table.")
        for a, b in self.compare:
            if a not in known_rows or b not in known_rows:
                raise FptlabError(f"{self.key}: compare ({a!r}, {b!r}) names a row the table lacks.")


@dataclass(frozen=True)
class Figure:
    """One paper figure, drawn by `draw(context) -> list[(caption, matplotlib Figure)]`, reading the
    spec's cells selected by `panels` (label -> where)."""

    key: str
    title: str
    section: str
    draw: Callable[[Any], list[tuple[str, Any]]]
    spec: str = ""
    panels: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    kind: str = "figure"

    @property
    def spec_name(self) -> str:
        return self.spec or self.key

    @property
    def number(self) -> str:
        return self.key.removeprefix("figure")


# ---- what most tables share: the paper's task columns, rows by the spec's variant ---------------------
# The paper's column headers for its tasks (it abbreviates differently from table to table) -> the task
# axis value. Homology columns also select `peptides`, the offline stand-in of the offline counterparts.
TASK_COLUMNS: dict[str, Any] = {
    "Bit Memory": "bit_memory", "Memory": "bit_memory", "XOR": "bit_xor", "ListOps": "listops", "MNIST": "mnist",
    "CIFAR-10": "cifar10", "C10": "cifar10", "C10 LRA": "cifar10_lra", "Homology": AnyOf("remote_homology", "peptides"),
}


def task_columns(*labels: str) -> tuple[Column, ...]:
    """The task columns under the paper's own headers, in its order: `task_columns("Memory", "XOR", ...)`."""
    unknown = [label for label in labels if label not in TASK_COLUMNS]
    if unknown:
        raise FptlabError(f"task_columns: unknown header(s) {unknown}; known: {', '.join(TASK_COLUMNS)}.")
    return tuple(Column(label, {"task": TASK_COLUMNS[label]}) for label in labels)


def variant_rows(*pairs: tuple[str, str]) -> tuple[Row, ...]:
    """Rows by the spec's `variant` axis: `variant_rows(("FPT", "fpt"), ("Random", "random"))`."""
    return tuple(Row(label, {"variant": variant}) for label, variant in pairs)


# ---- the paper's numbers, transcribed ---------------------------------------------------------------
_SCALE = {"K": 1e3, "M": 1e6, "B": 1e9}


def parse_paper_value(text: str) -> PaperValue | None:
    """"38.4%" -> 38.4; "89.0% †" -> diverged; "4 × 10^4" / "4e4" -> 40000; "117M" -> 1.17e8;
    "-" or "" -> None (the paper has no number there)."""
    raw = text.strip()
    if raw in ("", "-", "—", "–"):
        return None
    diverged = "†" in raw
    clean = raw.replace("†", "").replace("%", "").replace(",", "").replace("×", "x").strip()
    m = re.fullmatch(r"([\d.]+)\s*x\s*10\^\s*(\d+)", clean)
    if m:
        return PaperValue(raw, float(m.group(1)) * 10 ** int(m.group(2)), diverged)
    m = re.fullmatch(r"([\d.]+)\s*([KMB])", clean)
    if m:
        return PaperValue(raw, float(m.group(1)) * _SCALE[m.group(2)], diverged)
    m = re.fullmatch(r"([\d.]+)\s*(?:–|-)\s*([\d.]+)\s*x?", clean)  # a range such as "500 – 2000×": its low end
    if m:
        return PaperValue(raw, float(m.group(1)), diverged)
    m = re.fullmatch(r"([\d.]+)\s*x", clean)  # a speedup such as "40x"
    if m:
        return PaperValue(raw, float(m.group(1)), diverged)
    try:
        return PaperValue(raw, float(clean), diverged)
    except ValueError:
        raise FptlabError(f"Cannot read paper value {text!r}: expected e.g. 38.4%, 89.0% †, 4 × 10^4, 117M or -.") from None


def paper_grid(text: str) -> dict[tuple[str, str], PaperValue]:
    """A table as `|`-separated text: the first line is the header (its first cell, the row-label
    column, may be empty), each following line a row label and one value per column."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    header = [c.strip() for c in lines[0].split("|")]
    columns = header[1:]
    out: dict[tuple[str, str], PaperValue] = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.split("|")]
        if len(cells) != len(header):
            raise FptlabError(f"paper_grid: row {cells[0]!r} has {len(cells) - 1} values for {len(columns)} columns.")
        for column, cell in zip(columns, cells[1:]):
            value = parse_paper_value(cell)
            if value is not None:
                out[(cells[0], column)] = value
    return out


def finite(x: float | None) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))
