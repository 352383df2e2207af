"""ONNX Runtime sessions and feeds. Imports numpy and onnxruntime only (no torch), so the
latency worker and the bundle check measure and load what a device would."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from compress.errors import CompressError


def session(path: Path, threads: int | None = None, arena: bool = True, providers: list[str] | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or os.cpu_count() or 1
    opts.inter_op_num_threads = 1
    opts.enable_cpu_mem_arena = arena
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's load errors (a truncated or damaged graph) share no base class

        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CompressError(f"{path}: ONNX Runtime cannot load it ({first}); the file is truncated or damaged") from None


def feeds(sess, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
    """Inputs by name; token_type_ids (BERT) are zeros for single sentences."""
    out = {}
    for inp in sess.get_inputs():
        if inp.name == "input_ids":
            out[inp.name] = input_ids.astype(np.int64)
        elif inp.name == "attention_mask":
            out[inp.name] = attention_mask.astype(np.int64)
        elif inp.name == "token_type_ids":
            out[inp.name] = np.zeros_like(input_ids, dtype=np.int64)
        else:
            raise ValueError(f"{inp.name}: unexpected model input (expected input_ids, attention_mask, token_type_ids)")
    return out


def pad(rows: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return ids, mask


def logits(sess, rows: list[list[int]], pad_id: int, batch_size: int = 64) -> np.ndarray:
    """Logits for every row, batched by length, returned in the original order."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    out = None
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        ids, mask = pad([rows[i] for i in idx], pad_id)
        result = sess.run(["logits"], feeds(sess, ids, mask))[0]
        if out is None:
            out = np.empty((len(rows), result.shape[-1]), dtype=np.float32)
        out[idx] = result
    return out


def model_spec(onnx_path: Path) -> dict:
    """Inputs and outputs of the model: names, dtypes, shapes with their symbolic (dynamic) axes named."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return {"inputs": [_tensor_spec(t) for t in graph.input], "outputs": [_tensor_spec(t) for t in graph.output]}


def _tensor_spec(value) -> dict:
    import onnx

    t = value.type.tensor_type
    dims = [d.dim_param or d.dim_value for d in t.shape.dim]
    return {"name": value.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, "shape": dims,
            "dynamic_axes": {str(i): d for i, d in enumerate(dims) if isinstance(d, str)}}
