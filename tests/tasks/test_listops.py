"""ListOps task: generator, tokenizers, LRA loader, resolve and cache (fast: tiny generated sets)."""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

import numpy as np
import pytest

from fptlab.errors import ConfigError, DataNotFoundError
from fptlab.tasks import TASKS
from fptlab.tasks import _listops_gen as gen
from fptlab.tasks.listops import (
    PAPER_VOCAB,
    STRUCTURED_VOCAB,
    ListOpsOptions,
    cache_file,
    encode_texts,
    generate_splits,
    read_tsv,
)

TASK = TASKS.get("listops")
# Small trees, short lengths: a few hundred samples in well under a second.
TINY = dict(source="generated", n_train=40, n_val=10, n_test=10, min_length=10, max_length=60, max_depth=4)
EXAMPLE = "[MAX 4 3 [MIN 2 3 ] 1 0 ]"
EXAMPLE_LRA = "( ( ( ( ( ( [MAX 4 ) 3 ) ( ( ( [MIN 2 ) 3 ) ] ) ) 1 ) 0 ) ] )"  # LRA's form of EXAMPLE


# ---- independent reference implementations (plain Python, written from LRA's description) --------
REDUCE = {"MIN": min, "MAX": max, "MED": lambda a: int(statistics.median(a)), "SM": lambda a: sum(a) % 10}


def parse(text: str):
    """Either text form -> nested (op, [args]) / int, ignoring parentheses."""
    stack: list[list] = [[]]
    ops: list[str] = []
    for tok in text.replace("(", " ").replace(")", " ").split():
        if tok.startswith("["):
            ops.append(tok[1:])
            stack.append([])
        elif tok == "]":
            args = stack.pop()
            stack[-1].append((ops.pop(), args))
        else:
            stack[-1].append(int(tok))
    assert not ops and len(stack) == 1 and len(stack[0]) == 1, text
    return stack[0][0]


def value(node) -> int:
    return node if isinstance(node, int) else REDUCE[node[0]]([value(a) for a in node[1]])


def lra_text(node) -> str:
    """LRA's to_string: ((op, a1), a2), ..., END, each pair wrapped in '( ... )'."""
    if isinstance(node, int):
        return str(node)
    op, args = node
    text = f"( [{op} {lra_text(args[0])} )"
    for arg in args[1:]:
        text = f"( {text} {lra_text(arg)} )"
    return f"( {text} ] )"


def lra_length(node) -> int:
    return 1 if isinstance(node, int) else 2 + sum(lra_length(a) for a in node[1])


def texts(rows: gen.Ragged) -> list[str]:
    return [gen.ids_to_text(rows.row(i)) for i in range(len(rows))]


# ---- generator ----------------------------------------------------------------------------------
def test_generator_is_a_function_of_the_options():
    a = generate_splits(ListOpsOptions(**TINY))
    b = generate_splits(ListOpsOptions(**TINY))
    c = generate_splits(ListOpsOptions(**TINY, data_seed=1))
    for s in ("train", "val", "test"):
        assert texts(a[s][0]) == texts(b[s][0]) and (a[s][1] == b[s][1]).all()
    assert texts(a["train"][0]) != texts(c["train"][0])
    assert [len(a[s][0]) for s in ("train", "val", "test")] == [40, 10, 10]


@pytest.mark.parametrize("settings", [TINY, dict(source="generated", n_train=12, n_val=2, n_test=2)])
def test_generated_samples_match_lra_format_length_and_labels(settings):
    opts = ListOpsOptions(**settings)
    for rows, labels in generate_splits(opts).values():
        assert labels.dtype == np.int64
        for text, label in zip(texts(rows), labels):
            tree = parse(text)
            assert lra_text(tree) == text  # exactly LRA's parenthesised text
            assert opts.min_length < lra_length(tree) < opts.max_length
            assert value(tree) == label


def test_generated_samples_are_distinct_across_splits():
    splits = generate_splits(ListOpsOptions(**{**TINY, "n_train": 300}))
    everything = [t for rows, _ in splits.values() for t in texts(rows)]
    assert len(set(everything)) == len(everything) == 320


def test_generator_dedups_a_small_space_and_stops_when_exhausted(monkeypatch):
    # Length exactly 4: "[OP d d ]", 4 operators x 100 digit pairs = 400 distinct expressions.
    s = gen.GenSettings(min_length=3, max_length=5, max_depth=2, max_args=2)
    rows, labels = gen.generate(390, s, np.random.default_rng(0))
    assert len(set(texts(rows))) == 390
    monkeypatch.setattr(gen, "_MAX_FRUITLESS_ROOTS", 4 * gen.BATCH_ROOTS)
    with pytest.raises(ConfigError, match="too few distinct"):
        gen.generate(401, s, np.random.default_rng(0))


def test_median_rounds_down_like_lra():
    rows = gen.texts_to_ragged(["[MED 1 2 ]", "[MED 9 0 4 7 ]", "[SM 9 9 9 ]"])
    assert [value(parse(t)) for t in texts(rows)] == [1, 5, 7]
    s = gen.GenSettings(min_length=3, max_length=20, max_depth=3, max_args=4)
    rows, labels = gen.generate(200, s, np.random.default_rng(3))
    assert [value(parse(t)) for t in texts(rows)] == labels.tolist()


# ---- tokenizers ---------------------------------------------------------------------------------
def test_vocabularies_are_fixed_sorted_and_sized():
    assert len(PAPER_VOCAB) == 15 and len(STRUCTURED_VOCAB) == 18
    for vocab in (PAPER_VOCAB, STRUCTURED_VOCAB):
        assert vocab[0] == "<pad>" and list(vocab[1:]) == sorted(vocab[1:])
    assert TASK.spec(ListOpsOptions()).input_dim == 15
    assert TASK.spec(ListOpsOptions(tokenizer="structured")).input_dim == 18


def test_paper_tokenizer_keeps_alphanumeric_runs_only():
    assert value(parse(EXAMPLE)) == 4 and value(parse(EXAMPLE_LRA)) == 4
    ids = encode_texts([EXAMPLE, EXAMPLE_LRA], ListOpsOptions(max_len=12))
    expected = ["MAX", "4", "3", "MIN", "2", "3", "1", "0"]
    assert ids.dtype == np.int64 and ids.shape == (2, 12)
    for row in ids:
        assert [PAPER_VOCAB[i] for i in row[:8]] == expected and (row[8:] == 0).all()


def test_structured_tokenizer_keeps_the_tree():
    opts = ListOpsOptions(tokenizer="structured", max_len=40)
    compact, lra = encode_texts([EXAMPLE, EXAMPLE_LRA], opts)
    assert " ".join(STRUCTURED_VOCAB[i] for i in compact if i) == EXAMPLE
    assert lra_text(parse(EXAMPLE)) == EXAMPLE_LRA and len(EXAMPLE_LRA.split()) < 40
    assert " ".join(STRUCTURED_VOCAB[i] for i in lra if i) == EXAMPLE_LRA
    no_parens = encode_texts([EXAMPLE_LRA], dataclasses.replace(opts, keep_parens=False))[0]
    assert (no_parens == compact).all()


def test_truncation_and_padding():
    short = encode_texts([EXAMPLE], ListOpsOptions(max_len=3))[0]
    assert [PAPER_VOCAB[i] for i in short] == ["MAX", "4", "3"]
    long = encode_texts([EXAMPLE], ListOpsOptions(tokenizer="structured", max_len=15))[0]
    assert (long[10:] == 0).all() and (long[:10] != 0).all()


def test_fast_lexer_agrees_with_the_general_path():
    odd = ["[MAX 4 3[MIN 2 3]1 0]", "  ( ( [SM 1 ) 2 ) ] )  ", "7"]
    rows, _ = gen.generate(50, gen.GenSettings(10, 60, 4, 10), np.random.default_rng(1))
    all_texts = texts(rows) + odd
    ragged = gen.texts_to_ragged(all_texts)
    assert all((ragged.row(i) == gen.text_to_ids(t)).all() for i, t in enumerate(all_texts))
    with pytest.raises(gen.BadRow, match="'X'") as info:
        gen.texts_to_ragged(["[MAX 1 2 ]", "[MAX 4 X ]"])
    assert info.value.row == 1


# ---- the official LRA files ---------------------------------------------------------------------
def write_lra(folder: Path, n: int = 3) -> dict[str, list[tuple[str, int]]]:
    """A tiny release in LRA's format: header Source<TAB>Target, one expression per line."""
    folder.mkdir(parents=True, exist_ok=True)
    rows, labels = gen.generate(3 * n, gen.GenSettings(10, 60, 4, 10), np.random.default_rng(7))
    lines = list(zip(texts(rows), labels.tolist()))
    content = {"train": lines[:n], "val": lines[n : 2 * n], "test": lines[2 * n :]}
    for split, items in content.items():
        body = "".join(f"{src}\t{tgt}\n" for src, tgt in items)
        (folder / f"basic_{split}.tsv").write_text("Source\tTarget\n" + body)
    return content


@pytest.mark.parametrize("eval_split", ["val", "test"])
def test_lra_loader_reads_official_format(tmp_path, eval_split):
    content = write_lra(tmp_path / "listops")
    data = TASK.load(ListOpsOptions(source="lra", eval_split=eval_split, max_len=30), tmp_path)
    assert data.train.x.shape == (3, 30) and data.train.x.dtype == np.int64
    assert data.train.y.tolist() == [t for _, t in content["train"]]
    assert data.test.y.tolist() == [t for _, t in content[eval_split]]
    expected = encode_texts([s for s, _ in content[eval_split]], ListOpsOptions(max_len=30))
    assert (data.test.x == expected).all()


def test_lra_loader_finds_an_extracted_release_folder_and_explicit_path(tmp_path):
    write_lra(tmp_path / "listops" / "listops-1000")
    assert len(TASK.load(ListOpsOptions(source="lra"), tmp_path).train) == 3
    write_lra(tmp_path / "elsewhere")
    opts = ListOpsOptions(path=str(tmp_path / "elsewhere"))
    assert TASK.resolve(opts, tmp_path / "unused").source == "lra"
    assert len(TASK.load(opts, tmp_path / "unused").test) == 3


def test_missing_lra_files_say_where_and_how(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        TASK.load(ListOpsOptions(source="lra"), tmp_path)
    msg = str(info.value)
    for part in ("basic_train.tsv", str(tmp_path / "listops"), "lra_release.gz", "listops-1000", 'listops.source = "generated"'):
        assert part in msg


def test_malformed_tsv_names_file_and_line(tmp_path):
    bad = tmp_path / "basic_train.tsv"
    bad.write_text("Source\tTarget\n[MAX 1 2 ]\t2\n[MAX 1 Q ]\t1\n")
    with pytest.raises(DataNotFoundError, match=r"basic_train.tsv:3.*'Q'"):
        read_tsv(bad)
    bad.write_text("Source\tTarget\n[MAX 1 2 ]\t12\n")
    with pytest.raises(DataNotFoundError, match=r":2: target '12'"):
        read_tsv(bad)
    bad.write_text("src\tlabel\n")
    with pytest.raises(DataNotFoundError, match="header"):
        read_tsv(bad)


def test_resolve_auto(tmp_path):
    assert TASK.resolve(ListOpsOptions(), tmp_path).source == "generated"
    write_lra(tmp_path / "listops")
    assert TASK.resolve(ListOpsOptions(), tmp_path).source == "lra"
    assert TASK.resolve(ListOpsOptions(source="generated"), tmp_path).source == "generated"


# ---- the task: generated source, cache, options -------------------------------------------------
def test_generated_load_is_cached(tmp_path, monkeypatch):
    opts = ListOpsOptions(**TINY)
    first = TASK.load(opts, tmp_path)
    assert first.spec.input_kind == "tokens" and first.spec.n_classes == 10 and first.spec.seq_len == 512
    assert first.train.x.shape == (40, 512) and first.test.x.shape == (10, 512)
    assert cache_file(opts, tmp_path).parent.name.startswith("generated-")

    def no_generating(*args, **kwargs):
        raise AssertionError("regenerated although cached")

    monkeypatch.setattr(gen, "generate", no_generating)
    again = TASK.load(opts, tmp_path)
    assert (again.train.x == first.train.x).all() and (again.test.y == first.test.y).all()
    # Another tokenizer or length reuses the cached expressions; another eval split too.
    other = TASK.load(dataclasses.replace(opts, tokenizer="structured", max_len=64, eval_split="test"), tmp_path)
    assert other.train.y.tolist() == first.train.y.tolist() and other.train.x.shape == (40, 64)
    assert cache_file(dataclasses.replace(opts, n_train=41), tmp_path) != cache_file(opts, tmp_path)


def test_data_does_not_depend_on_anything_but_options(tmp_path):
    a = TASK.load(ListOpsOptions(**TINY), tmp_path / "a")
    b = TASK.load(ListOpsOptions(**TINY), tmp_path / "b")
    assert (a.train.x == b.train.x).all() and (a.test.x == b.test.x).all()


@pytest.mark.parametrize(
    "bad",
    [
        dict(tokenizer="bpe"),
        dict(source="web"),
        dict(eval_split="train"),
        dict(max_len=0),
        dict(n_val=0),
        dict(min_length=10, max_length=11),
        dict(max_depth=2, max_args=2, min_length=4),
        dict(source="generated", path="x"),
    ],
)
def test_bad_options_are_rejected(bad):
    with pytest.raises(ValueError):
        ListOpsOptions(**bad)


def test_config_loader_turns_bad_options_into_config_error():
    from fptlab.config import config_from_dict

    with pytest.raises(ConfigError, match="tokenizer"):
        config_from_dict({"task": "listops", "listops": {"tokenizer": "bpe"}})
    with pytest.raises(ConfigError, match="min_length"):
        config_from_dict({"task": "listops", "listops": {"min_length": 5000}})
