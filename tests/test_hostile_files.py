"""Hostile or foreign files a run reads get one clear error naming the file and what is wrong, never a
traceback and never code run: a weights folder whose pickle the safe loader refuses, a safetensors
file with a lying header, a config.json of another width or asking for remote code, a saved body
whose body.json lacks or mistypes a field. Checked through `fptlab run` (exit 1, one paragraph) and
on the checking functions themselves; in a sweep, the failed cell's error says the same."""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fptlab.backbones import BACKBONES
from fptlab.cli import app
from fptlab.errors import BadFileError
from fptlab.safefiles import check_safetensors, check_weights_folder

MINILM = {"model_type": "bert", "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536,
          "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2, "architectures": ["BertModel"]}


def run_with_weights(folder: Path, tmp_path: Path, backbone: str = "minilm", init: str = "pretrained"):
    result = CliRunner().invoke(app, ["run", "--task", "bit_xor", "--backbone", backbone, "--init", init, "--steps", "1",
                                      "--no-progress", "--out", str(tmp_path / "runs"), "--set", f"weights={folder}"])
    return result.exit_code, result.output


def assert_one_clear_error(code: int, output: str, *fragments: str) -> None:
    assert code == 1, output
    text = output.strip()
    assert text.startswith("Error: ") and "Traceback" not in output and len(text.splitlines()) == 1, output
    for fragment in fragments:
        assert fragment in output, (fragment, output)


# ---- safetensors headers -------------------------------------------------------------------------------
def _safetensors(path: Path, header: dict | None = None, *, data: bytes | None = None, raw_header: bytes | None = None) -> Path:
    """A file with one F32 tensor 'w' of shape [2, 3] (24 bytes), or the given header/data."""
    header = header if header is not None else {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}
    blob = raw_header if raw_header is not None else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + (data if data is not None else bytes(24)))
    return path


LYING = {
    "offsets-beyond-data": ({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 10**12]}}, "span 1,000,000,000,000 bytes"),
    "shape-disagrees": ({"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 24]}}, "claims shape [4, 4]"),
    "unknown-dtype": ({"w": {"dtype": "F128", "shape": [2, 3], "data_offsets": [0, 24]}}, "dtype 'F128'"),
    "negative-shape": ({"w": {"dtype": "F32", "shape": [-2, 3], "data_offsets": [0, 24]}}, "shape [-2, 3]"),
    "offsets-reversed": ({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [24, 0]}}, "data_offsets [24, 0]"),
    "overlap": ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}, "b": {"dtype": "F32", "shape": [3], "data_offsets": [8, 20]}},
                "overlaps"),
    "hole": ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}},
             "unused"),
    "entry-not-an-object": ({"w": [1, 2, 3]}, "not an object"),
    "header-not-an-object": ([1, 2], "not a JSON object"),
}


@pytest.mark.parametrize("case", sorted(LYING))
def test_a_lying_safetensors_header_is_named(case: str, tmp_path: Path) -> None:
    header, says = LYING[case]
    path = _safetensors(tmp_path / "m.safetensors", header)
    with pytest.raises(BadFileError) as info:
        check_safetensors(path)
    assert str(path) in str(info.value) and says in str(info.value)


def test_header_length_and_json_are_checked(tmp_path: Path) -> None:
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(b"\xff" * 7 + b"\x7f" + b"{}")
    short = tmp_path / "short.safetensors"
    short.write_bytes(b"\x01\x02")
    notjson = _safetensors(tmp_path / "nj.safetensors", raw_header=b"{not json")
    for path, says in ((huge, "header claims"), (short, "shorter than the 8-byte header"), (notjson, "not JSON")):
        with pytest.raises(BadFileError, match=says):
            check_safetensors(path)
    good = _safetensors(tmp_path / "ok.safetensors")
    assert check_safetensors(good)["w"]["shape"] == [2, 3]


def test_a_real_safetensors_file_passes(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    path = tmp_path / "real.safetensors"
    save_file({"a": np.zeros((3, 5), np.float32), "b": np.ones(7, np.int64), "c": np.zeros((0,), np.float16)}, str(path),
              metadata={"format": "np"})
    assert set(check_safetensors(path)) == {"a", "b", "c"}


# ---- Hugging Face checkpoint folders ------------------------------------------------------------------
def _folder(tmp_path: Path, config: dict | str | None = MINILM, weights: str = "safetensors") -> Path:
    folder = tmp_path / "weights"
    folder.mkdir()
    if config is not None:
        (folder / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    if weights == "safetensors":
        _safetensors(folder / "model.safetensors")
    return folder


class Boom:
    """A pickle that runs a command when loaded by an unsafe loader."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_the_safe_loader_refuses_is_named_and_never_runs(tmp_path: Path) -> None:
    folder = _folder(tmp_path, weights="none")
    marker = tmp_path / "PWNED"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"w": Boom(marker)}))
    code, output = run_with_weights(folder, tmp_path)
    assert_one_clear_error(code, output, str(folder / "pytorch_model.bin"), "weights_only=True", "never unpickles code")
    assert not marker.exists()
    assert not (tmp_path / "runs").exists()  # refused before the run folder was made


@pytest.mark.parametrize("config, says", [
    ({**MINILM, "hidden_size": 768}, ("config.json sets hidden_size = 768", "width 384")),
    ({**MINILM, "num_hidden_layers": 12}, ("num_hidden_layers = 12", "layers 6")),
    ({**MINILM, "model_type": "gpt2"}, ("describes a 'gpt2' model", "is bert")),
    ({**MINILM, "auto_map": {"AutoModel": "evil.Model"}}, ("asks for code from the folder", "auto_map", "never runs code")),
    ("{not json", ("config.json is not readable JSON",)),
    ("[1, 2]", ("not a JSON object",)),
    (None, ("not a Hugging Face checkpoint folder", "config.json not found")),
])
def test_a_config_json_of_another_model_or_asking_for_code_is_refused(config, says, tmp_path: Path) -> None:
    folder = _folder(tmp_path, config)
    if isinstance(config, dict) and "auto_map" in config:
        (folder / "evil.py").write_text(f"import pathlib; pathlib.Path({str(tmp_path / 'PWNED')!r}).touch()\n")
    code, output = run_with_weights(folder, tmp_path)
    assert_one_clear_error(code, output, *says)
    assert not (tmp_path / "PWNED").exists()


def test_a_folder_without_weights_and_a_lying_one_are_named(tmp_path: Path) -> None:
    folder = _folder(tmp_path, weights="none")
    assert_one_clear_error(*run_with_weights(folder, tmp_path), "holds no weights")
    _safetensors(folder / "model.safetensors", LYING["offsets-beyond-data"][0])
    assert_one_clear_error(*run_with_weights(folder, tmp_path), str(folder / "model.safetensors"), "span 1,000,000,000,000 bytes")


def test_a_shard_index_cannot_name_files_outside_its_folder(tmp_path: Path) -> None:
    folder = _folder(tmp_path, weights="none")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": "../../etc/passwd"}}))
    with pytest.raises(BadFileError, match="outside its folder"):
        check_weights_folder(folder, BACKBONES.get("minilm"))


# ---- saved bodies ---------------------------------------------------------------------------------------
@pytest.fixture()
def body(tmp_path: Path) -> Path:
    """A real saved bert-tiny body (what save_body = true writes)."""
    from fptlab.backbones.bert import ModelOptions
    from fptlab.bodies import save_body

    spec = BACKBONES.get("bert-tiny")
    return save_body(spec.build(spec, ModelOptions()), spec, ModelOptions(), tmp_path / "body", config_hash="0" * 16, versions={})


def _edit_meta(folder: Path, change) -> None:
    meta = json.loads((folder / "body.json").read_text())
    change(meta)
    (folder / "body.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("change, says", [
    (lambda m: m.pop("backbone"), ("lacks the field 'backbone'",)),
    (lambda m: m.pop("depth"), ("lacks the field 'depth'",)),
    (lambda m: m.update(depth="two"), ("field 'depth' is 'two', not a int",)),
    (lambda m: m.update(depth=0), ("field 'depth' is 0",)),
    (lambda m: m.update(model="x"), ("field 'model' is 'x', not a dict",)),
    (lambda m: m.update(model={"depth": "deep"}), ("model.depth", "must be an integer")),
    (lambda m: m.update(positions=[1]), ("field 'positions' is [1], not a dict",)),
    (lambda m: m.update(format="other/9"), ("format 'other/9'",)),
])
def test_a_body_json_that_lacks_or_mistypes_a_field_is_named(change, says, body: Path, tmp_path: Path) -> None:
    code, output = run_with_weights(body, tmp_path, backbone="bert-tiny")
    assert code == 0, output  # the body as saved loads
    _edit_meta(body, change)
    assert_one_clear_error(*run_with_weights(body, tmp_path, backbone="bert-tiny"), str(body / "body.json"), *says)


def test_a_body_json_that_is_not_json_and_a_lying_body_tensor_file(body: Path, tmp_path: Path) -> None:
    tensors = body / "body.safetensors"
    data = tensors.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    tensors.write_bytes(struct.pack("<Q", 10**15) + data[8:])
    assert_one_clear_error(*run_with_weights(body, tmp_path, backbone="bert-tiny"), str(tensors), "header claims")
    tensors.write_bytes(data)
    (body / "body.json").write_text("{not json")
    assert_one_clear_error(*run_with_weights(body, tmp_path, backbone="bert-tiny"), "body.json is not a readable fptlab body description")


def test_a_hostile_weights_folder_fails_its_sweep_cell_with_the_same_message(tmp_path: Path, monkeypatch) -> None:
    """In a sweep the failed cell's error (the summary and the database) names the file the same way."""
    from fptlab.store import Store

    folder = _folder(tmp_path, {**MINILM, "hidden_size": 768})
    spec = tmp_path / "s.toml"
    spec.write_text(f'[experiment]\nname = "hostile"\n[defaults]\ntask = "bit_xor"\nbackbone = "minilm"\nsteps = 1\n'
                    f'eval_every = 1\nweights = "{folder}"\n[defaults.bit_xor]\nn_bits = 3\ntest_size = 8\n')
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'h.db'}"
    result = CliRunner().invoke(app, ["sweep", str(spec), "--db", url, "--no-progress", "--retries", "0", "--num-cpus", "1",
                                      "--storage", str(tmp_path / "st")])
    assert result.exit_code == 1, result.output
    says = "config.json sets hidden_size = 768, but backbone 'minilm' has width 384"
    assert says in result.output and "Traceback" not in result.output
    [trial] = Store(url).trials()
    assert trial["status"] == "failed" and says in trial["error"]
