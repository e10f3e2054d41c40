"""`fptlab report`: the paper's tables and figures from the results database, beside the paper's own
numbers. Registered on the main Typer app by fptlab.cli; heavy imports stay inside the command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fptlab.cli_common import DbOpt, existing_store, user_errors

FORMATS = ("terminal", "md", "csv", "latex", "html")
_SUFFIX_FORMAT = {".md": "md", ".csv": "csv", ".tex": "latex", ".html": "html", ".htm": "html"}
IMAGE_SUFFIXES = (".png", ".svg", ".pdf")  # --out FIG.png: one figure's image file


def report(
    name: Annotated[list[str] | None, typer.Argument(help="Tables/figures by key, e.g. table2, figure3, quickstart.")] = None,
    table: Annotated[list[int] | None, typer.Option("--table", "-t", help="Paper table number (repeatable).")] = None,
    figure: Annotated[list[int] | None, typer.Option("--figure", "-f", help="Paper figure number (repeatable).")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every table and figure.")] = False,
    fmt: Annotated[str | None, typer.Option("--format", help="terminal | md | csv | latex | html (default: from --out's suffix, else terminal).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout (figures go beside it as PNG and SVG); FIG.png / .svg / .pdf writes one figure's image.")] = None,
    db: DbOpt = None,
    offline: Annotated[bool, typer.Option("--offline", help="Report the offline counterparts (experiments/offline/), MiniLM and offline data.")] = False,
    experiments: Annotated[Path | None, typer.Option("--experiments", help="Folder of sweep specs (default: ./experiments, else the checkout's).")] = None,
    curves: Annotated[bool, typer.Option("--curves", help="Convergence curves for every table (html, and PNG/SVG files with --out).")] = False,
    figures_dir: Annotated[Path | None, typer.Option("--figures-dir", help="Where figure files go (default: beside --out, else ./fptlab-figures).")] = None,
    storage: Annotated[Path, typer.Option("--storage", help="The sweep's --storage: trial folders with the attention maps and parameter statistics figures read (nothing outside it is opened).")] = Path("fptlab-runs"),
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Dataset folder, to resolve the data sources of cells never swept (their hash and fill command); swept cells are read as the database recorded them.")] = None,
) -> None:
    """Regenerate the paper's tables and figures from the database, beside the paper's numbers: mean ±
    std over seeds, 95% CIs, Welch p-values, and for every missing cell the command that fills it.
    An empty database is not an error."""
    with user_errors():
        _report(name or [], table or [], figure or [], everything, fmt, out, db, offline, experiments, curves, figures_dir, storage,
                data_dir)


def _report(names: list[str], tables: list[int], figures: list[int], everything: bool, fmt: str | None, out: Path | None,
            db: str | None, offline: bool, experiments: Path | None, curves: bool, figures_dir: Path | None, storage: Path,
            data_dir: Path | None = None) -> None:
    from fptlab.report.engine import ReportOptions, make_report, select_keys

    _check_paths(out, experiments, figures_dir, storage)
    if data_dir is not None:
        from fptlab.cli_checks import existing_folder_or_absent

        existing_folder_or_absent("--data-dir", data_dir)
    keys = select_keys([str(n) for n in tables], [str(n) for n in figures], names, everything)
    if fmt is None and out is not None and out.suffix.lower() in IMAGE_SUFFIXES:
        _image(keys, out, db, ReportOptions(db_url=db, offline=offline, experiments=experiments, storage=storage, data_dir=data_dir))
        return
    fmt = _format_of(fmt, out)
    store = existing_store(db)
    wants_files = fmt != "html" and (out is not None or figures_dir is not None or any(k.startswith("figure") for k in keys))
    options = ReportOptions(db_url=db, offline=offline, experiments=experiments, curves=curves, plots=fmt == "html" or wants_files,
                            storage=storage, data_dir=data_dir)
    rendered = make_report(keys, store, options)
    if store is None:
        typer.echo("No results database yet: every cell is missing; each table gives the command that fills it.", err=True)
    files: dict[str, list[str]] = {}
    if options.plots and fmt != "html":
        folder = figures_dir or (out.parent / f"{out.stem}-figures" if out else Path("fptlab-figures"))
        files = _save_figures(rendered, folder, out.parent if out else Path.cwd())
    text = _format(rendered, fmt, offline, store, files)
    if fmt != "terminal":
        _write(text, out)
    failed = [r for r in rendered if r.error]
    if failed:
        from fptlab.errors import FptlabError

        what = "; ".join(f"{r.key}: {r.error}" for r in failed)
        raise FptlabError(f"{len(failed)} item(s) of the report could not be built (the report says so where they stand): {what}")


def _image(keys: list[str], out: Path, db: str | None, options: Any) -> None:
    """`--out FIG.png` (.svg, .pdf): one figure drawn to that file (a figure of several panels: the first
    to FIG.png, the next to FIG-2.png, ...), its notes on the terminal."""
    from fptlab.errors import FptlabError
    from fptlab.escape import for_terminal
    from fptlab.report.engine import make_report

    tables = [k for k in keys if not k.startswith("figure")]
    if tables or len(keys) != 1:
        what = f"{', '.join(tables)} is a table" if tables else f"{len(keys)} items were asked for"
        raise FptlabError(f"--out {out}: an image file holds one figure, but {what}. Tables go to --out FILE.md, .csv, .tex "
                          f"or .html (or --format md|csv|latex|html); a figure to .png, .svg or .pdf, one --figure N at a time.")
    [item] = make_report(keys, existing_store(db), options)
    out.parent.mkdir(parents=True, exist_ok=True)
    for i, (caption, fig) in enumerate(item.figures, start=1):
        path = out if i == 1 else out.with_name(f"{out.stem}-{i}{out.suffix}")
        fig.savefig(path, format=out.suffix.lower().lstrip("."), dpi=110, metadata={"Date": None} if out.suffix.lower() == ".svg" else None)
        typer.echo(for_terminal(f"{item.key}: {caption} -> {path}"), err=True)
    for note in [*item.notes, item.provenance]:
        if note:
            typer.echo(for_terminal(note), err=True)
    if item.error:
        raise FptlabError(f"{item.key}: {item.error}")


def _format_of(fmt: str | None, out: Path | None) -> str:
    """--format, else the one --out's suffix names, else terminal."""
    from fptlab.errors import FptlabError
    from fptlab.registry import did_you_mean

    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise FptlabError(f"Unknown report format '{fmt}'.{did_you_mean(fmt, list(FORMATS))} Available: {', '.join(FORMATS)}.")
        if fmt == "terminal" and out is not None:
            raise FptlabError(f"--format terminal prints to the screen, so --out {out} would not be written. Drop --out, or pick md, csv, latex or html.")
        return fmt
    if out is None:
        return "terminal"
    if out.suffix.lower() not in _SUFFIX_FORMAT:
        raise FptlabError(
            f"--out {out}: cannot tell the format from the suffix '{out.suffix}'. Use one of "
            f"{', '.join(sorted(_SUFFIX_FORMAT))} (or {', '.join(IMAGE_SUFFIXES)} for one figure), or say it with --format "
            f"({', '.join(FORMATS[1:])})."
        )
    return _SUFFIX_FORMAT[out.suffix.lower()]


def _check_paths(out: Path | None, experiments: Path | None, figures_dir: Path | None, storage: Path) -> None:
    """Every path option, before the database is read or anything is written."""
    from fptlab.cli_checks import existing_folder_or_absent, input_folder, output_file, writable_folder

    existing_folder_or_absent("--storage", storage)
    if out is not None:
        output_file("--out", out, create_parents=True)
    if experiments is not None:
        input_folder("--experiments", experiments)
    if figures_dir is not None:
        writable_folder("--figures-dir", figures_dir)


def _format(rendered: list, fmt: str, offline: bool, store: object, files: dict[str, list[str]]) -> str:
    from fptlab.report import render

    if fmt == "terminal":
        render.print_report(rendered, render.console_for())
        return ""
    if fmt == "csv":
        return render.csv_document(rendered)
    if fmt == "md":
        return render.markdown_document(rendered, files)
    if fmt == "latex":
        return render.latex_document(rendered, files)
    from fptlab.report.html import page

    where = getattr(store, "masked_url", "no database")
    return page(rendered, title="Pretrained Transformers As Universal Computation Engines: tables and figures",
                subtitle=f"results from {where}", offline=offline)


def _write(text: str, out: Path | None) -> None:
    if out is None:
        typer.echo(text, nl=False)
        return
    from fptlab.cli_checks import write_atomically
    from fptlab.errors import FptlabError

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FptlabError(f"Cannot create the folder {out.parent} for --out: {e.strerror or e}. Choose another path.") from None
    write_atomically(out, lambda tmp: tmp.write_text(text, encoding="utf-8"))  # a reader never sees half a report
    typer.echo(f"wrote {out}", err=True)


def _save_figures(rendered: list, folder: Path, relative_to: Path) -> dict[str, list[str]]:
    """Each figure as PNG and SVG in `folder`; {item key: [the PNG's path relative to `relative_to`]}."""
    import os

    from fptlab.escape import for_terminal
    from fptlab.report.figures import save

    out: dict[str, list[str]] = {}
    for r in rendered:
        for i, (caption, fig) in enumerate(r.figures, start=1):
            paths = save(fig, folder / f"{r.key}-{i}")
            out.setdefault(r.key, []).append(os.path.relpath(paths[0].absolute(), relative_to.absolute()))
            typer.echo(for_terminal(f"{r.key}: {caption} -> {', '.join(str(p) for p in paths)}"), err=True)
    return out


def register(app: typer.Typer) -> None:
    app.command()(report)
