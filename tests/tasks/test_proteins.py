"""Contracts of the protein tasks: TAPE vocabulary, remote homology loaders, peptides."""

from __future__ import annotations

import io
import json
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from fptlab import assets
from fptlab.errors import ConfigError, DataNotFoundError, FptlabError
from fptlab.tasks import TASKS, _amino
from fptlab.tasks import remote_homology as rh
from fptlab.tasks.peptides import dedupe, read_csv, stratified_split
from tests.fixtures import homology_records, write_homology_json

TAPE_ORDER = ["<pad>", "<mask>", "<cls>", "<sep>", "<unk>", *"ABCDEFGHIKLMNOPQRSTUVWXYZ"]
HOMOLOGY = TASKS.get("remote_homology")
PEPTIDES = TASKS.get("peptides")
needs_modlamp = pytest.mark.skipif(
    assets.package_file("modlamp", "data/AMPvsUniProt.csv") is None,
    reason="modlamp not installed (pip install --no-deps modlamp)",
)


# ---- vocabulary ---------------------------------------------------------------------------------
def test_vocabulary_is_tapes_30_symbols_in_fixed_order():
    assert list(_amino.VOCAB) == TAPE_ORDER
    assert _amino.VOCAB_SIZE == 30 and _amino.PAD == 0 and _amino.TOKEN_ID["Z"] == 29


def test_encode_known_sequence():
    # <cls> M K V <sep>: TAPE ids 2, 16, 14, 25, 3
    assert _amino.encode("MKV").tolist() == [2, 16, 14, 25, 3]
    assert _amino.encode(" mkv\n").tolist() == [2, 16, 14, 25, 3]
    assert _amino.encode("AJ*é").tolist() == [2, 5, 4, 4, 4, 3]  # unknown letters -> <unk>
    assert _amino.encode("MKV").dtype == np.int64
    assert _amino.decode(_amino.encode("ACDXZ")) == "ACDXZ"


def test_pack_skip_and_truncate():
    seqs = ["MK", "ACDEFG", "W"]  # 4, 8, 3 tokens
    x, kept = _amino.pack(seqs, 5, "skip")
    assert kept.tolist() == [0, 2] and x.shape == (2, 5)
    assert x.tolist() == [[2, 16, 14, 3, 0], [2, 26, 3, 0, 0]]
    x, kept = _amino.pack(seqs, 5, "truncate")
    assert kept.tolist() == [0, 1, 2]
    assert x[1].tolist() == [2, 5, 7, 8, 3]  # <cls> A C D <sep>: cut, still closed by <sep>


# ---- remote homology ----------------------------------------------------------------------------
def test_homology_json_loads_tape_format(tmp_path):
    data = write_homology_json(tmp_path / "remote_homology")
    opts = HOMOLOGY.Options(max_len=16)
    assert HOMOLOGY.resolve(opts, tmp_path).source == "tape"
    task_data = HOMOLOGY.load(opts, tmp_path)
    assert task_data.spec.input_kind == "tokens" and task_data.spec.input_dim == 30
    assert task_data.spec.n_classes == 1195 and task_data.spec.seq_len == 16
    x, y = task_data.train.x, task_data.train.y
    assert x.shape == (20, 16) and x.dtype == np.int64 and y.dtype == np.int64
    assert y.tolist() == [r["fold_label"] for r in data["train"]]
    first = data["train"][0]["primary"]
    assert x[0, : len(first) + 2].tolist() == _amino.encode(first).tolist()
    assert (x[0, len(first) + 2 :] == 0).all()
    assert task_data.test.y.tolist() == [r["fold_label"] for r in data["valid"]]
    holdout = HOMOLOGY.load(HOMOLOGY.Options(max_len=16, eval_split="test_fold_holdout"), tmp_path)
    assert holdout.test.y.tolist() == [r["fold_label"] for r in data["test_fold_holdout"]]


def test_homology_explicit_path_accepts_folder_or_its_parent(tmp_path):
    write_homology_json(tmp_path / "tape" / "remote_homology")
    for path in (tmp_path / "tape", tmp_path / "tape" / "remote_homology"):
        assert len(HOMOLOGY.load(HOMOLOGY.Options(path=str(path), max_len=16), tmp_path / "empty").train) == 20


def test_homology_skip_versus_truncate(tmp_path):
    data = write_homology_json(tmp_path / "remote_homology")
    lengths = np.array([len(r["primary"]) + 2 for r in data["train"]])
    skip = HOMOLOGY.load(HOMOLOGY.Options(max_len=8), tmp_path)
    assert len(skip.train) == (lengths <= 8).sum() < 20
    assert skip.train.y.tolist() == [r["fold_label"] for r, n in zip(data["train"], lengths) if n <= 8]
    trunc = HOMOLOGY.load(HOMOLOGY.Options(max_len=8, long="truncate"), tmp_path)
    assert len(trunc.train) == 20 and (trunc.train.x[lengths > 8, -1] == _amino.SEP).all()


def test_homology_subsample_is_deterministic(tmp_path):
    write_homology_json(tmp_path / "remote_homology")
    opts = HOMOLOGY.Options(max_len=16, n_train=7, n_eval=5)
    a, b = HOMOLOGY.load(opts, tmp_path), HOMOLOGY.load(opts, tmp_path)
    assert len(a.train) == 7 and len(a.test) == 5
    assert np.array_equal(a.train.x, b.train.x) and np.array_equal(a.test.y, b.test.y)
    with pytest.raises(ConfigError, match="n_train"):
        HOMOLOGY.load(HOMOLOGY.Options(max_len=16, n_train=21), tmp_path)


def test_homology_missing_data_names_path_and_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("FPTLAB_OFFLINE", "1")
    for call in (HOMOLOGY.resolve, HOMOLOGY.load):
        with pytest.raises(DataNotFoundError) as err:
            call(HOMOLOGY.Options(), tmp_path)
        message = str(err.value)
        assert str(tmp_path / "remote_homology") in message
        assert "remote_homology.tar.gz" in message and "--task peptides" in message
    with pytest.raises(DataNotFoundError, match="nowhere"):  # explicit path: never downloads
        HOMOLOGY.load(HOMOLOGY.Options(path=str(tmp_path / "nowhere")), tmp_path)


def test_homology_bad_records_are_named(tmp_path):
    root = tmp_path / "remote_homology"
    write_homology_json(root)
    (root / "remote_homology_train.json").write_text(json.dumps([{"primary": "MK", "fold_label": 5000}]))
    with pytest.raises(FptlabError, match="record 0.*fold_label"):
        HOMOLOGY.load(HOMOLOGY.Options(), tmp_path)


def test_homology_options_validate():
    with pytest.raises(ValueError, match="eval_split"):
        HOMOLOGY.Options(eval_split="test")
    with pytest.raises(ValueError, match="max_len"):
        HOMOLOGY.Options(max_len=2)
    with pytest.raises(ValueError, match="n_eval"):
        HOMOLOGY.Options(n_eval=-1)


def test_download_extracts_archive_safely(tmp_path, monkeypatch):
    for var in ("FPTLAB_OFFLINE", "HF_HUB_OFFLINE"):  # online, but served by fake_download below
        monkeypatch.delenv(var, raising=False)
    source = tmp_path / "src"
    data = write_homology_json(source / "remote_homology", splits=("train", "valid"))
    archive = tmp_path / "remote_homology.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "remote_homology", arcname="remote_homology")

    def fake_download(url, dest, **kwargs):  # stands in for assets.download: no network in tests
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(archive.read_bytes())
        return dest

    monkeypatch.setattr(rh.assets, "download", fake_download)
    monkeypatch.setattr(rh, "ARCHIVES", {k: (url, None) for k, (url, _) in rh.ARCHIVES.items()})
    data_dir = tmp_path / "data"
    task_data = HOMOLOGY.load(HOMOLOGY.Options(max_len=16), data_dir)
    assert task_data.train.y.tolist() == [r["fold_label"] for r in data["train"]]
    assert sorted(p.name for p in data_dir.iterdir() if not p.name.endswith(".lock")) == ["remote_homology"]  # archive, temp dir gone

    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(FptlabError, match="unsafe entry"):
        rh.extract_archive(evil, tmp_path / "other")
    assert not (tmp_path / "escape.txt").exists()


def test_lmdb_records_unpickle_safely():
    record = {"primary": "MKV", "fold_label": np.int64(3), "evolutionary": np.ones((3, 30), np.float32)}
    for protocol in (2, 4):
        loaded = rh.safe_loads(pickle.dumps(record, protocol=protocol))
        assert rh._record(loaded, "x") == ("MKV", 3)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        rh.safe_loads(pickle.dumps(print))


def test_lmdb_without_package_says_how_to_install(tmp_path, monkeypatch):
    root = tmp_path / "remote_homology"
    for split in ("train", "valid"):
        (root / f"remote_homology_{split}.lmdb").mkdir(parents=True)
    monkeypatch.setitem(sys.modules, "lmdb", None)  # import lmdb -> ImportError
    with pytest.raises(DataNotFoundError, match="pip install lmdb"):
        HOMOLOGY.load(HOMOLOGY.Options(), tmp_path)


def test_lmdb_loads_tape_format(tmp_path):
    lmdb = pytest.importorskip("lmdb", reason="the optional `lmdb` package is not installed (pip install lmdb)")
    root = tmp_path / "remote_homology"
    root.mkdir()
    data = {split: homology_records(12, i) for i, split in enumerate(("train", "valid"))}
    for split, records in data.items():
        env = lmdb.open(str(root / f"remote_homology_{split}.lmdb"), map_size=1 << 24)
        with env.begin(write=True) as txn:
            for i, record in enumerate(records):
                txn.put(str(i).encode(), pickle.dumps({**record, "fold_label": np.int64(record["fold_label"])}))
            txn.put(b"num_examples", pickle.dumps(len(records)))
        env.close()
    task_data = HOMOLOGY.load(HOMOLOGY.Options(max_len=16), tmp_path)
    assert task_data.train.y.tolist() == [r["fold_label"] for r in data["train"]]
    assert task_data.test.x[0, 0] == _amino.CLS


# ---- peptides -----------------------------------------------------------------------------------
@needs_modlamp
def test_peptides_loads_modlamp_with_documented_sizes():
    opts = PEPTIDES.resolve(PEPTIDES.Options(), Path("unused"))
    assert opts.source == "modlamp"
    task_data = PEPTIDES.load(opts, Path("unused"))
    assert task_data.spec.input_dim == 30 and task_data.spec.n_classes == 2 and task_data.spec.seq_len == 176
    assert task_data.train.x.shape == (3696, 176) and task_data.test.x.shape == (924, 176)
    assert 0.4 < task_data.train.y.mean() < 0.6 and 0.4 < task_data.test.y.mean() < 0.6
    assert (task_data.train.x[:, 0] == _amino.CLS).all()
    train_rows = {row.tobytes() for row in task_data.train.x}
    assert not any(row.tobytes() in train_rows for row in task_data.test.x)  # deduplicated: no leak
    raw = PEPTIDES.load(PEPTIDES.Options(dedupe=False), Path("unused"))
    assert len(raw.train) + len(raw.test) == 5200 and raw.test.y.mean() == 0.5


@needs_modlamp
def test_peptides_split_and_subsample_are_deterministic():
    opts = PEPTIDES.Options(n_train=100, n_test=50)
    a, b = PEPTIDES.load(opts, Path(".")), PEPTIDES.load(opts, Path("."))
    assert a.train.x.shape == (100, 176) and len(a.test) == 50
    assert np.array_equal(a.train.x, b.train.x) and np.array_equal(a.test.y, b.test.y)
    full = PEPTIDES.load(PEPTIDES.Options(), Path("."))
    full_rows = {row.tobytes() for row in full.train.x}
    assert all(row.tobytes() in full_rows for row in a.train.x)  # a subset of the full train split


def test_peptides_csv_source(tmp_path):
    path = tmp_path / "mine.csv"
    rows = [f"MK{'ACDEFGHIKL'[i % 10]}{'PQRS'[i // 10]},{i % 2}" for i in range(40)]  # 40 distinct
    path.write_text("sequence,label\n" + "\n".join(rows) + "\n")
    sequences, _, names = read_csv(path)
    assert len(sequences) == 40 and names == ("0", "1")
    opts = PEPTIDES.resolve(PEPTIDES.Options(path=str(path), max_len=20), tmp_path)
    assert opts.source == "csv"
    task_data = PEPTIDES.load(opts, tmp_path)
    assert len(task_data.train) + len(task_data.test) == 40 and task_data.train.x.shape[1] == 20
    path.write_text("sequence,label\nMKV,2\n")
    with pytest.raises(FptlabError, match="line 2"):
        PEPTIDES.load(opts, tmp_path)


def test_peptides_dedupe_and_stratified_split():
    keep, repeated, conflicting = dedupe(["AA", "CC", "AA", "DD", "DD"], np.array([0, 1, 0, 0, 1]))
    assert keep.tolist() == [0, 1] and repeated == 2 and conflicting == 1
    labels = np.array([0] * 50 + [1] * 30)
    train, test = stratified_split(labels, 0.2)
    assert (labels[test] == 0).sum() == 10 and (labels[test] == 1).sum() == 6
    assert np.array_equal(test, stratified_split(labels, 0.2)[1]) and not set(train) & set(test)


def test_peptides_missing_modlamp_explains_install(monkeypatch, tmp_path):
    monkeypatch.setattr(assets, "package_file", lambda module, relative: None)
    for call in (PEPTIDES.resolve, PEPTIDES.load):
        with pytest.raises(DataNotFoundError, match="pip install --no-deps modlamp"):
            call(PEPTIDES.Options(), tmp_path)
    with pytest.raises(DataNotFoundError, match="nothere.csv"):
        PEPTIDES.load(PEPTIDES.Options(source="csv", path=str(tmp_path / "nothere.csv")), tmp_path)


def test_peptides_options_validate():
    with pytest.raises(ValueError, match="path"):
        PEPTIDES.Options(source="csv")
    with pytest.raises(ValueError, match="source = 'csv'"):
        PEPTIDES.Options(source="modlamp", path="x.csv")
    with pytest.raises(ValueError, match="test_fraction"):
        PEPTIDES.Options(test_fraction=1.0)
    with pytest.raises(ValueError, match="long"):
        PEPTIDES.Options(long="drop")
