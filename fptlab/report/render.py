"""TableResult -> text: a rich terminal table, Markdown, CSV (long form: one line per cell) or LaTeX.
Every format carries ours (mean ± std, n), the paper's number, the difference, the comparisons, what
is missing with the command that fills it, the notes and the provenance line; a whole report (tables
and figures, `*_document`) carries every item's notes, so a file says what the terminal says.

Strings from the database (names, hosts, devices, versions, errors, config values) are untrusted:
every piece of text goes through its format's helper in `fptlab.escape` where it is written."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from fptlab.escape import for_csv, for_latex, for_markdown, for_terminal
from fptlab.report.build import CellResult, TableResult
from fptlab.report.stats import format_p

CSV_FIELDS = (
    "artifact", "row", "column", "unit", "state", "n", "expected", "mean", "std", "ci_low", "ci_high", "diverged",
    "censored", "paper", "paper_text", "difference", "statuses", "config_hashes", "offline", "note",
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
        adjusted = "" if math.isnan(comp.adjusted) else f", adj. p {_p(comp.adjusted)}"
        out.append(
            f"{comp.a} − {comp.b}, {comp.column}: {d.diff:+.1f} {unit}{ci}, Welch p {_p(d.p)}{adjusted} (n = {d.n_a}, {d.n_b})".replace("  ", " ")
        )
    return out


def comparison_grid(result: TableResult, sep: str = " ") -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Comparisons as a grid: the columns compared, then one row per pair ("FPT − Random") whose cells
    read "+9.0 [+4.2, +13.8] p = 0.008", parts joined by `sep` (empty where a side has no values)."""
    columns = [c.label for c in result.table.columns if any(comp.column == c.label for comp in result.comparisons)]
    pairs = list(dict.fromkeys((comp.a, comp.b) for comp in result.comparisons))
    by = {(comp.a, comp.b, comp.column): comp for comp in result.comparisons}
    rows = []
    for a, b in pairs:
        cells = []
        for column in columns:
            comp = by.get((a, b, column))
            if comp is None:
                cells.append("")
                continue
            d = comp.result
            parts = [f"{d.diff:+.1f}", "" if math.isnan(d.low) else f"[{d.low:+.1f}, {d.high:+.1f}]", f"p {_p(d.p)}",
                     "" if math.isnan(comp.adjusted) else f"adj. p {_p(comp.adjusted)}"]
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
    lines.extend(result.definitions())
    if comparisons:
        lines.extend(comparison_lines(result))
    lines.extend(status_lines(result))
    lines.append(provenance_line(result))
    return lines


# ---- terminal -----------------------------------------------------------------------------------
def _rich(text: Any) -> str:
    """Text for a rich table cell: control characters shown escaped, rich markup brackets escaped."""
    from rich.markup import escape

    return escape(for_terminal(text))


def to_rich(result: TableResult) -> Any:
    from rich.table import Table as RichTable

    t = result.table
    table = RichTable(show_lines=True)
    table.add_column("", overflow="fold", min_width=8)
    for column in t.columns:
        table.add_column(for_terminal(column.label), overflow="fold")
    has_paper = bool(t.paper) or bool(t.literature)
    show_n = result.uniform_n() is None
    for row in t.rows:
        cells = []
        for column in t.columns:
            c = result.cells[(row.label, column.label)]
            d = diff_text(c)
            text = _rich(c.ours(show_n))
            if has_paper:
                text += f"\n[dim]paper {_rich(paper_text(c))}[/dim]" + (f"\n[dim]Δ {_rich(d)}[/dim]" if d else "")
            cells.append(text)
        table.add_row(_rich(row.label), *cells)
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


def print_terminal(result: TableResult, console: Any, notes: list[str] = ()) -> None:
    console.print(f"[bold]{_rich(result.title)}[/bold]", highlight=False)
    console.print(for_terminal(caption(result)), markup=False, highlight=False)
    console.print(to_rich(result))
    for line in [*notes, *footer_lines(result, comparisons=False)]:
        console.print(for_terminal(line), markup=False, highlight=False)
    if result.comparisons:
        console.print(comparisons_rich(result))
    console.print()


def print_report(rendered: list[Any], console: Any) -> None:
    """Every item of a report on the terminal: tables, and for the others (figures, tables whose spec
    could not be read) their title, notes and provenance."""
    for item in rendered:
        if item.result is not None:
            print_terminal(item.result, console, item.notes)
            continue
        console.print(f"[bold]{_rich(item.title)}[/bold]", highlight=False)
        for line in [*item.notes, item.provenance]:
            if line:
                console.print(for_terminal(line), markup=False, highlight=False)
        console.print()


def comparisons_rich(result: TableResult) -> Any:
    from rich.table import Table as RichTable

    columns, rows = comparison_grid(result, sep="\n")
    table = RichTable(title="Ours, row minus row: difference in points [95% CI], Welch's t-test p", title_justify="left",
                      title_style="", show_lines=True)
    table.add_column("", overflow="fold")
    for column in columns:
        table.add_column(for_terminal(column), overflow="fold")
    for label, cells in rows:
        table.add_row(_rich(label), *("\n".join(_rich(part) for part in c.split("\n")) for c in cells))
    return table


# ---- markdown / csv / latex ---------------------------------------------------------------------------
def to_markdown(result: TableResult, notes: list[str] = ()) -> str:
    t, md = result.table, for_markdown
    head = "| | " + " | ".join(md(c.label) for c in t.columns) + " |"
    lines = [f"### {md(result.title)}", "", md(f"Section {t.section}. Each cell: ours (mean ± std, n) · paper (difference)."), "",
             head, "|" + "---|" * (len(t.columns) + 1)]
    for row in t.rows:
        cells = []
        for column in t.columns:
            c = result.cells[(row.label, column.label)]
            d = diff_text(c)
            cells.append(md(f"{c.ours()} · paper {paper_text(c)}" + (f" ({d})" if d else "")))
        lines.append(f"| {md(row.label)} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.extend(f"- {md(line)}" for line in [*notes, *footer_lines(result)])
    return "\n".join(lines) + "\n"


def markdown_document(rendered: list[Any], figure_files: dict[str, list[str]] | None = None) -> str:
    """A whole report as Markdown: each table, each figure (its image files, linked relative to the
    report) and every item's notes and provenance."""
    parts = []
    for item in rendered:
        if item.result is not None:
            parts.append(to_markdown(item.result, item.notes))
        else:
            lines = [f"### {for_markdown(item.title)}", ""]
            lines.extend(f"- {for_markdown(line)}" for line in [*item.notes, item.provenance] if line)
            parts.append("\n".join(lines) + "\n")
        for caption_text, path in _figure_files(item, figure_files):
            parts.append(f"![{for_markdown(caption_text)}]({_md_link(path)})\n")
    return "\n".join(parts)


def _figure_files(item: Any, figure_files: dict[str, list[str]] | None) -> list[tuple[str, str]]:
    files = (figure_files or {}).get(item.key, [])
    return [(caption_text, path) for (caption_text, _), path in zip(item.figures, files, strict=False)]


def _md_link(path: str) -> str:
    """A link target: percent-encoded, so a space or a parenthesis cannot end it."""
    from urllib.parse import quote

    return quote(path, safe="/._-")


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
            "note": cell.tag.strip(" ·"),
        })
    return rows


def to_csv(results: list[TableResult]) -> str:
    """One line per cell of each table."""
    return _csv_text(row for result in results for row in csv_rows(result))


def csv_document(rendered: list[Any]) -> str:
    """A whole report as CSV: one line per table cell, then one line per note of each item (state
    "note", the text in `note`), so the file carries what the terminal shows."""
    rows: list[dict[str, Any]] = []
    for item in rendered:
        if item.result is not None:
            rows.extend(csv_rows(item.result))
        lines = [*item.notes, *(footer_lines(item.result) if item.result is not None else [item.provenance])]
        rows.extend({"artifact": item.key, "state": "note", "note": line} for line in lines if line)
    return _csv_text(rows)


def _csv_text(rows: Any) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: for_csv(v) for k, v in row.items()})
    return buffer.getvalue()


def _num(x: float) -> Any:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else x


def to_latex(result: TableResult, notes: list[str] = ()) -> str:
    t, tex = result.table, for_latex
    lines = [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{l" + "c" * len(t.columns) + "}", r"\toprule",
             " & ".join(["", *(tex(c.label) for c in t.columns)]) + r" \\", r"\midrule"]
    for row in t.rows:
        cells = []
        for column in t.columns:
            c = result.cells[(row.label, column.label)]
            paper = f" ({tex(c.paper.text)})" if c.paper else ""
            cells.append(tex(c.ours()) + paper)
        lines.append(" & ".join([tex(row.label), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}",
              r"\caption{" + tex(f"{result.title}. Ours: mean ± std over seeds (n); the paper's number in parentheses.") + "}",
              r"\end{table}"]
    lines.extend(_latex_notes([*notes, *footer_lines(result)]))
    return "\n".join(lines) + "\n"


def latex_document(rendered: list[Any], figure_files: dict[str, list[str]] | None = None) -> str:
    """A whole report as LaTeX fragments: each table with its notes; each figure as its image files
    (\\includegraphics of the PNG) with its notes."""
    parts = []
    for item in rendered:
        if item.result is not None:
            parts.append(to_latex(item.result, item.notes))
            continue
        lines = [r"\paragraph{" + for_latex(item.title) + "}"]
        for caption_text, path in _figure_files(item, figure_files):
            lines += [r"\begin{figure}[t]", r"\centering", r"\includegraphics[width=\linewidth]{\detokenize{" + _tex_path(path) + "}}",
                      r"\caption{" + for_latex(caption_text) + "}", r"\end{figure}"]
        lines.extend(_latex_notes([*item.notes, item.provenance]))
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def _latex_notes(lines: list[str]) -> list[str]:
    lines = [line for line in lines if line]
    if not lines:
        return []
    return [r"\begin{itemize}\footnotesize", *(r"\item " + for_latex(line) for line in lines), r"\end{itemize}"]


def _tex_path(path: str) -> str:
    """A path fptlab wrote (letters, digits, - _ . /); anything else is dropped so \\detokenize holds."""
    return "".join(ch for ch in path if ch.isalnum() or ch in "-_./")
