"""Rewrites of fused ONNX graphs that make ONNX Runtime's CPU kernels faster. Imports onnx only."""

from __future__ import annotations


def residual_sums(model) -> int:
    """Turn each residual ``Add`` that feeds a ``LayerNormalization`` (both of its inputs computed, neither a
    constant, and nothing else reading its output) into ``Sum`` of the same two inputs, in place in ``model``
    (a ModelProto). The arithmetic is the same.

    Why: when a session loads a model, ONNX Runtime fuses Add + LayerNormalization into its contrib
    SkipLayerNormalization, and that CPU kernel (ONNX Runtime 1.32) is about three times slower than the
    pair it replaces: batch 1 x 128 x 384 on two threads, 189 us against 65 us; batch 32, 5.7 ms against
    1.7 ms. The fusion matches ``Add`` only, so a ``Sum`` keeps the faster pair in any ONNX Runtime session
    and in model.ort, with no session option for the user to remember. Returns how many were rewritten."""
    graph = model.graph
    constants = {t.name for t in graph.initializer}
    constants |= {node.output[0] for node in graph.node if node.op_type == "Constant"}
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {out.name for out in graph.output}
    rewritten = 0
    for node in graph.node:
        if node.op_type != "Add" or node.domain not in ("", "ai.onnx") or len(node.input) != 2:
            continue
        if any(name in constants for name in node.input) or node.output[0] in outputs:
            continue
        users = readers.get(node.output[0], [])
        if len(users) == 1 and users[0].op_type == "LayerNormalization" and users[0].input[0] == node.output[0]:
            node.op_type = "Sum"
            rewritten += 1
    return rewritten


# What ONNX Runtime's BERT optimizer fuses; the report lists how many of each it made ("Sum": residual_sums).
FUSIONS = ("EmbedLayerNormalization", "Attention", "MultiHeadAttention", "Gelu", "FastGelu", "BiasGelu",
           "SkipLayerNormalization", "LayerNormalization", "Sum")


def optimize(source, target, embed_layer_norm: bool = True, skip_layer_norm: bool = False) -> dict[str, int]:
    """ONNX Runtime's Python fusions for BERT-like graphs (heads and width read from the graph) from ``source``
    into ``target``; ONNX Runtime's own graph optimizations still run when a session loads the model.

    ``embed_layer_norm`` False keeps the embedding lookups as plain Gathers (int4 tables need them).
    ``skip_layer_norm`` False (the default) leaves the residual Add + LayerNormalization and the bias + GELU
    unfused and writes the residual adds as Sum (:func:`residual_sums`): ONNX Runtime's fused
    SkipLayerNormalization and BiasGelu CPU kernels are slower than the ops they replace, and the biases then
    fold into the matrix products instead (the int8 student at batch 1 x 128: 4.5 ms against 5.5 ms)."""
    import logging
    from pathlib import Path

    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.enable_embed_layer_norm = embed_layer_norm
    options.enable_skip_layer_norm = skip_layer_norm
    options.enable_bias_gelu = skip_layer_norm
    logging.disable(logging.WARNING)  # the fusion modules log through their own loggers
    try:
        model = optimize_model(str(source), model_type="bert", opt_level=0, optimization_options=options)
    finally:
        logging.disable(logging.NOTSET)
    counts = {k: int(v) for k, v in model.get_fused_operator_statistics().items()}
    if not skip_layer_norm:
        counts["Sum"] = residual_sums(model.model)
    target = Path(target)
    tmp = target.with_name(target.name + ".tmp")
    model.save_model_to_file(str(tmp))
    tmp.replace(target)
    return {k: counts.get(k, 0) for k in FUSIONS}
