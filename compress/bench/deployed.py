"""Accuracy as deployed: a model scored one sentence at a time, unpadded (batch 1), as a device runs it.

Batched evaluation pads every row to the longest of its batch. For most models the attention mask makes that
harmless, but not for all: dynamic int8 computes each activation's quantization range over the whole batch,
padded rows included, so a sentence can be classified differently beside longer ones than alone. A device runs
one sentence, unpadded; this is the figure retention targets are judged on (the report's retention floor, the
quantization budgets). Used by the bench and quantize stages and benchmarks/flagship.py.
"""

from __future__ import annotations

import numpy as np

from compress import onnxrun
from compress.bench.accuracy import accuracy_interval
from compress.bench.torch_model import torch_forward


def scored_at_batch1(name: str, precision: str, shipped: str | None) -> bool:
    """Whether a variant is also scored one sentence at a time: the shipped one and every int8 one."""
    return name == shipped or precision == "int8"


def onnx_logits(sess, rows: list[list[int]]) -> np.ndarray:
    """Logits of every row, each run alone: input_ids of its own length, an attention mask of ones."""
    out = None
    for i, row in enumerate(rows):
        ids = np.asarray([row], dtype=np.int64)
        logits = sess.run(["logits"], onnxrun.feeds(sess, ids, np.ones_like(ids)))[0]
        if out is None:
            out = np.empty((len(rows), logits.shape[-1]), dtype=np.float32)
        out[i] = logits[0]
    return out


def torch_logits(model, rows: list[list[int]], device: str) -> np.ndarray:
    """The same for a PyTorch model (on ``device``, not moved)."""
    model.eval()
    out = None
    for i, row in enumerate(rows):
        ids = np.asarray([row], dtype=np.int64)
        logits = torch_forward(model, ids, np.ones_like(ids), device)
        if out is None:
            out = np.empty((len(rows), logits.shape[-1]), dtype=np.float32)
        out[i] = logits[0]
    return out


def figures(pred_batch1: np.ndarray, pred_batched: np.ndarray, labels: np.ndarray) -> dict:
    """A variant's batch-1 accuracy (with its 95% bootstrap interval), its predictions, and how many sentences it
    classifies differently alone than in a padded batch."""
    correct = (pred_batch1 == labels).astype(np.int8)
    lo, hi = accuracy_interval(correct)
    return {"accuracy_batch1": round(float(correct.mean()), 5), "accuracy_batch1_ci95": [round(lo, 5), round(hi, 5)],
            "changed_at_batch1": int((pred_batch1 != pred_batched).sum()), "predictions_batch1": pred_batch1.tolist()}
