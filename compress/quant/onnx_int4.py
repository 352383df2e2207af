"""Weight-only int4 of a decoder graph (task causal-lm) with ONNX Runtime's own quantizer, and what each part of
the result is stored in.

Every MatMul with a constant weight in the decoder blocks becomes ONNX Runtime's MatMulNBits (``bits=4``,
blocks of ``block`` values along the input dimension, each with an fp32 scale and, asymmetric, a 4-bit zero
point), written by ``onnxruntime.quantization.matmul_nbits_quantizer.MatMulNBitsQuantizer``. The output layer
(the MatMul that writes ``logits``) keeps more bits: it is the largest single matrix of a small decoder and its
error lands on every logit directly, so it gets dynamic int8 with one scale per output channel (ONNX Runtime's
``quantize_dynamic`` on that node only: MatMulInteger). The word embedding table is stored in int4 too
(GatherBlockQuantized, ``compress.quant.onnx_int8.int4_embeddings``). Norms and the rest stay fp32.

The graph must have its own output weight: a tied model exported as it is reads the output layer from the
embedding table through a Transpose, which the quantizer skips (``compress.tasks.causal_lm.lm.untie``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compress.quant.onnx_int8 import INDEX_PASSTHROUGH, Settings, _quiet, int4_embeddings, quantize_dynamic

DYNAMIC_WEIGHT = {"MatMulInteger": 1, "Gather": 0}  # quantize_dynamic's int8 weights: <name>_quantized at this input


@dataclass(frozen=True)
class Int4Settings:
    """How the blocks' MatMuls are quantized (``MatMulNBitsQuantizer``) and the output layer's int8."""

    block: int = 32  # weights along K sharing one scale (and zero point)
    symmetric: bool = False  # False: a 4-bit zero point per block
    accuracy_level: int = 4  # MatMulNBits' compute type on CPU: 4 = int8 activations x int4 weights
    reduce_range: bool = False  # the output layer's int8 weights in 7 bits (x86 without VNNI)


def logits_matmul(graph):
    """The MatMul node that writes the graph output ``logits`` (the output layer)."""
    for node in graph.node:
        if "logits" in node.output:
            if node.op_type != "MatMul":
                raise ValueError(f"the node writing logits is a {node.op_type} ({node.name}), not a MatMul")
            return node
    raise ValueError("no node writes a graph output named logits")


def word_embedding_gather(graph):
    """The Gather of a constant table by ``input_ids`` (through reshapes and casts): the word embeddings."""
    consts = {t.name for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        if node.op_type != "Gather" or node.input[0] not in consts:
            continue
        name = node.input[1]
        while name != "input_ids" and name in producer and producer[name].op_type in INDEX_PASSTHROUGH:
            name = producer[name].input[0]
        if name == "input_ids":
            return node
    raise ValueError("no Gather of a constant table by input_ids (the word embeddings) in the graph")


def weight_source(graph, name: str) -> str:
    """The initializer a node input reads, through Transpose / Identity nodes (or the name itself)."""
    producer = {out: node for node in graph.node for out in node.output}
    while name in producer and producer[name].op_type in ("Transpose", "Identity"):
        name = producer[name].input[0]
    return name


def output_weights(path: Path) -> dict:
    """The word embedding table (the Gather of ``input_ids``) and the output layer's weight (the MatMul that
    writes ``logits``, through any Transpose) of an exported decoder, by initializer name; ``shared`` when both
    are one initializer (a tied model exported as it is)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    table = word_embedding_gather(graph).input[0]
    output = weight_source(graph, logits_matmul(graph).input[1])
    return {"embedding": table, "output": output, "shared": table == output}


def quantize_int4(source: Path, target: Path, s: Int4Settings) -> dict:
    """``source`` (an fp32 decoder with its own output weight) -> ``target``: the blocks' MatMuls in int4, the
    output layer in dynamic int8 per channel, the word embeddings in int4. Returns ``composition(target)``."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(source))
    head = logits_matmul(model.graph)
    table = word_embedding_gather(model.graph).input[0]
    if weight_source(model.graph, head.input[1]) == table:
        raise ValueError(f"the output layer reads the embedding table {table!r} (tied weights): export the model untied")
    with _quiet():
        quantizer = MatMulNBitsQuantizer(model, bits=4, block_size=s.block, is_symmetric=s.symmetric,
                                         accuracy_level=s.accuracy_level or None, nodes_to_exclude=[head.name])
        quantizer.process()
    blocks = target.with_name(target.stem + ".int4-blocks.onnx")
    onnx.save(quantizer.model.model, str(blocks))
    try:
        quantize_dynamic(blocks, target, Settings("dynamic", per_channel=True, reduce_range=s.reduce_range,
                                                  only=(head.name,)))
    finally:
        blocks.unlink(missing_ok=True)
    int4_embeddings(target, s.block, tables="word")
    return composition(target)


def composition(path: Path) -> dict:
    """Bytes of the initializers by how they are stored: int4 (MatMulNBits bits=4 and GatherBlockQuantized bits=4,
    with their scales and zero points), int8 (MatMulNBits bits=8, the MatMulInteger and Gather weights of ``quantize_dynamic`` with their
    scales and zero points), fp32 (every other initializer), each with the nodes that read them."""
    import onnx

    graph = onnx.load(str(path)).graph
    size = {t.name: len(t.raw_data) or onnx.numpy_helper.to_array(t).nbytes for t in graph.initializer}
    owner: dict[str, str] = {}
    nodes = {"int4": [], "int8": [], "fp32": []}
    for node in graph.node:
        bits = next((a.i for a in node.attribute if a.name == "bits"), None)
        if node.op_type in ("MatMulNBits", "GatherBlockQuantized") and bits in (4, 8):
            kind, names = f"int{bits}", [n for n in node.input[1:] if n in size]
            if node.op_type == "GatherBlockQuantized":
                names = [n for i, n in enumerate(node.input) if i != 1 and n in size]
        elif node.op_type in DYNAMIC_WEIGHT and node.input[DYNAMIC_WEIGHT[node.op_type]].endswith("_quantized"):
            weight = node.input[DYNAMIC_WEIGHT[node.op_type]]
            base = weight.removesuffix("_quantized")
            kind, names = "int8", [n for n in (weight, f"{base}_scale", f"{base}_zero_point") if n in size]
        else:
            continue
        nodes[kind].append(node.name)
        owner.update(dict.fromkeys(names, kind))
    totals = {"int4": 0, "int8": 0, "fp32": 0}
    for name, n in size.items():
        totals[owner.get(name, "fp32")] += n
    return {kind: {"bytes": totals[kind], "nodes": nodes[kind]} for kind in totals}
