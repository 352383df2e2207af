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
           "SkipLayerNormalization", "LayerNormalization", "Sum", "FirstToken")


def optimize(source, target, embed_layer_norm: bool = True, skip_layer_norm: bool = False,
             first_token: bool = False) -> dict[str, int]:
    """ONNX Runtime's Python fusions for BERT-like graphs (heads and width read from the graph) from ``source``
    into ``target``; ONNX Runtime's own graph optimizations still run when a session loads the model.

    ``embed_layer_norm`` False keeps the embedding lookups as plain Gathers (int4 tables need them).
    ``skip_layer_norm`` False (the default) leaves the residual Add + LayerNormalization and the bias + GELU
    unfused and writes the residual adds as Sum (:func:`residual_sums`): ONNX Runtime's fused
    SkipLayerNormalization and BiasGelu CPU kernels are slower than the ops they replace, and the biases then
    fold into the matrix products instead (the int8 student at batch 1 x 128: 4.5 ms against 5.5 ms).
    ``first_token`` True: the last layer computes only the row the classifier reads (:func:`first_token_head`;
    ``FirstToken`` in the counts is how many of its operators now run on that row alone, 0 when the graph
    does not qualify)."""
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
    if first_token:
        counts["FirstToken"] = first_token_head(model.model)
    target = Path(target)
    tmp = target.with_name(target.name + ".tmp")
    model.save_model_to_file(str(tmp))
    tmp.replace(target)
    return {k: counts.get(k, 0) for k in FUSIONS}


# Operators that act on each token's row alone (with constant weights or per-feature constants), so computing
# them for the first row only gives that row's exact values.
ROW_WISE = {"Add", "Sum", "Sub", "Mul", "Div", "LayerNormalization", "SkipLayerNormalization", "Gelu", "FastGelu",
            "BiasGelu", "Relu", "Tanh", "Erf", "Sigmoid", "Cast", "Identity", "MatMul"}
FIRST_TOKEN = "first_token"  # in the names of the nodes first_token_head writes; its matrix products stay fp32


def first_token_head(model) -> int:
    """Make the last encoder layer compute only the first token's row, in place in ``model`` (a ModelProto
    fused by :func:`optimize`), when that row is all the graph's output reads: a BERT-like classifier's pooler
    (or DistilBERT's head) takes ``hidden[:, 0]`` of the last layer and nothing else, so the last layer's
    attention output projection, feed-forward block and LayerNorms did 128 rows of work at 128 tokens for one
    row that is read. Exact: the other rows never reached the output.

    The last layer's attention (ONNX Runtime's fused ``Attention``) becomes one query against every token,
    without computing the keys and values: with q the first token's scaled query, X the layer's input and
    W_k, W_v the key and value weights of head h, the scores are X (W_k,h q_h) (the key bias adds q_h . b_k
    to every score, which softmax ignores) and the context is (p_h X) W_v,h + b_v,h (the softmax weights p_h
    sum to 1). Both weight products are written as plain matrix products with constant 2-D weights (the query
    spread over one row per head, and the head's own columns picked afterwards), so the quantizers treat them
    as linear layers: the weights stay int8 and the model no larger. Two small fp32 products between
    activations (:func:`fp32_nodes`) replace the [tokens x hidden x 2 hidden] key and value projections.

    Nothing is changed (0 is returned) unless the graph has one Gather of index 0 along the token axis after
    its last Attention, every operator between the two is row-wise (:data:`ROW_WISE`) and read by nothing
    else, and that Attention is plain (no past state, no extra bias, not causal, equal query, key and value
    widths). Returns how many operators now run on the first row only."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    if next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0) < 13:
        return 0
    inits = {t.name: t for t in graph.initializer}
    consts = dict(inits)
    for node in graph.node:
        value = next((a.t for a in node.attribute if a.name == "value"), None) if node.op_type == "Constant" else None
        if value is not None:
            consts[node.output[0]] = value
    nodes = list(graph.node)
    producer = {out: node for node in nodes for out in node.output}
    readers: dict[str, list] = {}
    for node in nodes:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def attr(node, name, default=None):
        found = next((a for a in node.attribute if a.name == name), None)
        return default if found is None else helper.get_attribute_value(found)

    def is_zero_scalar(name):
        return name in consts and numpy_helper.to_array(consts[name]).shape == () and \
            int(numpy_helper.to_array(consts[name])) == 0

    gathers = [n for n in nodes if n.op_type == "Gather" and attr(n, "axis", 0) == 1 and is_zero_scalar(n.input[1])]
    if len(gathers) != 1:
        return 0
    gather = gathers[0]
    attn = next((n for n in reversed(nodes[: nodes.index(gather)]) if n.op_type == "Attention"), None)
    if attn is None or attn.domain != "com.microsoft" or attr(attn, "unidirectional", 0):
        return 0
    x, attn_out = attn.input[0], attn.output[0]
    region, seen, stack = [], set(), [gather.input[0]]
    while stack:  # from the Gather back to the Attention and its input
        name = stack.pop()
        if name in (x, attn_out) or name in consts or name in seen:
            continue
        seen.add(name)
        node = producer.get(name)
        if node is None or node.op_type not in ROW_WISE:
            return 0
        if node.op_type == "MatMul" and (node.input[1] not in inits or len(inits[node.input[1]].dims) != 2):
            return 0
        if node.op_type == "LayerNormalization" and attr(node, "axis", -1) != -1:
            return 0
        if node.op_type != "MatMul" and any(consts[i].dims and len(consts[i].dims) > 1
                                            for i in node.input if i in consts):
            return 0
        region.append(node)
        stack.extend(i for i in node.input if i)
    if not any(attn_out in node.input for node in region):
        return 0
    graph_outputs = {o.name for o in graph.output}
    inside = {id(node) for node in region} | {id(gather)}
    for node in region:
        for out in node.output:
            if out in graph_outputs or any(id(r) not in inside for r in readers.get(out, [])):
                return 0

    inputs = [i for i in attn.input]
    if len(inputs) < 3 or len([i for i in inputs if i]) > 4 or inputs[1] not in inits or inputs[2] not in inits:
        return 0
    weight, bias = numpy_helper.to_array(inits[inputs[1]]), numpy_helper.to_array(inits[inputs[2]])
    heads = attr(attn, "num_heads")
    sizes = attr(attn, "qkv_hidden_sizes") or [weight.shape[1] // 3] * 3
    if len(set(sizes)) != 1 or sum(sizes) != weight.shape[1] or not heads or sizes[0] % heads:
        return 0
    width, hidden = sizes[0], weight.shape[0]
    size = width // heads
    scale = attr(attn, "scale") or 1.0 / float(np.sqrt(size))
    mask = None
    if len(inputs) > 3 and inputs[3]:
        mask = next((i.name for i in graph.input if i.name == "attention_mask"), None)
        if mask is None:
            return 0

    p = f"{attn.name or 'attention'}_{FIRST_TOKEN}"
    w_q, w_k, w_v = (weight[:, k * width:(k + 1) * width] for k in range(3))
    arrays = {
        "starts": np.array([0], np.int64), "ends": np.array([1], np.int64), "axes": np.array([1], np.int64),
        "q_weight": (w_q * scale).astype(np.float32), "q_bias": (bias[:width] * scale).astype(np.float32),
        "heads": np.kron(np.eye(heads, dtype=np.float32), np.ones((1, size), np.float32)),  # [heads, width]: 1 on h's columns
        "k_weight_t": np.ascontiguousarray(w_k.T).astype(np.float32),                      # [width, hidden]
        "v_weight": np.ascontiguousarray(w_v).astype(np.float32),                          # [hidden, width]
        "v_bias": bias[2 * width:].astype(np.float32),
        "one": np.array(1.0, np.float32), "masked": np.array(10000.0, np.float32), "mask_axes": np.array([2], np.int64),
        "sum_axes": np.array([1], np.int64),
    }

    def t(name):
        return f"{p}/{name}"

    def op(kind, ins, out, **kw):
        return helper.make_node(kind, ins, [out], name=t(out.rsplit("/", 1)[-1] + "_" + kind), **kw)

    first = t("x0")
    new = [
        op("Slice", [x, t("starts"), t("ends"), t("axes")], first),
        op("MatMul", [first, t("q_weight")], t("q_mm")),
        op("Add", [t("q_mm"), t("q_bias")], t("q")),                              # [B, 1, width], scaled
        op("Mul", [t("q"), t("heads")], t("q_rows")),                             # [B, heads, width]: q_h in row h
        op("MatMul", [t("q_rows"), t("k_weight_t")], t("u")),                     # [B, heads, hidden]: W_k,h q_h
        op("Transpose", [t("u")], t("u_t"), perm=[0, 2, 1]),                      # [B, hidden, heads]
        op("MatMul", [x, t("u_t")], t("scores")),                                 # [B, tokens, heads]
    ]
    if mask is not None:  # (mask - 1) * 10000: 0 where attended, -10000 where padded (BERT's additive mask)
        new += [op("Cast", [mask], t("mask_f"), to=1), op("Sub", [t("mask_f"), t("one")], t("mask_m1")),
                op("Mul", [t("mask_m1"), t("masked")], t("mask_add")),
                op("Unsqueeze", [t("mask_add"), t("mask_axes")], t("mask_bias")),
                op("Add", [t("scores"), t("mask_bias")], t("scores_masked"))]
    new += [
        op("Softmax", [t("scores_masked") if mask is not None else t("scores")], t("probs"), axis=1),
        op("Transpose", [t("probs")], t("probs_t"), perm=[0, 2, 1]),              # [B, heads, tokens]
        op("MatMul", [t("probs_t"), x], t("z")),                                  # [B, heads, hidden]: p_h X
        op("MatMul", [t("z"), t("v_weight")], t("zv")),                           # [B, heads, width]
        op("Mul", [t("zv"), t("heads")], t("zv_own")),                            # row h keeps head h's columns
        op("ReduceSum", [t("zv_own"), t("sum_axes")], t("context"), keepdims=1),  # [B, 1, width]
        helper.make_node("Add", [t("context"), t("v_bias")], [attn_out], name=t("v_bias_Add")),
    ]
    for node in region:
        for j, name in enumerate(node.input):
            if name == x:
                node.input[j] = first
    at = nodes.index(attn)
    nodes[at:at + 1] = new
    del graph.node[:]
    graph.node.extend(nodes)
    for name in inputs[1:3]:
        if len(readers.get(name, [])) == 1:
            graph.initializer.remove(inits[name])
    graph.initializer.extend(numpy_helper.from_array(a, t(k)) for k, a in arrays.items())
    return len(region)


def _first_token_nodes(model) -> list:
    return [n for n in model.graph.node if f"_{FIRST_TOKEN}/" in n.name]


def has_first_token_head(model) -> bool:
    """Whether :func:`first_token_head` rewrote ``model``'s last layer."""
    return bool(_first_token_nodes(model))


def fp32_nodes(model) -> list[str]:
    """Names of the matrix products :func:`first_token_head` wrote between two activations (the attention
    scores and the weighted sum of the tokens): quantizers leave them fp32, as QAttention does."""
    return [n.name for n in _first_token_nodes(model)
            if n.op_type == "MatMul" and n.name.rsplit("/", 1)[-1] in ("scores_MatMul", "z_MatMul")]
