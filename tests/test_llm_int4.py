"""task causal-lm, edge quantization: a tied Llama-shaped decoder (random init, built in code) is exported with its
own output weight, and the onnx_int4 variant (MatMulNBits blocks, int8 output layer, int4 word embeddings) is made
by the quantize stage itself, checked against the fp32 graph and held to its perplexity budget."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
import torch
from rich.console import Console

from compress.errors import CompressError
from compress.layout import ONNX_FILE
from compress.pipeline import Context
from compress.quant.onnx_int4 import logits_matmul, output_weights, weight_source, word_embedding_gather
from compress.tasks import load_config
from compress.tasks.causal_lm import export, lm, onnxlm, quantize
from compress.tasks.causal_lm.text import load_text, prompts, train_bpe_tokenizer

from .conftest import ROOT

INT4 = "{name: student-int4, method: onnx_int4, budget: %s}"


def _cfg(*overrides: str):
    return load_config(ROOT / "pipelines" / "tiny-lm.yaml", ["export.greedy_prompts=3", "export.greedy_tokens=8",
                                                             "quantize.accuracy_samples=16", *overrides])


def _ctx(cfg, run_dir, stage: str) -> Context:
    ctx = Context(cfg=cfg, run_dir=run_dir, console=Console(file=io.StringIO(), width=200), out=run_dir / stage)
    ctx.out.mkdir(parents=True)
    return ctx


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A run folder whose teacher and student are one tied tiny Llama, through the export stage."""
    from transformers import LlamaConfig, LlamaForCausalLM

    run_dir = tmp_path_factory.mktemp("int4") / "run"
    cfg = _cfg()
    tok = train_bpe_tokenizer(load_text(cfg).train, 300, cfg.data.max_length)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)).eval()
    assert model.lm_head.weight is model.model.embed_tokens.weight
    for stage in ("teacher", "distill"):
        model.save_pretrained(run_dir / stage / "model")
        tok.save_pretrained(run_dir / stage / "model")
    metrics = export.run(cfg, _ctx(cfg, run_dir, "export"))
    return run_dir, metrics, model, tok


def test_a_tied_decoder_is_exported_with_its_own_output_weight(exported):
    run_dir, metrics, model, _ = exported
    for name in ("teacher", "student"):
        assert metrics[name]["untied"] is True
        assert all(r["ok"] for r in metrics[name]["parity"]) and all(g["equal"] for g in metrics[name]["greedy"])
        graph = onnx.load(str(run_dir / "export" / name / ONNX_FILE)).graph
        table, output = word_embedding_gather(graph).input[0], weight_source(graph, logits_matmul(graph).input[1])
        inits = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
        assert table != output and table in inits and output in inits
        assert not any(n.op_type == "Transpose" and n.input[0] == table for n in graph.node)
        np.testing.assert_array_equal(inits[output].T, inits[table])  # the same values, held twice
    assert output_weights(run_dir / "export" / "student" / ONNX_FILE)["shared"] is False
    assert lm.untie(model) is True and lm.untie(model) is False  # (the fixture's model is untied in place)


def test_onnx_int4_variant_quantizes_every_block_matmul_and_keeps_the_output_layer_int8(exported):
    run_dir, _, _, tok = exported
    cfg = _cfg(f"quantize.variants=[{INT4 % 25}]", "ship.variant=student-int4")
    metrics = quantize.run(cfg, _ctx(cfg, run_dir, "quantize"))
    (record,) = metrics["variants"]
    assert record["precision"] == "int4" and record["block_size"] == 32 and record["accuracy_level"] == 4
    source = onnx.load(str(run_dir / "export" / "student" / ONNX_FILE)).graph
    consts = {t.name for t in source.initializer}
    head = logits_matmul(source).name
    blocks = {n.name for n in source.node if n.op_type == "MatMul" and n.name != head
              and weight_source(source, n.input[1]) in consts}
    assert len(blocks) == 2 * 7  # q k v o gate up down in each of the two layers
    graph = onnx.load(str(run_dir / "quantize" / "student-int4" / ONNX_FILE)).graph
    nbits = {n.name.removesuffix("_Q4"): n for n in graph.node if n.op_type == "MatMulNBits"}
    assert set(nbits) == blocks
    assert all(next(a.i for a in n.attribute if a.name == "bits") == 4 for n in nbits.values())
    assert [n.op_type for n in graph.node if "logits" in n.output] == ["Mul"]  # MatMulInteger, then its scale
    assert [n.name for n in graph.node if n.op_type == "MatMulInteger"] == [f"{head}_quant"]
    (gather,) = [n for n in graph.node if n.op_type == "GatherBlockQuantized"]
    assert gather.input[1] == "input_ids"
    assert not any(n.op_type == "MatMul" and weight_source(graph, n.input[1]) in {t.name for t in graph.initializer}
                   for n in graph.node)  # no fp32 weight left in a MatMul
    w = record["weights"]
    assert w["int4"]["bytes"] > w["int8"]["bytes"] > w["fp32"]["bytes"] > 0
    assert len(w["int4"]["nodes"]) == 15 and w["int8"]["nodes"] == [f"{head}_quant"]
    # logits against the fp32 graph: 64-wide random weights in blocks of 32, measured max |diff| 0.06-0.09 on
    # logits of magnitude ~1.5 (cosine > 0.998); the bound leaves room for other CPUs' kernels
    fp32 = onnxlm.Decoder(run_dir / "export" / "student" / ONNX_FILE)
    q4 = onnxlm.Decoder(run_dir / "quantize" / "student-int4" / ONNX_FILE)
    ids = np.asarray(prompts(tok, load_text(cfg).eval, 4, 16), dtype=np.int64)
    ref, got = fp32.logits(ids, np.ones_like(ids)), q4.logits(ids, np.ones_like(ids))
    assert np.abs(ref - got).max() < 0.2
    cos = (ref * got).sum() / np.linalg.norm(ref) / np.linalg.norm(got)
    assert cos > 0.99
    assert all(r["cosine"] > 0.99 for r in record["parity"])
    tokens = q4.greedy(ids[0].tolist(), 8)
    assert len(tokens) == 8 and all(0 <= t < len(tok) for t in tokens)
    assert tokens[0] == int(got[0, -1].argmax())
    assert abs(record["increase_percent"]) < 25 and record["increase_percent"] == pytest.approx(
        (record["perplexity"] / record["parent_perplexity"] - 1) * 100, abs=1e-2)


def test_onnx_int4_over_its_perplexity_budget_is_refused(exported):
    run_dir = exported[0]
    cfg = _cfg(f"quantize.variants=[{INT4 % -50}]", "ship.variant=student-int4")
    with pytest.raises(CompressError, match=r"student-int4 raises the perplexity by .* over its budget of -50%.*"
                                            r"smaller block_size"):
        quantize.run(cfg, _ctx(cfg, run_dir, "quantize-over"))


def test_onnx_int4_config():
    v = _cfg(f"quantize.variants=[{INT4 % 5}]", "ship.variant=student-int4").quantize.variants[0]
    assert (v.block_size, v.symmetric, v.accuracy_level) == (32, False, 4)
    with pytest.raises(CompressError, match="block_size: only used with method onnx_int4"):
        _cfg("quantize.variants=[{name: q, method: onnx_dynamic, block_size: 64}]", "ship.variant=q")
    with pytest.raises(CompressError, match="block_size: 48 is not a power of two"):
        _cfg("quantize.variants=[{name: q, method: onnx_int4, block_size: 48}]", "ship.variant=q")
    with pytest.raises(CompressError, match=r"quantize.variants.0.accuracy_level: 2 computes MatMulNBits in fp16"):
        _cfg("quantize.variants=[{name: q, method: onnx_int4, accuracy_level: 2}]", "ship.variant=q")
    with pytest.raises(CompressError, match=r"quantize.variants.0.embeddings: int4 is for classifiers"):
        _cfg("quantize.variants=[{name: q, method: onnx_dynamic, embeddings: int4}]", "ship.variant=q")
    with pytest.raises(CompressError, match=r"quantize.variants.0.method: onnx_int4 is the int4 of a decoder"):
        load_config(ROOT / "pipelines" / "tiny.yaml", ["quantize.variants=[{name: q, method: onnx_int4}]",
                                                       "ship.variant=q"])
