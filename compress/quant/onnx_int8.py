"""ONNX Runtime int8 of the student graph, dynamic or static (QDQ), and where its error comes from.

Both start from the fused graph (``model_optimized.onnx``). Shape inference cannot type the outputs
of the contrib ops the fusion makes (Attention, SkipLayerNormalization, ...), hence
``DefaultTensorType``. Static quantization of the fused graph is tried first; ONNX Runtime's QDQ
quantizer has no QDQ form for those contrib ops, so on BERT-like graphs it either fails (it cannot
give the pooler's bias a scale) or quantizes weights only. Then the unfused export (``model.onnx``)
is calibrated instead, and the metrics say so.

The settings follow the CPU's int8 instructions: without VNNI (avx2, avx512) the u8 x s8 products are
summed in int16 and can saturate, so weights keep 7 bits (``reduce_range``); ARM kernels prefer
signed activations.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from compress import onnxrun
from compress.onnxgraph import fp32_nodes
from compress.quant.samples import reader

STATIC_OPS = ["MatMul", "Gemm"]  # the linear layers and attention products; the rest stays fp32 between them
CALIBRATION = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


@dataclass(frozen=True)
class Settings:
    """One way to quantize: what a rung of the ladder tries."""

    mode: str  # dynamic | static
    per_channel: bool
    reduce_range: bool
    calibration: str | None = None  # static: minmax | entropy | percentile
    exclude: tuple[str, ...] = field(default_factory=tuple)  # node names kept in fp32
    only: tuple[str, ...] = field(default_factory=tuple)  # quantize just these (the sensitivity measurement)
    embeddings: str = "int8"  # dynamic: int8 (fused embedding layer) or int4 (GatherBlockQuantized tables)
    embedding_block: int = 32  # int4: values sharing one scale

    def describe(self) -> str:
        parts = [self.mode, "per-channel" if self.per_channel else "per-tensor"]
        if self.embeddings == "int4":
            parts.append(f"int4 embeddings (blocks of {self.embedding_block})")
        if self.calibration:
            parts.append(f"{self.calibration} calibration")
        if self.reduce_range:
            parts.append("7-bit weights")
        if self.exclude:
            parts.append(f"{len(self.exclude)} node(s) kept fp32")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        out = {**asdict(self), "exclude": list(self.exclude)}
        out.pop("only")
        return out

    def but(self, **changes) -> Settings:
        return replace(self, **changes)


def reduce_range_for(isa: str) -> bool:
    """7-bit weights where int8 products are summed in int16 (x86 without VNNI)."""
    return isa in ("avx2", "avx512")


def quantize_dynamic(source: Path, target: Path, s: Settings) -> None:
    """Dynamic int8 of ``source``. With ``s.embeddings == "int4"`` (``source`` then has its embedding layer
    unfused: ``compress.onnxgraph.optimize(..., embed_layer_norm=False)``), the embedding tables are left out
    of int8 and stored in int4 instead."""
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_dynamic

    int4 = s.embeddings == "int4"
    ops = [op for op in dynamic_op_types() if op != "Gather"] if int4 else None
    with _quiet():
        ort_dynamic(str(source), str(target), per_channel=s.per_channel, reduce_range=s.reduce_range,
                    weight_type=QuantType.QInt8, nodes_to_exclude=excluded(source, s), nodes_to_quantize=list(s.only),
                    op_types_to_quantize=ops, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    if int4:
        int4_embeddings(target, s.embedding_block)


CLIP_SEARCH = np.linspace(0.7, 1.0, 16)  # shares of a block's range tried for its 4-bit grid; 1.0 = min..max


def excluded(source: Path, s: Settings) -> list[str]:
    """The nodes ``s`` keeps fp32, and the products between activations that the first-token rewrite wrote
    (``compress.onnxgraph.fp32_nodes``: QAttention keeps those fp32 too)."""
    import onnx

    return list(dict.fromkeys([*s.exclude, *fp32_nodes(onnx.load(str(source), load_external_data=False))]))


def int4_blocks(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric 4-bit quantization of ``blocks`` (..., block): values q in 0..15 with x ~ (q - zero point) x scale,
    one scale and zero point per block. The grid spans the block's range (widened to hold 0, so zero stays exact),
    shrunk by the share in ``CLIP_SEARCH`` that gives the block the smallest squared error: an outlier may be
    clipped when that brings the others closer. On the distilled MiniLM student's word embeddings (blocks of 32)
    the table's relative RMS error is 0.078, against 0.097 with symmetric max|x| / 7 scales; the zero points add
    half a byte a block (75 KB there). Returns (q as uint8, scales as float32, zero points as uint8)."""
    lo, hi = np.minimum(blocks.min(-1), 0), np.maximum(blocks.max(-1), 0)
    best = None
    for share in CLIP_SEARCH:
        scale = (hi - lo) * share / 15
        scale[scale == 0] = 1.0
        zero = np.clip(np.rint(-lo * share / scale), 0, 15)
        q = np.clip(np.rint(blocks / scale[..., None]) + zero[..., None], 0, 15)
        err = (((q - zero[..., None]) * scale[..., None] - blocks) ** 2).sum(-1)
        if best is None:
            best = [err, q, scale, zero]
            continue
        better = err < best[0]
        best = [np.where(better, err, best[0]), np.where(better[..., None], q, best[1]),
                np.where(better, scale, best[2]), np.where(better, zero, best[3])]
    return best[1].astype(np.uint8), best[2].astype(np.float32), best[3].astype(np.uint8)


def pack_nibbles(values: np.ndarray) -> np.ndarray:
    """Two 4-bit values a byte along the last axis, the first in the low nibble (an odd count ends in a 0 nibble)."""
    if values.shape[-1] % 2:
        values = np.concatenate([values, np.zeros(values.shape[:-1] + (1,), np.uint8)], -1)
    return (values[..., 0::2] | (values[..., 1::2] << 4)).astype(np.uint8)


INDEX_PASSTHROUGH = {"Reshape", "Cast", "Flatten", "Squeeze", "Unsqueeze", "Identity"}


def int4_embeddings(path: Path, block: int, tables: str = "word") -> int:
    """The Gathers of constant 2-D tables in ``path`` become ONNX Runtime's GatherBlockQuantized, in place: 4-bit
    values with one fp32 scale and one 4-bit zero point per ``block`` values along the width (``int4_blocks``),
    stored as uint8 with two values a byte (``bits=4``).

    ``tables="word"``: only the tables looked up by the graph input ``input_ids`` (directly or through reshapes
    and casts: the word embeddings, almost all of the embedding weights); the position and token-type tables
    stay fp32 Gathers. A GatherBlockQuantized of 128 rows costs ~80 us more than a Gather on a 2-core Zen 3: in
    int4 the two small tables of the refined MiniLM student took 0.3 ms more kernel time a query, to save 0.7 MB
    (benchmarks/embeddings.py). ``tables="all"``: every table.

    Written here rather than with onnxruntime's MatMulNBitsQuantizer: that one stores the tables as int4 tensors,
    which the ORT format (model.ort, ONNX Runtime Mobile) cannot hold; the packed uint8 form is the same op and
    the same arithmetic, and both formats load it. Returns how many tables were converted; none is an error."""
    import onnx
    from onnx import helper, numpy_helper

    if tables not in ("word", "all"):
        raise ValueError(f"tables: {tables!r} is not one of word, all")
    model = onnx.load(str(path))
    graph = model.graph
    consts = {t.name: t for t in graph.initializer}
    users: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    nodes = list(graph.node)
    producer = {out: node for node in nodes for out in node.output}

    def reads_input_ids(name: str) -> bool:  # through ops that only reshape or cast the indices
        while name != "input_ids" and name in producer and producer[name].op_type in INDEX_PASSTHROUGH:
            name = producer[name].input[0]
        return name == "input_ids"

    converted = 0
    for i, node in enumerate(nodes):
        if node.op_type != "Gather" or node.input[0] not in consts or users.get(node.input[0]) != 1:
            continue
        if tables == "word" and not reads_input_ids(node.input[1]):
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        table = numpy_helper.to_array(consts[node.input[0]])
        if axis != 0 or table.ndim != 2 or table.dtype != np.float32 or table.shape[1] % block:
            continue
        rows, width = table.shape
        q, scales, zeros = int4_blocks(table.reshape(rows, width // block, block))
        name = node.input[0]
        graph.initializer.remove(consts[name])
        graph.initializer.extend([numpy_helper.from_array(pack_nibbles(q.reshape(rows, width)), f"{name}_q4"),
                                  numpy_helper.from_array(scales, f"{name}_q4_scales"),
                                  numpy_helper.from_array(pack_nibbles(zeros), f"{name}_q4_zero_points")])
        nodes[i] = helper.make_node(
            "GatherBlockQuantized", [f"{name}_q4", node.input[1], f"{name}_q4_scales", f"{name}_q4_zero_points"],
            list(node.output),
            name=(node.name or name) + "_q4", domain="com.microsoft", bits=4, block_size=block, gather_axis=0,
            quantize_axis=1)
        converted += 1
    if not converted:
        raise ValueError("no embedding table was converted to int4 (no Gather of a constant table"
                         + (" by input_ids" if tables == "word" else "") + " in the graph)")
    del graph.node[:]
    graph.node.extend(nodes)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    tmp = path.with_name(path.name + ".int4.tmp")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return converted


def quantize_static(source: Path, target: Path, s: Settings, feeds: list[dict], isa: str, cache: Path) -> None:
    """QDQ int8 with activation ranges measured on ``feeds``, or read from ``cache`` (the ranges do not
    depend on per-channel or excluded nodes, so the rungs of a ladder calibrate once). Raises
    NotQuantized when the quantizer left every activation in float (a weight-only graph is not what
    static quantization promises)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_static

    activations = QuantType.QInt8 if isa == "arm64" else QuantType.QUInt8
    with _quiet():
        ort_static(str(source), str(target), reader(feeds), quant_format=QuantFormat.QDQ, op_types_to_quantize=STATIC_OPS,
                   per_channel=s.per_channel, reduce_range=s.reduce_range, activation_type=activations,
                   weight_type=QuantType.QInt8, nodes_to_exclude=excluded(source, s), nodes_to_quantize=list(s.only),
                   calibrate_method=getattr(CalibrationMethod, CALIBRATION[s.calibration]),
                   calibration_cache_path=str(cache),
                   extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    graph = onnx.load(str(target), load_external_data=False).graph
    if not s.only and not any(n.op_type == "QuantizeLinear" for n in graph.node):
        raise NotQuantized("no activation was quantized (only weights): the quantizer has no QDQ form for the "
                           "contrib ops that feed the linear layers")


class NotQuantized(ValueError):
    """The quantizer ran but left the activations in float."""


def static_with_fallback(fused: Path, unfused: Path, target: Path, s: Settings, feeds: list[dict], isa: str,
                         workdir: Path, graph: str | None) -> tuple[str, str | None]:
    """Quantize statically from the fused graph, else from the unfused export. Returns the graph used
    and why the fused one was not. ``graph`` set: use that one (a previous rung found it)."""
    reason = None
    if graph is None and _has_fused_attention(fused):
        graph = "unfused"
        reason = ("the fused graph's Attention nodes have no static (QDQ) int8 form: their Q/K/V projections would "
                  "stay fp32")
    if graph != "unfused":
        try:
            quantize_static(fused, target, s, feeds, isa, calibration_cache(workdir, "fused"))
            return "fused", None
        except (ValueError, RuntimeError) as exc:  # NotQuantized is a ValueError
            if graph == "fused":
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            reason = f"{type(exc).__name__}: {first}"
    quantize_static(unfused, target, s, feeds, isa, calibration_cache(workdir, "unfused"))
    return "unfused", reason


def _has_fused_attention(path: Path) -> bool:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return any(node.op_type in ("Attention", "MultiHeadAttention") and node.domain == "com.microsoft" for node in graph.node)


def calibration_cache(workdir: Path, graph: str) -> Path:
    return workdir / f"calibration-{graph}.json"


# ----------------------------------------------------------------------------- per-node sensitivity


def node_sensitivity(fp32: Path, quantized: Path, op_types: list[str], quantize_one, rows: list[list[int]],
                     pad_id: int, workdir: Path) -> list[dict]:
    """How far each quantized node alone moves the logits, largest first.

    Every node the quantizer changed in ``quantized`` is quantized again on its own (``quantize_one(node,
    path)``, same settings, ``nodes_to_quantize=[node]``) and the logits on ``rows`` are compared with the
    fp32 graph's (relative L2 distance). One node at a time isolates what each adds: comparing
    intermediate outputs of the fully quantized graph instead mixes in the error of every node
    upstream, and LayerNorm rescales it, so it points at the first layer whatever the cause. Static
    quantization reuses its calibration cache here, so the cost is one quantization and one short
    inference per node.
    """
    import onnx

    base = onnx.load(str(fp32), load_external_data=False).graph
    quant = onnx.load(str(quantized), load_external_data=False).graph
    nodes = [n for n in base.node if n.name in _quantized_nodes(base, quant, op_types)]
    reference = _logits(fp32, rows, pad_id)
    scale = max(float(np.linalg.norm(reference)), 1e-12)
    out = []
    one = workdir / ".one-node.onnx"
    for node in nodes:
        quantize_one(node.name, one)
        got = _logits(one, rows, pad_id)
        out.append({"node": node.name, "op": node.op_type,
                    "logit_error": round(float(np.linalg.norm(got - reference)) / scale, 6),
                    "top1_flips": int((got.argmax(-1) != reference.argmax(-1)).sum())})
    one.unlink(missing_ok=True)
    return sorted(out, key=lambda r: -r["logit_error"])


def _logits(path: Path, rows: list[list[int]], pad_id: int) -> np.ndarray:
    sess = onnxrun.session(path)
    return onnxrun.logits(sess, rows, pad_id).astype(np.float64)


def _quantized_nodes(base, quant, op_types: list[str]) -> set[str]:
    """Nodes of ``op_types`` the quantizer changed: replaced (dynamic renames them) or fed by a
    DequantizeLinear (QDQ keeps the node and puts Q/DQ pairs around it)."""
    producers = {o: n.op_type for n in quant.node for o in n.output}
    in_quant = {n.name: n for n in quant.node}
    out = set()
    for n in base.node:
        if not n.name or n.op_type not in op_types:
            continue
        q = in_quant.get(n.name)
        if q is None or any(producers.get(i) == "DequantizeLinear" for i in q.input):
            out.add(n.name)
    return out


def dynamic_op_types() -> list[str]:
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    return list(IntegerOpsRegistry)


class _quiet:
    """ONNX Runtime's quantizers log a pre-processing hint at WARNING, print calibration progress on
    stdout, and their calibration sessions log graph clean-ups from C++: none of it is for the user."""

    def __enter__(self):
        import onnxruntime

        logging.disable(logging.WARNING)
        onnxruntime.set_default_logger_severity(3)
        self._stdout = contextlib.redirect_stdout(io.StringIO())
        self._stdout.__enter__()

    def __exit__(self, *exc):
        self._stdout.__exit__(*exc)
        logging.disable(logging.NOTSET)
