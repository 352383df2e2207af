"""benchmarks/llm_speed.py on a tiny Llama built in code (saved, and exported to ONNX with its KV cache): one round,
the JSON's figures, and llama.cpp skipped with its reason when llama_cpp does not import."""

from __future__ import annotations

import builtins
import json

import pytest
import torch

from benchmarks import llm_speed
from compress import models
from compress.tasks.causal_lm import llamacpp, onnxlm
from compress.tasks.causal_lm.text import generate_text, train_bpe_tokenizer

TEXT = generate_text(300, seed=0)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = train_bpe_tokenizer(TEXT, 300, 64)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=128, bos_token_id=tokenizer.bos_token_id,
                                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)).eval()
    root = tmp_path_factory.mktemp("tiny-llm")
    models.save(model, tokenizer, root / "teacher")
    onnx = onnxlm.export(root / "teacher", root / "teacher-onnx")
    (root / "text.txt").write_text(TEXT)
    return root, onnx


@pytest.fixture
def no_llama_cpp(monkeypatch):
    real = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name == "llama_cpp" or name.startswith("llama_cpp."):
            raise ImportError("No module named 'llama_cpp'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)


def test_one_round_of_the_teacher_and_its_onnx_export_with_llama_cpp_skipped(tiny_lm, tmp_path, no_llama_cpp, capsys):
    root, onnx = tiny_lm
    assert llamacpp.unavailable().startswith("llama-cpp-python does not import")
    out = tmp_path / "speed.json"
    rc = llm_speed.main(["--teacher", str(root / "teacher"), "--onnx", f"teacher-onnx={onnx}", "--text", str(root / "text.txt"), "--prompt-tokens", "16",
                         "--new-tokens", "8", "--rounds", "1", "--runs", "2", "--threads", "1", "--out", str(out)])
    assert rc == 0
    r = json.loads(out.read_text())
    assert r["llama_cpp"]["skipped"].startswith("llama-cpp-python does not import")
    assert [m["name"] for m in r["models"]] == ["teacher", "teacher-onnx"]
    assert r["models"][1]["same_ids_as_teacher"] is True and r["models"][0]["prompt_tokens"] == 16
    assert r["models"][0]["size_bytes"] == (root / "teacher" / "model.safetensors").stat().st_size
    assert r["models"][1]["size_bytes"] == onnx.stat().st_size
    (p,) = r["passes"]
    assert p["threads"] == 1
    for name in ("teacher", "teacher-onnx"):
        row = p["models"][name]
        assert row["tokens_per_second"]["median"] > 0 and row["time_to_first_token_ms"]["median"] > 0
        assert row["peak_rss_bytes"] >= row["rss_growth_bytes"] > 0 and len(row["rounds"]) == 1
        assert len(row["tokens"]) == 8
    assert p["models"]["teacher"]["runtime"].startswith("torch") and p["models"]["teacher-onnx"]["runtime"] == "onnxruntime"
    assert p["models"]["teacher-onnx"]["tokens_equal_to_teacher"] == 8  # the export decodes as PyTorch does
    vs = p["models"]["teacher-onnx"]["vs_teacher"]
    assert vs["tokens_per_second_ratio"] > 0 and vs["size_ratio"] > 0
    assert vs["tokens_per_second_ratio_per_round"]["min"] == vs["tokens_per_second_ratio_per_round"]["max"]
    assert r["environment"]["cpu"] and r["zero_shot"] is None
    assert "llama.cpp: skipped" in capsys.readouterr().out


def test_bad_onnx_argument_is_refused(tiny_lm, tmp_path, capsys):
    root, _ = tiny_lm
    rc = llm_speed.main(["--teacher", str(root / "teacher"), "--onnx", "student", "--text", str(root / "text.txt"),
                         "--out", str(tmp_path / "x.json")])
    assert rc == 2 and "--onnx: 'student' is not NAME=PATH" in capsys.readouterr().err


def test_spread_flags_rounds_apart_by_more_than_a_fifth():
    assert llm_speed.spread([100.0, 110.0, 105.0])["noisy"] is False
    s = llm_speed.spread([100.0, 130.0, 105.0])
    assert s == {"median": 105.0, "min": 100.0, "max": 130.0, "noisy": True}
