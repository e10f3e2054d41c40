"""Migration 0004 on trials stored by fptlab 0.3.0: the two 0.4.0 fixes that change a computation are
pinned on them (21k-only ViT weights under the renamed backbones; unmasked pads in bidirectional
bodies), their hashes become exactly what 0.4.0 computes for the pinned settings, trials no fix
touched keep their hash, and downgrade restores them."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, text

from fptlab.config import config_from_dict
from fptlab.store import Store, schema

NEW_KEYS = ("val_fraction", "patience", "min_delta", "mask_padding")


def stored_030(raw: dict) -> tuple[str, str]:
    """(hash, config JSON) as fptlab 0.3.0 stored this config: the 0.4.0 options were not there."""
    cfg = config_from_dict(raw)
    full = json.loads(cfg.record_json())
    for key in NEW_KEYS:
        full.pop(key)
    full["model"] = {k: v for k, v in full["model"].items() if k not in ("flavour", "hidden_dropout", "attention_dropout")}
    return cfg.hash, json.dumps(full, sort_keys=True, separators=(",", ":"))


CASES = {
    "vit-pretrained": {"task": "cifar10", "backbone": "vit-base"},
    "vit-random": {"task": "cifar10", "backbone": "vit-base", "init": "random"},
    "vit-folder": {"task": "cifar10", "backbone": "vit-base", "weights": "/models/vit"},
    "minilm-listops": {"task": "listops", "backbone": "minilm", "listops": {"source": "generated"}},
    "minilm-peptides": {"task": "peptides", "backbone": "minilm"},
    "minilm-peptides-last": {"task": "peptides", "backbone": "minilm", "peptides": {"readout": "last"}},
    "gpt2-listops": {"task": "listops", "backbone": "gpt2", "listops": {"source": "generated"}},
    "vit-homology": {"task": "remote_homology", "backbone": "vit-base", "remote_homology": {"source": "tape"}},
}
EXPECTED = {  # the 0.4.0 config each 0.3.0 trial means
    "vit-pretrained": {"task": "cifar10", "backbone": "vit-base-in21k"},
    "vit-random": CASES["vit-random"],
    "vit-folder": CASES["vit-folder"],
    "minilm-listops": {**CASES["minilm-listops"], "mask_padding": False},
    "minilm-peptides": {**CASES["minilm-peptides"], "mask_padding": False},
    "minilm-peptides-last": CASES["minilm-peptides-last"],  # read at the last position: no pad id, nothing masked
    "gpt2-listops": CASES["gpt2-listops"],  # causal: never masked
    "vit-homology": {**CASES["vit-homology"], "backbone": "vit-base-in21k", "mask_padding": False},
}


def test_upgrade_pins_the_030_computation_and_rekeys_exactly(db_url: str) -> None:
    store = Store(db_url)
    store.upgrade("0003")
    engine = create_engine(db_url)
    with engine.begin() as connection:
        for i, raw in enumerate(CASES.values(), start=1):
            h, config = stored_030(raw)
            connection.execute(text("INSERT INTO trials (id, config_hash, config, task, backbone, init, seed, status, attempts, created) "
                                    "VALUES (:i, :h, :c, :t, :b, :n, 0, 'completed', 1, '2026-01-01')"),
                               {"i": i, "h": h, "c": config, "t": raw["task"], "b": raw["backbone"], "n": raw.get("init", "pretrained")})
    store.upgrade()
    assert store.revision() == schema.head_revision()
    with engine.connect() as connection:
        got = {i: (h, b) for i, h, b in connection.execute(text("SELECT id, config_hash, backbone FROM trials"))}
    for i, name in enumerate(CASES, start=1):
        want = config_from_dict(EXPECTED[name])
        assert got[i] == (want.hash, want.backbone), name
    unchanged = {name for name in CASES if EXPECTED[name] is CASES[name]}
    assert unchanged == {"vit-random", "vit-folder", "minilm-peptides-last", "gpt2-listops"}
    from alembic import command

    with store._sessions.write_engine.begin() as connection:
        command.downgrade(schema.alembic_config(connection), "0003")
    with engine.connect() as connection:
        back = {i: h for i, h in connection.execute(text("SELECT id, config_hash FROM trials"))}
    assert back == {i: stored_030(raw)[0] for i, raw in enumerate(CASES.values(), start=1)}
    engine.dispose()


def test_a_trial_whose_stored_hash_the_frozen_identity_cannot_reproduce_stops_the_upgrade(db_url: str) -> None:
    store = Store(db_url)
    store.upgrade("0003")
    engine = create_engine(db_url)
    _, config = stored_030(CASES["vit-pretrained"])
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO trials (id, config_hash, config, task, backbone, init, seed, status, attempts, created) "
                                "VALUES (1, 'ffffffffffffffff', :c, 'cifar10', 'vit-base', 'pretrained', 0, 'completed', 1, '2026-01-01')"),
                           {"c": config})
    engine.dispose()
    with pytest.raises(Exception, match="does not hash to its stored hash"):
        store.upgrade()
    assert store.revision() == "0003"  # one transaction: nothing half done
