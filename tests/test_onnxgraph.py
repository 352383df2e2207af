"""compress/onnxgraph.py: the graph rewrites of the export (residual adds kept out of SkipLayerNormalization, the
last layer computed for the first token only) and what static int8 quantizes, on a random 2-layer BERT."""

from __future__ import annotations

import numpy as np

from compress.bench.peak import bert_ops, count_ops

from .conftest import TINY_BERT as TINY


def test_residual_adds_stay_out_of_skip_layer_norm(tiny_bert, tmp_path):
    """optimize() writes each residual Add before a LayerNormalization as Sum: ONNX Runtime's session fusions leave
    it alone (its SkipLayerNormalization CPU kernel is the slow one), and the logits do not change."""
    import onnx
    import onnxruntime as ort

    from compress import onnxrun
    from compress.onnxgraph import optimize

    source, fast, fused = tiny_bert / "onnx" / "model.onnx", tmp_path / "fast.onnx", tmp_path / "fused.onnx"
    layers = TINY["num_hidden_layers"]
    counts = optimize(source, fast)
    assert counts["Sum"] == 2 * layers and counts["SkipLayerNormalization"] == 0 and counts["Attention"] == layers
    assert optimize(source, fused, skip_layer_norm=True)["SkipLayerNormalization"] == 2 * layers
    opts = ort.SessionOptions()  # what a session runs once ONNX Runtime's own fusions have been applied
    opts.optimized_model_filepath = str(tmp_path / "session.onnx")
    ort.InferenceSession(str(fast), opts, providers=["CPUExecutionProvider"])
    ops = [node.op_type for node in onnx.load(str(tmp_path / "session.onnx")).graph.node]
    assert "SkipLayerNormalization" not in ops and ops.count("Sum") == 2 * layers
    assert ops.count("LayerNormalization") == 2 * layers
    rows = np.random.default_rng(0).integers(5, TINY["vocab_size"], (3, 16)).tolist()
    want = onnxrun.logits(onnxrun.session(source), rows, 0)
    for path in (fast, fused):
        np.testing.assert_allclose(onnxrun.logits(onnxrun.session(path), rows, 0), want, atol=1e-5)


def test_first_token_head_gives_the_same_logits_with_less_work(tiny_bert, tmp_path):
    """optimize(first_token=True): the last layer computes only the row the pooler reads; the logits of padded
    batches do not change, the graph does less work, and int8 keeps its size and the attention products fp32."""
    import onnx

    from compress import onnxrun
    from compress.onnxgraph import fp32_nodes, optimize
    from compress.quant.onnx_int8 import Settings, quantize_dynamic

    source, plain, first = tiny_bert / "onnx" / "model.onnx", tmp_path / "plain.onnx", tmp_path / "first.onnx"
    optimize(source, plain)
    counts = optimize(source, first, first_token=True)
    assert counts["FirstToken"] >= 6  # output projection, residual sums, LayerNorms and feed-forward of the last layer
    ops = [n.op_type for n in onnx.load(str(first)).graph.node]
    assert ops.count("Attention") == TINY["num_hidden_layers"] - 1 and ops.count("Softmax") == 1
    rng = np.random.default_rng(0)
    rows = [rng.integers(5, TINY["vocab_size"], n).tolist() for n in (16, 3, 9, 16, 1, 12)]  # padded batches
    want = onnxrun.logits(onnxrun.session(source), rows, 0)
    np.testing.assert_allclose(onnxrun.logits(onnxrun.session(first), rows, 0), want, atol=1e-5)
    assert count_ops(first, 3, 16)["total"] < 0.8 * count_ops(plain, 3, 16)["total"]
    assert count_ops(first, 3, 16)["total"] == bert_ops(TINY, 3, 16, first_token=True)["total"]

    settings = Settings("dynamic", per_channel=True, reduce_range=False)
    quantize_dynamic(plain, tmp_path / "plain8.onnx", settings)
    quantize_dynamic(first, tmp_path / "first8.onnx", settings)
    kept = fp32_nodes(onnx.load(str(first)))
    assert len(kept) == 2
    nodes = {n.name: n.op_type for n in onnx.load(str(tmp_path / "first8.onnx")).graph.node}
    assert all(nodes.get(name) == "MatMul" for name in kept)  # scores and weighted sum stay fp32

    def fp32_matrices(path):  # fp32 tables of at least hidden x hidden values: the embeddings, no linear layer
        return sorted(int(np.prod(t.dims)) for t in onnx.load(str(path)).graph.initializer
                      if t.data_type == onnx.TensorProto.FLOAT and np.prod(t.dims) >= TINY["hidden_size"] ** 2)

    assert fp32_matrices(tmp_path / "first8.onnx") == fp32_matrices(tmp_path / "plain8.onnx")
    got8, want8 = (onnxrun.logits(onnxrun.session(tmp_path / f"{n}8.onnx"), rows, 0) for n in ("first", "plain"))
    assert (got8.argmax(1) == want.argmax(1)).mean() >= 5 / 6 and np.abs(got8 - want).max() < 0.1
    assert np.abs(want8 - want).max() < 0.1


def test_first_token_head_leaves_a_graph_that_reads_other_rows(tiny_bert, tmp_path):
    """A graph that also outputs the last layer's every row (or has no pooler Gather) is not rewritten."""
    import onnx
    from onnx import helper

    from compress.onnxgraph import first_token_head, optimize

    fused = tmp_path / "fused.onnx"
    optimize(tiny_bert / "onnx" / "model.onnx", fused)
    model = onnx.load(str(fused))
    last = [n for n in model.graph.node if n.op_type == "LayerNormalization"][-1]
    model.graph.output.append(helper.make_tensor_value_info(last.output[0], onnx.TensorProto.FLOAT, None))
    before = model.SerializeToString()
    assert first_token_head(model) == 0 and model.SerializeToString() == before
    model = onnx.load(str(fused))
    pooler = next(n for n in model.graph.node if n.op_type == "Gather" and n.attribute[0].i == 1)
    pooler.op_type = "ReduceMean"  # mean pooling reads every row
    del pooler.attribute[:]
    before = model.SerializeToString()
    assert first_token_head(model) == 0 and model.SerializeToString() == before


def test_static_int8_uses_the_unfused_graph_when_attention_is_fused(tiny_bert, tmp_path):
    """QDQ has no int8 Attention: from the fused graph the Q/K/V projections would stay fp32 (larger and slower)."""
    import onnx

    from compress import onnxrun
    from compress.onnxgraph import optimize
    from compress.quant.onnx_int8 import Settings, static_with_fallback

    source, fused, target = tiny_bert / "onnx" / "model.onnx", tmp_path / "fused.onnx", tmp_path / "int8.onnx"
    optimize(source, fused)
    names = [i.name for i in onnxrun.session(source).get_inputs()]
    ids = np.random.default_rng(0).integers(5, TINY["vocab_size"], (4, 1, 16))
    feeds = [{k: v for k, v in onnxrun.feeds(onnxrun.session(source), row, np.ones_like(row)).items() if k in names}
             for row in ids]
    used, why = static_with_fallback(fused, source, target, Settings("static", True, False, "minmax"), feeds,
                                     "avx512_vnni", tmp_path, None)
    assert used == "unfused" and "Attention" in why
    nodes = onnx.load(str(target)).graph.node
    assert not any(n.op_type == "Attention" for n in nodes)
    dequantized = {n.output[0] for n in nodes if n.op_type == "DequantizeLinear"}
    int8_weights = [n for n in nodes if n.op_type == "MatMul" and n.input[1] in dequantized and n.input[0] in dequantized]
    assert len(int8_weights) >= 6 * TINY["num_hidden_layers"]  # Q, K, V, output, two feed-forward: int8 in and out
