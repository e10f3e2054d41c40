"""The database password never reaches a file: not Tune's saved searcher and tuner state, not the
run folders, not Ray's session logs, not a message. A real sweep logs in to PostgreSQL over TCP as a
password-protected role, then every file it could have written is searched for the password."""

from __future__ import annotations

import os
import pickle
import secrets
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from fptlab.store import Store, StoreError, mask_url
from fptlab.store.urls import strip_password
from tests.store.conftest import _pg_admin, pg_base_url, require_pg

SPEC = """
[experiment]
name = "secret"

[defaults]
task = "bit_xor"
backbone = "bert-tiny"
init = "random"
steps = 4
eval_every = 2
checkpoint_every = 2
batch_size = 4

[defaults.bit_xor]
n_bits = 3
test_size = 16

[grid]
seed = [0]
"""


@pytest.fixture
def password_url() -> Iterator[tuple[str, str]]:
    """(URL with user:password over TCP, password) of a fresh login role that owns its own schema.
    Its tables land in that schema: PostgreSQL's default search_path starts with "$user"."""
    require_pg()
    role, password = f"fptlab_pw_{uuid.uuid4().hex[:8]}", "pw" + secrets.token_hex(12)
    database = make_url(pg_base_url()).database
    _pg_admin(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    try:
        _pg_admin(f"GRANT CONNECT ON DATABASE {database} TO {role}")
        _pg_admin(f"CREATE SCHEMA {role} AUTHORIZATION {role}")
        yield f"postgresql+psycopg://{role}:{password}@127.0.0.1:5432/{database}", password
    finally:
        _pg_admin(f"DROP SCHEMA IF EXISTS {role} CASCADE")
        _pg_admin(f"REVOKE ALL ON DATABASE {database} FROM {role}")
        _pg_admin(f"DROP ROLE IF EXISTS {role}")


def files_holding(root: Path, secret: str) -> list[str]:
    needle = secret.encode()
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle in path.read_bytes():
                    found.append(str(path))
            except OSError:  # a socket or a file Ray removed while we walked
                pass
    return found


# ---- pickling: what Tune saves ---------------------------------------------------------------------
def test_pickle_holds_no_password_and_comes_back_whole_in_this_process() -> None:
    url = "postgresql+psycopg://fpt:hunter2secret@db.example:5432/fptlab"
    store = Store(url)
    data = pickle.dumps(store)
    assert b"hunter2secret" not in data
    clone = pickle.loads(data)
    assert clone.url == url and clone.masked_url == store.masked_url


def test_unpickled_elsewhere_the_password_comes_from_the_environment(tmp_path: Path) -> None:
    """In a process that never saw the URL, the store has no password of its own: libpq takes it from
    PGPASSWORD / ~/.pgpass, or $FPTLAB_DB supplies the full URL when it names the same database."""
    url = "postgresql+psycopg://fpt:hunter2secret@db.example:5432/fptlab"
    blob = tmp_path / "store.pkl"
    blob.write_bytes(pickle.dumps(Store(url)))
    code = f"import pickle; s = pickle.loads(open({str(blob)!r}, 'rb').read()); print(s.url)"
    env = {k: v for k, v in os.environ.items() if k != "FPTLAB_DB"}
    bare = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert bare.stdout.strip() == "postgresql+psycopg://fpt@db.example:5432/fptlab"
    env["FPTLAB_DB"] = url
    full = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert full.stdout.strip() == url


def test_strip_and_mask_the_password_in_either_place() -> None:
    assert strip_password("postgresql+psycopg://u:p@h/d") == "postgresql+psycopg://u@h/d"
    assert strip_password("postgresql+psycopg://u@h/d?password=p&sslmode=require") == "postgresql+psycopg://u@h/d?sslmode=require"
    assert mask_url("postgresql+psycopg://u@h/d?password=p") == "postgresql+psycopg://u@h/d?password=***"
    assert strip_password("sqlite:///x.db") == "sqlite:///x.db"
    url = "postgresql+psycopg://u@h/d?password=querysecret"
    assert b"querysecret" not in pickle.dumps(Store(url)) and pickle.loads(pickle.dumps(Store(url))).url == url


def test_a_refused_login_names_the_database_but_not_the_password(password_url) -> None:
    url, password = password_url
    wrong = url.replace(password, password + "x")
    with pytest.raises(StoreError) as info:
        Store(wrong, outage_seconds=0).check()
    message = str(info.value)
    assert "authentication failed" in message and "***" in message and password not in message


# ---- a real sweep ---------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.postgres
def test_a_sweep_writes_the_password_nowhere(password_url, tmp_path: Path) -> None:
    url, password = password_url
    spec = tmp_path / "secret.toml"
    spec.write_text(SPEC)
    storage = tmp_path / "runs"
    # Ray's session folder (logs, job table dumps) goes under a temp dir of our own; its socket paths
    # must stay short, so not under pytest's deep tmp_path.
    ray_tmp = Path(tempfile.mkdtemp(prefix="fpr", dir="/tmp"))
    env = {**os.environ, "FPTLAB_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "RAY_TMPDIR": str(ray_tmp)}
    env.pop("FPTLAB_DB", None)
    try:
        cmd = [sys.executable, "-m", "fptlab.cli", "sweep", str(spec), "--db", url, "--storage", str(storage),
               "--num-cpus", "1", "--no-progress"]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert password not in done.stdout + done.stderr
        store = Store(url)
        try:
            (trial,) = store.trials()
            assert trial["status"] == "completed" and store.count_metrics(trial["config_hash"]) > 0
        finally:
            store.close()
        assert list(storage.rglob("tuner.pkl")), "Tune saved no state: the test would prove nothing"
        assert files_holding(tmp_path, password) == []
        assert files_holding(ray_tmp, password) == []
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


# ---- reports ------------------------------------------------------------------------------------
@pytest.mark.postgres
def test_a_report_never_shows_the_password(password_url, tmp_path: Path) -> None:
    """The report's "fill with" command repeats --db: masked on the terminal and in every file format,
    against a real password-protected role holding a registered, unfinished table."""
    from typer.testing import CliRunner

    from fptlab.cli import app
    from fptlab.sweep import load_spec
    from fptlab.sweep.run import prepare_cells, register_cells

    url, password = password_url
    experiments = Path(__file__).resolve().parents[2] / "experiments"
    store = Store(url)
    try:
        store.ensure_schema()
        spec = load_spec(experiments / "quickstart.toml")
        register_cells(store, spec, prepare_cells(spec, None).cells)
    finally:
        store.close()
    outputs = {}
    for fmt in ("terminal", "md", "csv", "latex", "html"):
        out = tmp_path / f"r.{fmt}"
        args = ["report", "quickstart", "--db", url, "--experiments", str(experiments), "--format", fmt]
        result = CliRunner().invoke(app, args + ([] if fmt == "terminal" else ["--out", str(out)]))
        assert result.exit_code == 0, result.output
        outputs[fmt] = result.output + ("" if fmt == "terminal" else out.read_text())
    for fmt, text in outputs.items():
        assert password not in text, fmt
        assert "fptlab sweep" in text and ":***@127.0.0.1" in text.replace("\\*", "*").replace("&#42;", "*"), fmt
