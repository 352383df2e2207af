"""Unsafe and damaged model files: pickle weights only with allow_pickle, remote code only with
trust_remote_code, a truncated or corrupted safetensors / tokenizer / config / ONNX file refused with a
line naming it; all before the run writes anything."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from compress import models, onnxrun
from compress.errors import CompressError
from compress.preflight import check_model_folder, safetensors_problem

from ..conftest import ROOT, invoke

TINY = ROOT / "pipelines" / "tiny.yaml"
TEXTS = ["a good warm film", "a dull flat film", "great fun", "awful and boring"]


def tiny_model(folder, num_labels=2, pickle=False, max_positions=64):
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                     num_labels=num_labels, max_position_embeddings=max_positions)
    BertForSequenceClassification(cfg).save_pretrained(folder, safe_serialization=not pickle)
    models.train_wordlevel_tokenizer(TEXTS, max_length=32).save_pretrained(folder)
    return folder


def run_with_teacher(tmp_path, folder, *overrides):
    overrides = ("student.layers=[0,1]", *overrides)  # tiny_model has 2 layers (tiny.yaml keeps [0, 2] of 4)
    checked = invoke("validate", TINY, "teacher.architecture=null", f"teacher.model={folder}", *overrides)
    assert checked.exit_code == 2 and "Traceback" not in checked.output, checked.output  # validate sees it too
    runs = tmp_path / "runs"
    result = invoke("run", TINY, "teacher.architecture=null", f"teacher.model={folder}", f"ship.dir={tmp_path / 'exports'}",
                    *overrides, "--runs-dir", runs)
    assert result.exit_code == 2, result.output + (result.stderr or "")
    assert "Traceback" not in result.output + result.stderr
    assert not (runs / "tiny").exists() and not (tmp_path / "exports").exists()
    lines = result.stderr.strip().splitlines()
    assert all(line.startswith("error: ") for line in lines), lines
    return lines


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_pickle_checkpoint_is_refused_with_the_reason(tmp_path):
    folder = tiny_model(tmp_path / "m", pickle=True)
    assert (folder / "pytorch_model.bin").is_file() and not (folder / "model.safetensors").exists()
    lines = run_with_teacher(tmp_path, folder)
    assert lines == [f"error: teacher.model: {folder} holds only pickle weights (pytorch_model.bin), which can run code "
                     "when loaded; convert them to safetensors, or set teacher.allow_pickle: true if you trust the file"]
    with pytest.raises(CompressError, match="only pickle weights"):
        models.load_pretrained(str(folder), 2)


def test_pickle_loads_only_with_the_switch(tmp_path):
    folder = tiny_model(tmp_path / "m", pickle=True)
    check_model_folder(folder, "teacher.model", allow_pickle=True)
    model, _ = models.load_pretrained(str(folder), 2, allow_pickle=True)
    assert model.config.num_hidden_layers == 2


def test_pretrained_student_pickle_is_refused_too(tmp_path):
    folder = tiny_model(tmp_path / "m", pickle=True)
    with pytest.raises(CompressError, match=r"student.model: .* set student.allow_pickle: true"):
        check_model_folder(folder, "student.model")


def test_remote_code_is_refused_unless_trusted(tmp_path):
    folder = tiny_model(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_evil.py").write_text("open('PWNED', 'w').write('x')\n")
    lines = run_with_teacher(tmp_path, folder)
    assert len(lines) == 1 and "asks for the model's own Python code (auto_map: AutoModelForSequenceClassification)" in lines[0]
    assert "set teacher.trust_remote_code: true only if you trust it" in lines[0]
    with pytest.raises(CompressError, match="own Python code"):
        models.load_pretrained(str(folder), 2)
    assert not (tmp_path / "PWNED").exists() and not (ROOT / "PWNED").exists()
    check_model_folder(folder, "teacher.model", trust_remote_code=True)  # the switch lets the check pass


@pytest.mark.parametrize("damage", ["truncated-half", "truncated-one-byte", "header-overwritten", "padded", "empty"])
def test_damaged_safetensors_is_named(tmp_path, damage):
    folder = tiny_model(tmp_path / "m")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    if damage == "truncated-half":
        weights.write_bytes(data[: len(data) // 2])
    elif damage == "truncated-one-byte":
        weights.write_bytes(data[:-1])
    elif damage == "header-overwritten":
        weights.write_bytes(data[:8] + b"\x00" * 16 + data[24:])
    elif damage == "padded":
        weights.write_bytes(data + b"\x00" * 10)
    else:
        weights.write_bytes(b"")
    lines = run_with_teacher(tmp_path, folder)
    assert len(lines) == 1 and lines[0].startswith(f"error: {weights}: not a complete safetensors file"), lines
    with pytest.raises(CompressError, match="not a complete safetensors file"):
        models.load_pretrained(str(folder), 2)


@pytest.mark.parametrize("name", ["tokenizer.json", "config.json", "tokenizer_config.json"])
def test_truncated_json_file_is_named(tmp_path, name):
    folder = tiny_model(tmp_path / "m")
    truncate(folder / name)
    lines = run_with_teacher(tmp_path, folder)
    assert lines == [f"error: {folder / name}: " + lines[0].split(f"{folder / name}: ", 1)[1]]
    assert "not valid JSON" in lines[0] and "truncated or damaged" in lines[0]


def test_head_with_another_label_count_is_refused(tmp_path):
    folder = tiny_model(tmp_path / "m", num_labels=3)
    lines = run_with_teacher(tmp_path, folder)
    assert len(lines) == 1
    assert lines[0].startswith(f"error: teacher.num_labels: 2, but the classifier head in {folder / 'model.safetensors'} "
                               "has 3 outputs (LABEL_0, LABEL_1, LABEL_2); set teacher.num_labels: 3")


def test_lengths_beyond_the_position_table_are_refused(tmp_path):
    folder = tiny_model(tmp_path / "m", max_positions=24)
    lines = run_with_teacher(tmp_path, folder)
    assert any(l.startswith("error: data.max_length: 32 tokens, but teacher.model reads at most 24") for l in lines), lines
    assert any(l.startswith("error: bench.sequence_length: 32 tokens") for l in lines), lines


def test_a_whole_model_folder_passes(tmp_path):
    folder = tiny_model(tmp_path / "m")
    check_model_folder(folder, "teacher.model", num_labels=2)
    problem, header = safetensors_problem(folder / "model.safetensors")
    assert problem is None and header["classifier.weight"]["shape"] == [2, 16]


def test_damaged_stage_output_is_named_when_loaded(tmp_path):
    folder = tiny_model(tmp_path / "stage" / "model")
    truncate(folder / "model.safetensors", 0.9)
    with pytest.raises(CompressError, match=r"model.safetensors: not a complete safetensors file .* truncated; delete "
                                            r"the stage folder .*stage and run again"):
        models.load_saved(folder)
    folder = tiny_model(tmp_path / "stage2" / "model")
    truncate(folder / "tokenizer.json")
    with pytest.raises(CompressError, match=r"tokenizer.json: not valid JSON"):
        models.load_saved(folder)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_onnx_is_named(tmp_path, damage):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["logits"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])])
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    sess = onnxrun.session(path)
    assert sess.run(["logits"], {"x": np.ones((1, 2), np.float32)})[0].tolist() == [[1.0, 1.0]]
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x12\x34" * 50, "empty": b""}[damage])
    with pytest.raises(CompressError) as info:
        onnxrun.session(path)
    assert info.value.problems[0].startswith(f"{path}: ONNX Runtime cannot load it (")
