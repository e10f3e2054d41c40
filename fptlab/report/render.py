"""TableResult -> text: a rich terminal table, Markdown, CSV (long form: one line per cell) or LaTeX.
Every format carries ours (mean ± std, n), the paper's number, the difference, the comparisons, what
is missing with the command that fills it, and the provenance line."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from fptlab.report.build import CellResult, TableResult
from fptlab.report.stats import format_p
from fptlab.report.values import format_value

CSV_FIELDS = (
    "artifact", "row", "column", "unit", "state", "n", "expected", "mean", "std", "ci_low", "ci_high", "diverged",
    "censored", "paper", "paper_text", "difference", "statuses", "config_hashes", "offline",
)


def paper_text(cell: CellResult) -> str:
    if cell.paper is None:
        return "—"
    return cell.paper.text + (f" [{cell.literature}]" if cell.literature else "")


def diff_text(cell: CellResult) -> str:
    d = cell.difference()
    if math.isnan(d):
        return ""
    if cell.unit == "%":
        return f"{d:+.1f} pts"
    if cell.unit == "x":
        return f"{d:+.1f}x"
    if cell.unit in ("params", "steps"):
        from fptlab.report.values import format_count

        return ("+" if d >= 0 else "-") + format_count(abs(d))
    return f"{d:+.3g}"


def comparison_lines(result: TableResult) -> list[str]:
    out = []
    for comp in result.comparisons:
        d = comp.result
        unit = "pts" if result.cells[(comp.a, comp.column)].unit == "%" else ""
        ci = "" if math.isnan(d.low) else f" [95% CI {d.low:+.1f}, {d.high:+.1f}]"
        out.append(
            f"{comp.a} − {comp.b}, {comp.column}: {d.diff:+.1f} {unit}{ci}, Welch p {_p(d.p)} (n = {d.n_a}, {d.n_b})".replace("  ", " ")
        )
    return out


def comparison_grid(result: TableResult, sep: str = " ") -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Comparisons as a grid: the columns compared, then one row per pair ("FPT − Random") whose cells
    read "+9.0 [+4.2, +13.8] p = 0.008", parts joined by `sep` (empty where a side has no values)."""
    columns = [c.label for c in result.table.columns if any(comp.column == c.label for comp in result.comparisons)]
    pairs = list(dict.fromkeys((comp.a, comp.b) for comp in result.comparisons))
    by = {(comp.a, comp.b, comp.column): comp.result for comp in result.comparisons}
    rows = []
    for a, b in pairs:
        cells = []
        for column in columns:
            d = by.get((a, b, column))
            if d is None:
                cells.append("")
                continue
            parts = [f"{d.diff:+.1f}", "" if math.isnan(d.low) else f"[{d.low:+.1f}, {d.high:+.1f}]", f"p {_p(d.p)}"]
            cells.append(sep.join(p for p in parts if p))
        rows.append((f"{a} − {b}", cells))
    return columns, rows


def _p(p: float) -> str:
    text = format_p(p)
    return text if text.startswith("<") else f"= {text}"


def status_lines(result: TableResult) -> list[str]:
    lines = []
    if result.unfinished:
        total = sum(result.unfinished.values())
        parts = ", ".join(f"{s} {n}" for s, n in sorted(result.unfinished.items()))
        lines.append(f"{total} of {len(result.provenance.hashes)} trials not finished ({parts}). Fill with:")
        lines.extend(f"    {cmd}" for cmd in result.fill)
    elif result.provenance.hashes:
        lines.append(f"all {len(result.provenance.hashes)} trials finished.")
    return lines


def provenance_line(result: TableResult) -> str:
    p = result.provenance
    if not p.hashes:
        return "no runs (descriptive table)" if result.table.spec_name is None else f"spec {p.spec or result.table.spec_name}: no cells"
    bits = [f"spec {p.spec or result.table.spec_name} ({p.spec_hash})" if p.spec_hash else f"spec {p.spec}"]
    bits.append(f"{len(p.hashes)} trials")
    bits.extend(f"{v} ({n})" for v, n in p.versions.most_common())
    if p.devices:
        bits.append("devices " + ", ".join(f"{d} ({n})" for d, n in p.devices.most_common()))
    if p.hosts:
        bits.append(f"{len(p.hosts)} host(s)")
    if p.sources:
        bits.append("data " + ", ".join(f"{t}={'/'.join(s)}" for t, s in p.sources.items()))
    bits.append(setting(result))
    return " · ".join(bits)


def setting(result: TableResult) -> str:
    if result.provenance.offline:
        return "OFFLINE counterpart (not the paper's setting)"
    return "paper setting" if result.table.kind in ("table", "figure") and result.table.key[-1].isdigit() else "own spec (not a paper table)"


def footer_lines(result: TableResult, comparisons: bool = True) -> list[str]:
    lines = list(result.notes)
    lines.extend(result.table.notes)
    if result.levels:
        from fptlab.report.convergence import DEFINITION

        lines.append(DEFINITION)
        levels = [f"{c} {format_value(v * 100, '%')}" for c, v in result.levels.items() if not math.isnan(v)]
        if levels:
            lines.append("convergence levels: " + ", ".join(levels))
    if comparisons:
        lines.extend(comparison_lines(result))
    lines.extend(status_lines(result))
    lines.append(provenance_line(result))
    return lines


# ---- terminal -----------------------------------------------------------------------------------
def to_rich(result: TableResult) -> Any:
    from rich.markup import escape
    from rich.table import Table as RichTable

    t = result.table
    table = RichTable(show_lines=True)
    table.add_column("", overflow="fold", min_width=8)
    for column in t.columns:
        table.add_column(column.label, overflow="fold")
    has_paper = bool(t.paper) or bool(t.literature)
    show_n = result.uniform_n() is None
    for row in t.rows:
        cells = []
        for column in t.columns:
            c = result.cells[(row.label, column.label)]
            d = diff_text(c)
            text = escape(c.ours(show_n))
            if has_paper:
                text += f"\n[dim]paper {escape(paper_text(c))}[/dim]" + (f"\n[dim]Δ {d}[/dim]" if d else "")
            cells.append(text)
        table.add_row(escape(row.label), *cells)
    return table


def caption(result: TableResult) -> str:
    n = result.uniform_n()
    seeds = f"mean ± std over {n} seeds" if n else "mean ± std over seeds (n)"
    paper = " / the paper's number / ours minus the paper's" if result.table.paper or result.table.literature else ""
    return f"Section {result.table.section}. Each cell: ours, {seeds}{paper}."


def console_for(file: Any = None) -> Any:
    """A rich console: the terminal's width, or 110 columns when writing to a file or pipe (a log
    read later), where rich would otherwise assume 80 and wrap every cell."""
    import sys

    from rich.console import Console

    stream = file or sys.stdout
    return Console(file=file) if stream.isatty() else Console(file=file, width=110)


def print_terminal(result: TableResult, console: Any) -> None:
    console.print(f"[bold]{result.title}[/bold]", highlight=False)
    console.print(caption(result), markup=False, highlight=False)
    console.print(to_rich(result))
    for line in footer_lines(result, comparisons=False):
        console.print(line, markup=False, highlight=False)
    if result.comparisons:
        console.print(comparisons_rich(result))
    console.print()


def comparisons_rich(result: TableResult) -> Any:
    from rich.markup import escape
    from rich.table import Table as RichTable

    columns, rows = comparison_grid(result, sep="\n")
    table = RichTable(title="Ours, row minus row: difference in points [95% CI], Welch's t-test p", title_justify="left",
                      title_style="", show_lines=True)
    table.add_column("", overflow="fold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for label, cells in rows:
        table.add_row(escape(label), *(escape(c) for c in cells))
    return table


# ---- markdown / csv / latex ---------------------------------------------------------------------------
def to_markdown(result: TableResult) -> str:
    t = result.table
    head = "| | " + " | ".join(c.label for c in t.columns) + " |"
    lines = [f"### {result.title}", "", f"Section {t.section}. Each cell: ours (mean ± std, n) · paper (difference).", "", head,
             "|" + "---|" * (len(t.columns) + 1)]
    for row in t.rows:
        cells = []
        for column in t.columns:
            c = result.cells[(row.label, column.label)]
            d = diff_text(c)
            cells.append(f"{c.ours()} · paper {paper_text(c)}" + (f" ({d})" if d else ""))
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.extend(f"- {line}" for line in footer_lines(result))
    return "\n".join(lines) + "\n"


def csv_rows(result: TableResult) -> list[dict[str, Any]]:
    rows = []
    for (r, c), cell in result.cells.items():
        s = cell.stat
        rows.append({
            "artifact": result.table.key, "row": r, "column": c, "unit": cell.unit, "state": cell.state,
            "n": s.n if s else 0, "expected": len(cell.hashes), "mean": s.mean if s else "", "std": _num(s.std) if s else "",
            "ci_low": _num(s.low) if s else "", "ci_high": _num(s.high) if s else "", "diverged": cell.diverged,
            "censored": cell.censored, "paper": cell.paper.value if cell.paper else "", "paper_text": cell.paper.text if cell.paper else "",
            "difference": _num(cell.difference()), "statuses": ";".join(f"{k}={v}" for k, v in sorted(cell.statuses.items())),
            "config_hashes": ";".join(cell.hashes), "offline": result.provenance.offline,
        })
    return rows


def to_csv(results: list[TableResult]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for result in results:
        writer.writerows(csv_rows(result))
    return buffer.getvalue()


def _num(x: float) -> Any:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else x


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\^{}", "±": r"$\pm$", "†": r"$^\dagger$", "×": r"$\times$", "—": "--", "−": "-"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(result: TableResult) -> str:
    t = result.table
    lines = [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{l" + "c" * len(t.columns) + "}", r"\toprule",
             " & ".join(["", *(latex_escape(c.label) for c in t.columns)]) + r" \\", r"\midrule"]
    for row in t.rows:
        cells = []
        for column in t.columns:
            c = result.cells[(row.label, column.label)]
            paper = f" ({latex_escape(c.paper.text)})" if c.paper else ""
            cells.append(latex_escape(c.ours()) + paper)
        lines.append(" & ".join([latex_escape(row.label), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}",
              r"\caption{" + latex_escape(f"{result.title}. Ours: mean ± std over seeds (n); the paper's number in parentheses.") + "}",
              r"\end{table}"]
    return "\n".join(lines) + "\n"
