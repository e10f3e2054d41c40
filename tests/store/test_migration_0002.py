"""Migration 0002 on a database written by fptlab 0.1.0 (tests/store/data): the identity re-keying
keeps every finished cell, pins the old behaviour of what 0.2.0 fixed, and downgrades back exactly."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine, text
from typer.testing import CliRunner

from fptlab.assets import package_dir
from fptlab.cli import app
from fptlab.config import config_from_dict
from fptlab.store import Store, schema

FIXTURE = Path(__file__).parent / "data" / "fptlab-0.1.0.json"
QUICKSTART = Path(__file__).parent / "data" / "quickstart-0.1.0.toml"  # the spec the fixture's trials came from
TABLES = ("experiments", "trials", "experiment_trials", "results", "metrics", "artifacts")
DATES = ("created", "started", "finished", "heartbeat")


def load_010(url: str) -> dict:
    """A database at revision 0001 holding exactly the fixture's rows."""
    data = json.loads(FIXTURE.read_text())
    Store(url).upgrade("0001")
    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    with engine.begin() as connection:
        for table in TABLES:
            rows = [{k: datetime.fromisoformat(v) if k in DATES and v else v for k, v in row.items()} for row in data[table]]
            if rows:
                connection.execute(meta.tables[table].insert(), rows)
        if engine.dialect.name == "postgresql":  # explicit ids: move the sequences past them
            for table in ("experiments", "trials", "artifacts"):
                connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT COALESCE(MAX(id), 1) FROM {table}))"))
    engine.dispose()
    return data


def rows(url: str, sql: str) -> list:
    engine = create_engine(url)
    with engine.connect() as connection:
        out = list(connection.execute(text(sql)))
    engine.dispose()
    return out


def upgrade_cli(url: str) -> None:
    result = CliRunner().invoke(app, ["db", "upgrade", "--db", url])
    assert result.exit_code == 0, result.output
    assert f"schema at {schema.head_revision()}" in result.output


def test_upgrade_keeps_cells_and_their_records(db_url: str) -> None:
    old = load_010(db_url)
    before = {r["id"]: r for r in old["trials"]}
    upgrade_cli(db_url)
    Store(db_url).check()
    after = {r.id: r for r in rows(db_url, "SELECT id, config_hash, config, status, backbone FROM trials")}
    assert set(after) == set(before)
    for trial_id, row in after.items():
        assert row.status == before[trial_id]["status"]
        # The identity round-trips: 0.2.0 code hashes the migrated config to the migrated hash.
        assert config_from_dict(json.loads(row.config)).hash == row.config_hash
    # Results and curves stay attached to their trials (they reference ids, which did not change).
    for table in ("results", "metrics", "experiment_trials"):
        counted = dict(rows(db_url, f"SELECT trial_id, COUNT(*) FROM {table} GROUP BY trial_id"))
        expected: dict[int, int] = {}
        for r in old[table]:
            expected[r["trial_id"]] = expected.get(r["trial_id"], 0) + 1
        assert counted == expected, table


def test_upgrade_pins_what_0_2_0_changed(db_url: str) -> None:
    old = load_010(db_url)
    upgrade_cli(db_url)
    by_id = {r.id: json.loads(r.config) for r in rows(db_url, "SELECT id, config FROM trials")}
    for row in old["trials"]:
        before, config = json.loads(row["config"]), by_id[row["id"]]
        if before["task"] in ("peptides", "remote_homology"):
            assert config[before["task"]]["readout"] == "last"  # 0.1.0 read the last padded position
        if before["backbone"].startswith("gpt2"):  # the reference's init is new: 0.1.0 ran transformers' own
            assert config["model"]["random_init"] == ("transformers" if before["init"] == "random" else "reference")
        if before["backbone"] == "minilm-tiny":
            assert config["backbone"] == "bert-tiny"
    # A cell no fix touched hashes as 0.2.0 computes it from scratch; a pinned one differs from the new default.
    raws = json.loads(next(e for e in old["experiments"] if e["name"] == "pins")["spec_text"])
    stored = {json.loads(r.config)["backbone"] + "/" + json.loads(r.config)["init"] + "/" + json.loads(r.config)["task"]: r.config_hash
              for r in rows(db_url, "SELECT config, config_hash FROM trials")}
    pretrained = next(r for r in raws if r["backbone"] == "gpt2" and r["init"] == "pretrained" and r["task"] == "bit_xor")
    assert stored["gpt2/pretrained/bit_xor"] == config_from_dict(pretrained).hash
    random = next(r for r in raws if r["backbone"] == "gpt2" and r["init"] == "random" and r["task"] == "bit_xor")
    assert stored["gpt2/random/bit_xor"] != config_from_dict(random).hash
    assert stored["gpt2/random/bit_xor"] == config_from_dict({**random, "model": {"random_init": "transformers"}}).hash


@pytest.mark.skipif(package_dir("modlamp") is None or package_dir("mlxtend") is None, reason="quickstart data packages not installed")
def test_quickstart_dry_run_after_upgrade_shows_only_what_fixes_changed_new(db_url: str) -> None:
    load_010(db_url)
    upgrade_cli(db_url)
    result = CliRunner().invoke(app, ["sweep", str(QUICKSTART), "--dry-run", "--db", db_url])
    assert result.exit_code == 0, result.output
    cells = [line.split() for line in result.output.splitlines() if line.startswith("  ")]
    assert len(cells) == 30
    new = [c for c in cells if c[1] == "new"]
    done = [c for c in cells if c[1] == "completed"]
    assert len(done) == 18 and len(new) == 12
    # peptides: the read-out default changed in 0.2.0; ListOps on MiniLM: pads are masked from 0.4.0
    assert all("task=peptides" in c or "task=listops" in c for c in new)
    assert "18 already done" in result.output


def test_downgrade_restores_the_0_1_0_identity(db_url: str) -> None:
    old = load_010(db_url)
    store = Store(db_url)
    store.upgrade()
    from alembic import command


    with store._sessions.write_engine.begin() as connection:
        command.downgrade(schema.alembic_config(connection), "0001")
    after = {r.id: (r.config_hash, json.loads(r.config), r.backbone) for r in rows(db_url, "SELECT id, config_hash, config, backbone FROM trials")}
    for row in old["trials"]:
        assert after[row["id"]] == (row["config_hash"], json.loads(row["config"]), row["backbone"])


def test_downgrade_refuses_what_0_1_0_cannot_express(db_url: str) -> None:
    store = Store(db_url)
    store.upgrade()
    cfg = config_from_dict({"task": "bit_xor", "backbone": "gpt2-tiny", "init": "random", "model": {"depth": 1}})
    experiment = store.upsert_experiment("e", "", "", "x")
    store.add_trials(experiment, [cfg])
    from alembic import command

    with pytest.raises(RuntimeError, match=rf"Cannot downgrade trial {cfg.hash}.*model.depth"):
        with store._sessions.write_engine.begin() as connection:
            command.downgrade(schema.alembic_config(connection), "0001")
    assert store.revision() == schema.head_revision()  # one transaction: nothing half done
