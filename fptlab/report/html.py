"""One self-contained HTML page (styles inline, images embedded as data URIs) holding every table and
figure of a report, each with its provenance: config hashes, fptlab/torch/transformers versions,
data sources, offline or paper setting, hosts and devices."""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from typing import Any

from fptlab.report.build import TableResult
from fptlab.report.engine import Rendered
from fptlab.report.render import caption, comparison_grid, diff_text, paper_text, setting, status_lines

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d232a;max-width:1200px;margin:0 auto;padding:24px 32px 64px;background:#fff}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:40px 0 6px;padding-top:12px;border-top:1px solid #dde2e8}
.meta,.caption{color:#5a6673;font-size:13px}.toc{columns:3;font-size:14px;margin:16px 0 8px;padding:0}.toc li{list-style:none;margin:2px 0}
a{color:#1f5fa8;text-decoration:none}a:hover{text-decoration:underline}
.banner{background:#fff4d6;border:1px solid #e8c55c;padding:8px 12px;border-radius:6px;margin:12px 0;font-weight:600}
table.res{border-collapse:collapse;margin:12px 0;font-size:14px;width:100%}
table.res th,table.res td{border:1px solid #dde2e8;padding:6px 8px;vertical-align:top;text-align:center}
table.res th{background:#f3f5f8;font-weight:600}table.cmp td{font-size:13px;font-variant-numeric:tabular-nums;white-space:pre-line}table.res td.rowlabel{text-align:left;font-weight:600;background:#fafbfc;white-space:nowrap}
.ours{font-weight:600;font-variant-numeric:tabular-nums}.paper{color:#5a6673;font-size:12.5px}.diff{font-size:12.5px}
.pos{color:#1b7a3a}.neg{color:#b3261e}.state-empty .ours,.state-partial .ours{color:#9a5b00}.state-literature .ours,.state-notingrid .ours{color:#8a939c;font-weight:400}
ul.notes{margin:6px 0;padding-left:20px;font-size:13.5px}code,pre{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f3f5f8;border-radius:4px}
pre{padding:8px 10px;overflow-x:auto}code{padding:1px 4px}
figure{margin:14px 1% 14px 0;display:inline-block;width:48%;vertical-align:top}figure img{width:100%;border:1px solid #eef1f4}
figure.wide{width:98%}@media (max-width:900px){figure{width:100%}}
figcaption{font-size:13px;color:#5a6673;max-width:760px}details{margin:8px 0;font-size:13px}summary{cursor:pointer;color:#1f5fa8}
.hashes{font:12px ui-monospace,monospace;word-break:break-all;color:#5a6673}
"""


def page(rendered: list[Rendered], *, title: str, subtitle: str, offline: bool) -> str:
    from fptlab import __version__

    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{_e(title)}</h1>", f'<p class="meta">{_e(subtitle)} · generated {now} by fptlab {_e(__version__)}</p>']
    if offline:
        parts.append('<p class="banner">OFFLINE COUNTERPARTS: MiniLM and offline data on a laptop budget. '
                     "These numbers are not the paper's setting and are not comparable to its values.</p>")
    parts.append('<ul class="toc">' + "".join(f'<li><a href="#{r.key}">{_e(r.title)}</a></li>' for r in rendered) + "</ul>")
    for item in rendered:
        parts.append(section(item))
    parts.append("</body></html>")
    return "\n".join(parts)


def section(item: Rendered) -> str:
    out = [f'<section id="{item.key}"><h2>{_e(item.title)}</h2>']
    if item.result is not None:
        out.append(result_table(item.result))
        out.append(_notes(_result_notes(item.result) + item.notes))
        out.append(comparisons_table(item.result))
    elif item.notes:
        out.append(_notes(item.notes))
    out.extend(_figure(caption, fig) for caption, fig in item.figures)
    if item.result is not None:
        out.append(_provenance(item.result))
    elif item.provenance:
        out.append(f'<p class="meta">{_e(item.provenance)}</p>')
    out.append("</section>")
    return "\n".join(out)


def result_table(result: TableResult) -> str:
    t = result.table
    head = "<tr><th></th>" + "".join(f"<th>{_e(c.label)}</th>" for c in t.columns) + "</tr>"
    show_n = result.uniform_n() is None
    rows = []
    for row in t.rows:
        cells = []
        for column in t.columns:
            c = result.cells[(row.label, column.label)]
            d = diff_text(c)
            sign = "" if not d else ("pos" if d.startswith("+") else "neg")
            state = c.state.replace(" ", "")
            paper = f'<div class="paper">paper {_e(paper_text(c))}</div>' if c.paper or c.literature else ""
            diff = f'<div class="diff {sign}">Δ {_e(d)}</div>' if d else ""
            cells.append(f'<td class="state-{state}"><div class="ours">{_e(c.ours(show_n))}</div>{paper}{diff}</td>')
        rows.append(f'<tr><td class="rowlabel">{_e(row.label)}</td>{"".join(cells)}</tr>')
    return f'<p class="caption">{_e(caption(result))}</p><table class="res">{head}{"".join(rows)}</table>'


def comparisons_table(result: TableResult) -> str:
    if not result.comparisons:
        return ""
    columns, rows = comparison_grid(result, sep="\n")
    head = "<tr><th></th>" + "".join(f"<th>{_e(c)}</th>" for c in columns) + "</tr>"
    body = "".join(f'<tr><td class="rowlabel">{_e(label)}</td>' + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>"
                   for label, cells in rows)
    return (f'<p class="caption">Ours, row minus row: difference in points [95% CI], two-sided Welch\'s t-test p.</p>'
            f'<table class="res cmp">{head}{body}</table>')


def _result_notes(result: TableResult) -> list[str]:
    return list(result.notes) + list(result.table.notes) + result.definitions()


def _notes(lines: list[str]) -> str:
    if not lines:
        return ""
    return '<ul class="notes">' + "".join(f"<li>{_e(line)}</li>" for line in lines) + "</ul>"


def _provenance(result: TableResult) -> str:
    p = result.provenance
    status = status_lines(result)
    fill = ""
    if result.fill:
        fill = f"<p>{_e(status[0])}</p><pre>" + "\n".join(_e(cmd) for cmd in result.fill) + "</pre>"
    elif status:
        fill = f'<p class="meta">{_e(status[0])}</p>'
    rows = [("spec", f"{p.spec or result.table.spec_name or '—'} ({p.spec_hash or 'no spec'})"),
            ("setting", setting(result)),
            ("versions", "; ".join(f"{v} ({n} trials)" for v, n in p.versions.most_common()) or "no finished trials"),
            ("data sources", ", ".join(f"{t}: {'/'.join(s)}" for t, s in p.sources.items()) or "—"),
            ("backbones", ", ".join(p.backbones) or "—"),
            ("devices", ", ".join(f"{d} ({n})" for d, n in p.devices.most_common()) or "—"),
            ("hosts", ", ".join(f"{h} ({n})" for h, n in p.hosts.most_common()) or "—")]
    table = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows)
    hashes = " ".join(p.hashes) or "—"
    return (f"{fill}<details><summary>Provenance: {len(p.hashes)} trials</summary><table>{table}</table>"
            f'<p class="hashes">config hashes: {_e(hashes)}</p></details>')


def _figure(caption: str, fig: Any) -> str:
    from fptlab.report.figures import data_uri

    width, height = fig.get_size_inches()
    wide = ' class="wide"' if width > 2.2 * height else ""  # panel strips (attention grids) get the full width
    return f'<figure{wide}><img alt="{_e(caption)}" src="{data_uri(fig)}"><figcaption>{_e(caption)}</figcaption></figure>'


def _e(text: Any) -> str:
    if isinstance(text, float) and math.isnan(text):
        return "-"
    return html.escape(str(text))
