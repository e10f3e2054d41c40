"""A results database is shared, so everything read from it (and from a results folder or a weights
folder) is untrusted input, and everything printed is output for one format. Hostile strings in
every column the outputs show reach the terminal, Markdown, CSV, LaTeX and HTML escaped for that
format; rows that break the schema's promises, another application's database and artifact rows that
point outside the storage folder are refused with a warning naming the trial, and the refused file
is never opened; the database is byte-identical after every refused command.

Hostile weight and body files are in tests/test_hostile_files.py; the password in tests/store/test_password.py."""

from __future__ import annotations

import csv
import gc
import io
import os
import re
import shutil
import sqlite3
import warnings
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fptlab.cli import app
from fptlab.errors import FptlabWarning
from fptlab.escape import for_csv, for_latex, for_markdown, for_terminal, quoted
from fptlab.report import catalog
from fptlab.report.engine import ReportOptions, make_report
from fptlab.store import Store
from tests.report.builders import record, register, spec_cells, write_attention

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"

# One hostile string per output that cares: each would add structure to its format if printed raw.
FORMULA = '=HYPERLINK("http://evil.invalid","x")'
TERMINAL = "\x1b]8;;http://evil.invalid\x07click\x1b]8;;\x07\x1b[2J\x1b[31mred\u202egnp.exe"
MARKUP = "<script>alert(1)</script>|col|\n# heading [x](javascript:alert(1)) ![p](http://evil.invalid/p.png)"
LATEX = "\\input{/etc/passwd} $x^2$ & 100% #1 ~ _"
HOSTILE = {"host": FORMULA, "device": TERMINAL, "fptlab_version": MARKUP, "torch_version": LATEX, "error": "@SUM(1+1)" + TERMINAL}
RAW_CONTROL = ("\x1b", "\x07", "\u202e")


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    output: str


def invoke(*args: str) -> Outcome:
    result = CliRunner().invoke(app, list(args))
    outcome = Outcome(result.exit_code, result.output)
    del result  # its exception's frames hold the command's pooled SQLite connections: close them
    gc.collect()
    return outcome


def db_bytes(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.parent.glob(path.name + "*"))}


# ---- a table-2 database whose rows carry hostile strings ------------------------------------------
@pytest.fixture()
def hostile_db(tmp_path: Path, data_dir: Path) -> tuple[Path, str, Path]:
    """(database file, URL, experiments folder): Table 2's cells, some finished, with hostile host,
    device, versions and error texts, and an experiments folder whose own name is hostile."""
    experiments = tmp_path / "exp\x1b[31m|<b>#"
    experiments.mkdir()
    for name in ("table2.toml", "paper-base.toml"):
        shutil.copy(EXPERIMENTS / name, experiments / name)
    path = tmp_path / "h.db"
    url = f"sqlite:///{path}"
    store = Store(url)
    store.ensure_schema()
    cells = spec_cells(experiments / "table2.toml", data_dir)
    register(store, "table2", [cfg for _, cfg in cells])
    done = [cfg.hash for labels, cfg in cells if labels.get("task") in ("listops", "bit_xor")]
    for i, h in enumerate(done):
        record(store, h, accuracy=0.4 + 0.01 * (i % 3), curve=[(100, 0.2), (200, 0.4)], status="completed" if i else "failed")
    store.close()
    connection = sqlite3.connect(path)
    with connection:
        for column, value in HOSTILE.items():
            connection.execute(f"UPDATE trials SET {column} = ?", (value,))
        connection.execute("UPDATE trials SET status = 'failed' WHERE error IS NOT NULL AND status = 'completed' AND id = 1")
    connection.close()
    return path, url, experiments


def report(url: str, experiments: Path, fmt: str, out: Path | None = None):
    args = ["report", "--table", "2", "--db", url, "--experiments", str(experiments), "--format", fmt]
    return invoke(*args, *(["--out", str(out)] if out else []))


def test_terminal_report_shows_control_characters_escaped(hostile_db: tuple) -> None:
    path, url, experiments = hostile_db
    before = db_bytes(path)
    result = report(url, experiments, "terminal")
    assert result.exit_code == 0, result.output
    assert not any(ch in result.output for ch in RAW_CONTROL), repr(result.output[:500])
    assert "\\x1b]8;;http://evil.invalid\\x07click" in result.output  # shown, visibly escaped
    assert "\\x1b[31m|<b>#" in result.output  # the folder name in the fill command
    assert db_bytes(path) == before


def test_markdown_report_cannot_open_html_or_add_rows_headings_or_links(hostile_db: tuple, tmp_path: Path) -> None:
    path, url, experiments = hostile_db
    out = tmp_path / "t.md"
    result = report(url, experiments, "md", out)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert not re.search(r"(?<!\\)\]\(javascript:", text) and "\\[x\\](javascript:alert(1))" in text  # a literal, not a link
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert len(headings) == 1 and headings[0].startswith("### Table 2: ")  # a newline + '#' in a value makes none
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + len(catalog.get("table2").rows)  # header, separator, one per row: a '|' or newline adds none
    assert "\\|col\\|" in text
    assert not any(ch in text for ch in RAW_CONTROL)


def test_csv_report_neutralises_formulas_and_keeps_numbers(hostile_db: tuple, tmp_path: Path) -> None:
    path, url, experiments = hostile_db
    out = tmp_path / "t.csv"
    result = report(url, experiments, "csv", out)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    cells = [r for r in rows if r["state"] != "note"]
    notes = [r["note"] for r in rows if r["state"] == "note"]
    table = catalog.get("table2")
    assert len(cells) == len(table.rows) * len(table.columns) and notes
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "@", "\t", "\r")) or value.startswith("'"), value
            if value.startswith("-"):
                float(value)  # a negative number stays a number; hostile text would start with '
    assert any(float(r["mean"]) > 0 for r in cells if r["mean"])
    assert any(FORMULA in n or MARKUP.splitlines()[0] in n for n in notes)  # the provenance note carries the values


def test_latex_report_escapes_commands_and_specials(hostile_db: tuple, tmp_path: Path) -> None:
    path, url, experiments = hostile_db
    out = tmp_path / "t.tex"
    result = report(url, experiments, "latex", out)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "\\input{/etc/passwd}" not in text
    assert r"\textbackslash{}input\{/etc/passwd\} \$x\^{}2\$ \& 100\% \#1 \textasciitilde{} \_" in text
    assert not any(ch in text for ch in RAW_CONTROL)


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)


def test_html_report_escapes_every_value(hostile_db: tuple, tmp_path: Path) -> None:
    path, url, experiments = hostile_db
    out = tmp_path / "t.html"
    result = report(url, experiments, "html", out)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    parser = _Scripts()
    parser.feed(text)
    assert "script" not in parser.tags and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "b" not in parser.tags  # the folder name's <b>


def test_trials_status_and_export_escape_what_the_database_holds(hostile_db: tuple, tmp_path: Path) -> None:
    path, url, _ = hostile_db
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("UPDATE trials SET task = ?, backbone = ?, init = ? WHERE id = 2", (TERMINAL, MARKUP, FORMULA))
    connection.close()
    before = db_bytes(path)
    for args in (("trials", "--db", url), ("status", "--db", url)):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        assert not any(ch in result.output for ch in RAW_CONTROL), (args, repr(result.output[:300]))
    assert "\\x1b]8;;" in invoke("trials", "--db", url).output
    out = tmp_path / "t.csv"
    assert invoke("export", "--db", url, "--out", str(out)).exit_code == 0
    rows = list(csv.reader(io.StringIO(out.read_text())))
    flat = [v for row in rows for v in row]
    assert "'" + FORMULA in flat and "'@SUM(1+1)" + TERMINAL in flat
    assert not [v for v in flat if v.startswith(("=", "+", "@")) and not v.startswith("'")]
    assert db_bytes(path) == before


def test_the_failure_summary_escapes_the_recorded_error(hostile_db: tuple, capsys) -> None:
    from fptlab.cli_common import say
    from fptlab.sweep.drivers import failure_reasons

    path, url, _ = hostile_db
    store = Store(url)
    [failed] = [t["config_hash"] for t in store.trials(status="failed")][:1]
    for config_hash, why in failure_reasons(store, [failed]):
        say(f"  {config_hash}: {why}")
    err = capsys.readouterr().err
    assert "@SUM(1+1)\\x1b]8;;http://evil.invalid\\x07click" in err and not any(ch in err for ch in RAW_CONTROL)


# ---- the escaping helpers themselves ----------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-cmd", "'-cmd"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("plain", "plain"), ("", ""), (-1.5, -1.5), (3, 3), (None, None),
])
def test_csv_cells(value, expected) -> None:
    assert for_csv(value) == expected


def test_markdown_escape_is_literal_text() -> None:
    assert for_markdown("a\nb\r\nc") == "a b c"
    assert for_markdown("- item") == "\\- item" and for_markdown("1. x") == "1\\. x" and for_markdown("38.2%") == "38.2%"
    assert for_markdown("<b>&") == "&lt;b&gt;&amp;" and for_markdown("x|y") == "x\\|y"


def test_terminal_and_latex_escapes() -> None:
    assert for_terminal("a\x1b[2Jb\x00c\u202e\u200bd\x9b") == "a\\x1b[2Jb\\x00c\\u202e\\u200bd\\x9b"
    assert for_terminal("one\ntwo", keep_newlines=True) == "one\ntwo" and for_terminal("one\ntwo") == "one\\ntwo"
    assert for_latex("a\n\nb") == "a  b"


def test_long_values_are_quoted_short() -> None:
    text = quoted("x" * 10_485_760)
    assert len(text) < 120 and text.endswith("(10,485,760 characters)")
    assert quoted("short") == "'short'"


# ---- rows that break the schema's promises ----------------------------------------------------------
@pytest.fixture()
def broken_rows(hostile_db: tuple) -> tuple[Path, str, Path, dict[str, str]]:
    """Raw rows a foreign writer could leave: an unknown value_kind, a text value, a non-JSON config, a
    text seed, an unknown status, inf and 140 % accuracies, a non-JSON artifact meta."""
    path, url, experiments = hostile_db
    connection = sqlite3.connect(path)
    ids = {h: i for i, h in connection.execute("SELECT id, config_hash FROM trials WHERE status = 'completed' ORDER BY id")}
    hashes = list(ids)
    with connection:
        connection.execute("PRAGMA ignore_check_constraints = ON")
        connection.execute("UPDATE results SET value_kind = 'bogus' WHERE trial_id = ? AND key = 'test_accuracy'", (ids[hashes[0]],))
        connection.execute("UPDATE results SET value = 'abc' WHERE trial_id = ? AND key = 'test_accuracy'", (ids[hashes[1]],))
        connection.execute("UPDATE results SET value = NULL, value_kind = 'inf' WHERE trial_id = ? AND key = 'test_accuracy'", (ids[hashes[2]],))
        connection.execute("UPDATE results SET value = 1.4 WHERE trial_id = ? AND key = 'test_accuracy'", (ids[hashes[3]],))
        connection.execute("UPDATE metrics SET value_kind = 'weird' WHERE trial_id = ?", (ids[hashes[4]],))
        connection.execute("UPDATE trials SET config = 'not json {' WHERE id = ?", (ids[hashes[5]],))
        connection.execute("UPDATE trials SET seed = 'abc' WHERE id = ?", (ids[hashes[6]],))
        connection.execute("UPDATE trials SET status = 'exploded' WHERE id = ?", (ids[hashes[7]],))
        connection.execute("INSERT INTO artifacts (trial_id, kind, location, meta, created) VALUES (?, 'attention', 'x', 'nope', '2026-01-01')",
                           (ids[hashes[8]],))
    connection.close()
    return path, url, experiments, {name: hashes[i] for i, name in enumerate(
        ("kind", "text", "inf", "over", "metric", "config", "seed", "status", "meta"))}


def test_report_skips_broken_rows_with_warnings_naming_the_trial(broken_rows: tuple, tmp_path: Path) -> None:
    path, url, experiments, which = broken_rows
    before = db_bytes(path)
    for fmt in ("terminal", "md"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = report(url, experiments, fmt, tmp_path / "r.md" if fmt == "md" else None)
        assert result.exit_code == 0, result.output
        assert "inf%" not in result.output and "140.0% ±" not in result.output
        messages = [str(w.message) for w in caught if issubclass(w.category, FptlabWarning)]
        for name in ("kind", "text", "inf", "over", "status"):
            assert any(which[name] in m for m in messages), (name, messages)
    text = (tmp_path / "r.md").read_text()
    assert which["over"] in text and "140.0%" in text and "outside 0 to 100" in text  # the note, in the file too
    assert db_bytes(path) == before


def test_export_trials_and_status_survive_broken_rows(broken_rows: tuple, tmp_path: Path) -> None:
    path, url, _, which = broken_rows
    before = db_bytes(path)
    for args in (("export", "--db", url, "--out", str(tmp_path / "a.csv")), ("export", "--db", url, "--curves", "--out", str(tmp_path / "c.csv")),
                 ("trials", "--db", url), ("trials", "--db", url, "--json"), ("status", "--db", url)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = invoke(*args)
        assert result.exit_code == 0, (args, result.output)
        assert "Traceback" not in result.output and "JSONDecodeError" not in result.output
        if args[0] == "export" and "--curves" not in args:
            messages = " ".join(str(w.message) for w in caught)
            assert which["config"] in messages and "not a JSON object" in messages
    assert db_bytes(path) == before


# ---- another application's database -------------------------------------------------------------------
def test_a_foreign_database_is_named_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("CREATE TABLE trials (id INTEGER PRIMARY KEY, name TEXT)")
        connection.execute("INSERT INTO trials (name) VALUES ('not ours')")
    connection.close()
    url = f"sqlite:///{path}"
    before = db_bytes(path)
    for args in (("report", "--table", "2", "--db", url), ("export", "--db", url, "--out", str(tmp_path / "x.csv")),
                 ("db", "upgrade", "--db", url), ("db", "check", "--db", url), ("trials", "--db", url), ("status", "--db", url),
                 ("sweep", str(EXPERIMENTS / "smoke.toml"), "--db", url, "--no-progress")):
        result = invoke(*args)
        assert result.exit_code == 1, (args, result.output)
        assert "is not an fptlab database" in result.output and "trials" in result.output and "Traceback" not in result.output
        assert db_bytes(path) == before, args
    assert not (tmp_path / "x.csv").exists()


# ---- artifact rows that point outside the storage folder ---------------------------------------------
@pytest.fixture()
def artifact_db(tmp_path: Path, data_dir: Path):
    """Figure 3's three FPT Bit XOR trials finished, each with an attention record: seed 0 inside the
    storage folder (good), the others set per test."""
    import numpy as np

    storage = tmp_path / "storage"
    store = Store(f"sqlite:///{tmp_path / 'a.db'}")
    store.ensure_schema()
    cells = spec_cells(EXPERIMENTS / "table2.toml", data_dir)
    register(store, "table2", [cfg for _, cfg in cells])
    fpt = sorted((labels["seed"], cfg.hash) for labels, cfg in cells if (labels.get("variant"), labels.get("task")) == ("fpt", "bit_xor"))
    att = np.tril(np.ones((2, 10, 10))) / np.arange(1, 11)[None, :, None]
    for _, h in fpt:
        record(store, h, accuracy=1.0)
    store.add_artifact(fpt[0][1], "attention", *write_attention(storage / "trials" / fpt[0][1], att, storage=storage))
    return store, storage, [h for _, h in fpt], att


def _outside_file(tmp_path: Path, att) -> Path:
    from tests.report.builders import write_attention as write

    write(tmp_path / "outside", att, storage=tmp_path)
    return tmp_path / "outside" / "attention.safetensors"


@pytest.mark.parametrize("how", ["absolute", "climbs", "symlink-out", "fifo", "device-link", "folder"])
def test_artifact_rows_outside_the_storage_folder_are_refused_and_never_opened(how: str, artifact_db, tmp_path: Path,
                                                                                  data_dir: Path, monkeypatch) -> None:
    import safetensors.numpy

    store, storage, hashes, att = artifact_db
    outside = _outside_file(tmp_path, att)
    inside = storage / "trials" / hashes[1]
    inside.mkdir(parents=True)
    if how == "absolute":
        location = str(outside)
    elif how == "climbs":
        location = "trials/../../outside/attention.safetensors"
    elif how == "symlink-out":
        (inside / "attention.safetensors").symlink_to(outside)
        location = f"trials/{hashes[1]}/attention.safetensors"
    elif how == "fifo":
        os.mkfifo(inside / "attention.safetensors")  # opening it would block the report forever
        location = f"trials/{hashes[1]}/attention.safetensors"
    elif how == "device-link":
        (inside / "attention.safetensors").symlink_to("/dev/zero")
        location = f"trials/{hashes[1]}/attention.safetensors"
    else:
        location = f"trials/{hashes[1]}"
    store.add_artifact(hashes[1], "attention", location, {})
    opened: list[str] = []
    real = safetensors.numpy.load_file
    monkeypatch.setattr(safetensors.numpy, "load_file", lambda p, *a, **k: (opened.append(str(p)), real(p, *a, **k))[1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        [out] = make_report(["figure3"], store, ReportOptions(experiments=EXPERIMENTS, data_dir=data_dir, storage=storage))
    assert opened == [str((storage / "trials" / hashes[0] / "attention.safetensors").resolve())]  # only the good one
    refused = [n for n in out.notes if hashes[1] in n and "refused and not opened" in n]
    assert refused, out.notes
    assert any(hashes[1] in str(w.message) and issubclass(w.category, FptlabWarning) for w in caught)


def test_a_body_record_outside_the_storage_is_refused(artifact_db, tmp_path: Path) -> None:
    from fptlab.bodies import locate_body
    from fptlab.errors import DataNotFoundError

    store, storage, hashes, _ = artifact_db
    elsewhere = tmp_path / "evil-body"
    elsewhere.mkdir()
    (elsewhere / "body.json").write_text("{}")
    (elsewhere / "body.safetensors").write_bytes(b"")
    store.add_artifact(hashes[2], "body", str(elsewhere), {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataNotFoundError, match="no saved body found"):
            locate_body(f"trial:{hashes[2]}", roots=[tmp_path / "none"], store=store, storage=storage)
    assert any("refused and not opened" in str(w.message) and hashes[2] in str(w.message) for w in caught)


def test_migration_0003_makes_old_absolute_locations_relative() -> None:
    import importlib

    migration = importlib.import_module("fptlab.store.migrations.versions.0003_relative_artifacts")
    h = "0123456789abcdef"
    assert migration.relative_location(f"/shared/runs/trials/{h}/attention.safetensors", h) == f"trials/{h}/attention.safetensors"
    assert migration.relative_location(f"/a/trials/{h}/body", h) == f"trials/{h}/body"
    assert migration.relative_location("/etc/passwd", h) is None
    assert migration.relative_location(f"/x/trials/{'f' * 16}/a.json", h) is None  # another trial's folder
    assert migration.relative_location(f"trials/{h}/a.json", h) is None  # already relative


# ---- a report file carries the notes; a spec from the database is checked ------------------------------
def test_a_figure_only_markdown_report_is_not_empty(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    assert invoke("db", "upgrade", "--db", url).exit_code == 0
    out = tmp_path / "f.md"
    result = invoke("report", "--figure", "3", "--db", url, "--experiments", str(EXPERIMENTS), "--out", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "### Figure 3" in text and "not finished" in text and "fptlab sweep" in text
    assert "![" in text and "f-figures/figure3-1.png" in text  # the image beside the report


@pytest.mark.parametrize("stored, says", [
    ("not json {", "is not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"experiment": {"name": "table2", "base": "../../etc/passwd"}, "defaults": {"task": "bit_xor"}}', "inheritance needs a file"),
    ('{"experiment": {"name": "table2"}, "defaults": {"task": "bit_xor"}, "grid": {"seed": ' + str(list(range(4000))) +
     ', "lr": ' + str([1e-3 + i * 1e-6 for i in range(3000)]) + "}}", "cells (over"),
])
def test_a_spec_read_back_from_the_database_is_checked_and_its_failure_is_an_error(stored: str, says: str, tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    url = f"sqlite:///{path}"
    store = Store(url)
    store.ensure_schema()
    store.upsert_experiment("table2", "", stored, "x" * 16)
    store.close()
    empty = tmp_path / "no-specs"
    empty.mkdir()
    before = db_bytes(path)
    out = tmp_path / "r.md"
    result = invoke("report", "--table", "2", "--db", url, "--experiments", str(empty), "--out", str(out))
    assert result.exit_code == 1 and "Error:" in result.output and says in result.output, result.output
    assert says in out.read_text()  # the report is still written, saying what is wrong
    assert db_bytes(path) == before


def test_a_sweep_that_shrinks_a_stored_spec_warns(tmp_path: Path) -> None:
    from fptlab.sweep import load_spec
    from fptlab.sweep.run import register_cells as register_spec

    store = Store(f"sqlite:///{tmp_path / 'g.db'}")
    store.ensure_schema()
    head = '[experiment]\nname = "g"\n[defaults]\ntask = "bit_xor"\nbackbone = "bert-tiny"\ninit = "random"\n'
    (tmp_path / "g.toml").write_text(head + "[grid]\nseed = [0, 1, 2]\n")
    spec = load_spec(tmp_path / "g.toml")
    register_spec(store, spec, list(spec.cells))
    (tmp_path / "g.toml").write_text(head + "[grid]\nseed = [0]\n")
    smaller = load_spec(tmp_path / "g.toml")
    with pytest.warns(FptlabWarning, match="leaves out 2 of the 3 cells swept before"):
        register_spec(store, smaller, list(smaller.cells))
    (tmp_path / "g.toml").write_text(head + "[grid]\nseed = [0, 1, 2, 3]\n")
    grown = load_spec(tmp_path / "g.toml")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        register_spec(store, grown, list(grown.cells))  # growing is silent
