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

    def describe(self) -> str:
        parts = [self.mode, "per-channel" if self.per_channel else "per-tensor"]
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
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic as ort_dynamic

    with _quiet():
        ort_dynamic(str(source), str(target), per_channel=s.per_channel, reduce_range=s.reduce_range,
                    weight_type=QuantType.QInt8, nodes_to_exclude=list(s.exclude), nodes_to_quantize=list(s.only),
                    extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def quantize_static(source: Path, target: Path, s: Settings, feeds: list[dict], isa: str, cache: Path) -> None:
    """QDQ int8 with activation ranges measured on ``feeds``, or read from ``cache`` (the ranges do not
    depend on per-channel or excluded nodes, so the rungs of a ladder calibrate once). Raises
    NotQuantized when the quantizer left every activation in float (a weight-only graph is not what
    static quantization promises)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static as ort_static

    from compress.quant.samples import reader

    activations = QuantType.QInt8 if isa == "arm64" else QuantType.QUInt8
    with _quiet():
        ort_static(str(source), str(target), reader(feeds), quant_format=QuantFormat.QDQ, op_types_to_quantize=STATIC_OPS,
                   per_channel=s.per_channel, reduce_range=s.reduce_range, activation_type=activations,
                   weight_type=QuantType.QInt8, nodes_to_exclude=list(s.exclude), nodes_to_quantize=list(s.only),
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
