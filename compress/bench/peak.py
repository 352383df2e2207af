"""How close a model comes to the CPU's matrix-multiply peak: the peak itself, measured with ONNX Runtime's
own GEMM kernels, and the multiply-add work of an ONNX graph, counted from the shapes its nodes see.

Peak: one large GEMM in a one-node graph (``gemm_model``), the weights a constant initializer as in a
quantized model (ONNX Runtime packs them once, at load), run on ``threads`` intra-op threads; the best of
several timed runs. int8: ``MatMulInteger`` (u8 activations x s8 weights, int32 out: the kernel of a
dynamically quantized linear layer) and ``DynamicQuantizeMatMul`` (fp32 in, quantized at run time, fp32 out:
what ONNX Runtime fuses those layers into); fp32: ``MatMul``. Work: 2 x M x N x K operations (a multiply
and an add per multiply-accumulate).

Graph work (``count_ops``): every matrix product in the graph (MatMul, Gemm, MatMulInteger, QLinearMatMul,
DynamicQuantizeMatMul, MatMulIntegerToFloat, Attention, QAttention, MultiHeadAttention) at one input shape.
The shapes are read by running the graph once, unoptimized, with every operand exposed as an output, so
fused contrib ops (which ONNX shape inference cannot type) are counted too. A node's work is put under
``int8`` when its kernel multiplies int8 operands and under ``fp32`` otherwise; the attention products
inside (Q)Attention (Q x K^T and softmax x V) are fp32 in ONNX Runtime's CPU kernels, only the
Q/K/V projection of QAttention is int8. ``bert_ops`` is the same count from a BERT config, by formula.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from compress import onnxrun
from compress.envinfo import int8_isa
from compress.quant.onnx_int8 import reduce_range_for

# op type -> (precision of the product, index of the activation operand)
MATMUL_OPS = {
    "MatMul": "fp32", "Gemm": "fp32", "FusedMatMul": "fp32",
    "MatMulInteger": "int8", "QLinearMatMul": "int8", "DynamicQuantizeMatMul": "int8", "MatMulIntegerToFloat": "int8",
}
ATTENTION_OPS = {"Attention": "fp32", "QAttention": "int8", "MultiHeadAttention": "fp32"}
KERNELS = ("MatMulInteger", "DynamicQuantizeMatMul", "MatMul")  # what gemm_model builds
INT8_KERNELS = ("MatMulInteger", "DynamicQuantizeMatMul")


# ----------------------------------------------------------------------------- peak


def gemm_model(kernel: str, m: int, k: int, n: int, seed: int = 0, seven_bit: bool | None = None):
    """A one-node ONNX graph computing an (m x k) @ (k x n) product with ``kernel``; the (k x n) operand
    is a constant initializer (random int8 weights, or fp32 for MatMul).

    ``seven_bit`` (default: where the quantizer uses 7-bit weights on this CPU, x86 without VNNI) draws the
    int8 weights from -63..63, as the shipped models have them there: those CPUs sum pairs of u8 x s8
    products in int16, which saturates with full-range weights and would make the product inexact."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if seven_bit is None:
        seven_bit = reduce_range_for(int8_isa())
    top = 63 if seven_bit else 127
    rng = np.random.default_rng(seed)
    inits, extra, opset = [], [], [helper.make_opsetid("", 17)]
    if kernel == "MatMul":
        a_type, out_type = TensorProto.FLOAT, TensorProto.FLOAT
        inits.append(numpy_helper.from_array(rng.standard_normal((k, n), dtype=np.float32), "B"))
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
    elif kernel == "MatMulInteger":
        a_type, out_type = TensorProto.UINT8, TensorProto.INT32
        inits.append(numpy_helper.from_array(rng.integers(-top, top + 1, (k, n), dtype=np.int8), "B"))
        inits.append(numpy_helper.from_array(np.array(128, dtype=np.uint8), "a_zero_point"))
        node = helper.make_node("MatMulInteger", ["A", "B", "a_zero_point"], ["Y"])
    elif kernel == "DynamicQuantizeMatMul":
        a_type, out_type = TensorProto.FLOAT, TensorProto.FLOAT
        inits.append(numpy_helper.from_array(rng.integers(-top, top + 1, (k, n), dtype=np.int8), "B"))
        inits.append(numpy_helper.from_array(np.full((n,), 0.01, dtype=np.float32), "b_scale"))
        inits.append(numpy_helper.from_array(np.zeros((n,), dtype=np.int8), "b_zero_point"))
        node = helper.make_node("DynamicQuantizeMatMul", ["A", "B", "b_scale", "b_zero_point"], ["Y"], domain="com.microsoft")
        opset.append(helper.make_opsetid("com.microsoft", 1))
    else:
        raise ValueError(f"{kernel}: not one of {', '.join(KERNELS)}")
    graph = helper.make_graph([node], f"gemm_{kernel}", [helper.make_tensor_value_info("A", a_type, [m, k])],
                              [helper.make_tensor_value_info("Y", out_type, [m, n])], inits + extra)
    model = helper.make_model(graph, opset_imports=opset)
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def gemm_input(kernel: str, m: int, k: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kernel == "MatMulInteger":
        return rng.integers(0, 256, (m, k), dtype=np.uint8)
    return rng.standard_normal((m, k), dtype=np.float32)


@dataclass
class GemmResult:
    kernel: str
    precision: str  # int8 | fp32
    m: int
    k: int
    n: int
    threads: int
    repeats: int
    best_seconds: float
    median_seconds: float
    gops_best: float  # 2*m*n*k / best time, in 1e9 operations per second
    gops_median: float

    def to_dict(self) -> dict:
        return asdict(self)


def time_gemm(kernel: str, m: int, k: int, n: int, threads: int, repeats: int = 5, warmup: int = 2) -> GemmResult:
    """Run ``gemm_model(kernel, m, k, n)`` in ONNX Runtime on ``threads`` threads; the best and the median of
    ``repeats`` timed runs after ``warmup`` untimed ones."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(gemm_model(kernel, m, k, n).SerializeToString(), sess_options=opts,
                                providers=["CPUExecutionProvider"])
    feed = {"A": gemm_input(kernel, m, k)}
    for _ in range(warmup):
        sess.run(["Y"], feed)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sess.run(["Y"], feed)
        times.append(time.perf_counter() - t0)
    ops = 2 * m * n * k
    best, median = min(times), statistics.median(times)
    return GemmResult(kernel, "fp32" if kernel == "MatMul" else "int8", m, k, n, threads, repeats, round(best, 9),
                      round(median, 9), round(ops / best / 1e9, 1), round(ops / median / 1e9, 1))


# ----------------------------------------------------------------------------- work of a graph


def count_ops(model_path: Path | str, batch: int, seq: int) -> dict:
    """Operations (2 per multiply-accumulate) of every matrix product in the graph at ``batch`` x ``seq``
    tokens: ``{"int8": .., "fp32": .., "total": .., "nodes": [{name, op_type, precision, ops}, ..]}``."""
    import onnx

    model = onnx.load(str(model_path))
    shapes = _runtime_shapes(model, batch, seq)
    inits = {t.name: list(t.dims) for t in model.graph.initializer}

    def shape(name: str) -> list[int]:
        return inits[name] if name in inits else shapes[name]

    nodes = []
    for node in model.graph.node:
        if node.op_type in MATMUL_OPS:
            a, out = shape(node.input[0]), shape(node.output[0])
            k = a[-1]
            if node.op_type == "Gemm" and _attr(node, "transA", 0):
                k = a[0]
            nodes.append({"name": node.name, "op_type": node.op_type, "precision": MATMUL_OPS[node.op_type],
                          "ops": 2 * int(np.prod(out, dtype=np.int64)) * k})
        elif node.op_type in ATTENTION_OPS:
            nodes += _attention_ops(node, shape)
    int8 = sum(x["ops"] for x in nodes if x["precision"] == "int8")
    fp32 = sum(x["ops"] for x in nodes if x["precision"] == "fp32")
    return {"batch_size": batch, "sequence_length": seq, "int8": int8, "fp32": fp32, "total": int8 + fp32, "nodes": nodes}


def _attention_ops(node, shape) -> list[dict]:
    if node.op_type == "MultiHeadAttention":  # query, key, value already projected: just the two products
        q, kv = shape(node.input[0]), shape(node.input[1])
        b, s, hidden = q
        length = kv[1] if len(kv) == 3 else kv[2]  # [B, L, H] or [B, heads, L, head_size]
        core = 2 * 2 * b * s * length * hidden
        return [{"name": node.name, "op_type": node.op_type, "precision": "fp32", "ops": core}]
    x, w = shape(node.input[0]), shape(node.input[1])
    b, s, h_in = x
    sizes = _attr(node, "qkv_hidden_sizes", None) or [w[1] // 3] * 3
    h_q, _, h_v = sizes
    projection = 2 * b * s * h_in * w[1]
    core = 2 * b * s * s * h_q + 2 * b * s * s * h_v  # Q x K^T, then softmax x V (over all heads)
    return [{"name": node.name, "op_type": node.op_type, "precision": ATTENTION_OPS[node.op_type], "ops": projection,
             "part": "qkv projection"},
            {"name": node.name, "op_type": node.op_type, "precision": "fp32", "ops": core, "part": "attention products"}]


def _attr(node, name: str, default):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _runtime_shapes(model, batch: int, seq: int) -> dict[str, list[int]]:
    """The shape of every operand of the graph's matrix products, read by running it once on dummy tokens
    (graph optimizations off, so that every node runs as written)."""
    import onnx
    import onnxruntime as ort

    wanted = []
    inits = {t.name for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in MATMUL_OPS or node.op_type in ATTENTION_OPS:
            wanted += [n for n in (*node.input[:2], node.output[0]) if n and n not in inits]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    present = {o.name for o in probe.graph.output}
    names = list(dict.fromkeys(wanted))
    graph_inputs = {i.name for i in probe.graph.input}
    probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in present and n not in graph_inputs)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(probe.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
    ids = np.ones((batch, seq), dtype=np.int64)
    feeds = onnxrun.feeds(sess, ids, np.ones_like(ids))
    outputs = [o.name for o in sess.get_outputs()]
    values = sess.run(outputs, feeds)
    shapes = {n: list(v.shape) for n, v in zip(outputs, values)}
    shapes.update({n: list(v.shape) for n, v in feeds.items()})
    return shapes


def bert_ops(config: dict, batch: int, seq: int, first_token: bool = False) -> dict:
    """The same count as ``count_ops`` for a BERT classifier, from its config: per layer the Q, K, V and output
    projections (4 h^2 per token), the feed-forward (2 h f per token) and the two attention products
    (2 s h per token each); then the pooler (h^2) and the classifier (h x labels) on one token per sequence.

    ``first_token``: the last layer as ``compress.onnxgraph.first_token_head`` writes it, per sequence: the
    query and output projections and the feed-forward on one row (2 h^2 + 2 h f), the key and value weights
    applied to one row per head (2 heads h^2), and the scores and weighted sum over the tokens (2 s h heads)."""
    h, f, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    labels = len(config.get("id2label") or {}) or config.get("num_labels", 2)
    heads = config.get("num_attention_heads", 1)  # read only for first_token
    tokens = batch * seq
    full = layers - 1 if first_token else layers
    linear = full * 2 * tokens * (4 * h * h + 2 * h * f)
    attention = full * 2 * 2 * tokens * seq * h
    if first_token:
        linear += 2 * batch * (2 * h * h + 2 * heads * h * h + 2 * h * f)
        attention += 2 * 2 * batch * seq * h * heads
    head = 2 * batch * (h * h + h * labels)
    return {"linear": linear, "attention": attention, "head": head, "total": linear + attention + head}


def profile_ops(model_path: Path | str, input_ids: list[list[int]], threads: int, runs: int = 10,
                warmup: int = 3) -> dict[str, float]:
    """Where the time of one query goes: ONNX Runtime's own profiler over ``runs`` queries (after ``warmup``),
    kernel time summed per op type, in milliseconds per query, largest first. The profiler adds a little
    overhead: for the split, not for the latency."""
    import json
    import os
    import tempfile

    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(tmp, "profile")
        sess = ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
        ids = np.asarray(input_ids, dtype=np.int64)
        feeds = onnxrun.feeds(sess, ids, np.ones_like(ids))
        for _ in range(warmup + runs):
            sess.run(None, feeds)
        trace = json.loads(Path(sess.end_profiling()).read_text())
    per_run: dict[str, list[float]] = {}
    for event in trace:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        op = event.get("args", {}).get("op_name", "?")
        per_run.setdefault(op, []).append(event["dur"] / 1e3)
    # the first `warmup` queries are in the trace too: keep each op's share of the last `runs` queries
    total = {op: sum(d[len(d) * warmup // (warmup + runs):]) / runs for op, d in per_run.items()}
    return dict(sorted(((k, round(v, 3)) for k, v in total.items()), key=lambda kv: -kv[1]))
