"""A transformers classifier in PyTorch, measured: fp32 logits of many rows batched by length, and median latency.
Used by the quantize ladder, the bench stage and benchmarks/flagship.py."""

from __future__ import annotations

import statistics
import time

import numpy as np

from compress import onnxrun

WARMUP = 5  # untimed calls before a median_ms measurement


def median_ms(call, runs: int) -> float:
    """Median wall time of ``call`` in ms, after a few untimed calls."""
    for _ in range(WARMUP):
        call()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1e3, 3)


def torch_logits(model, rows: list[list[int]], pad_id: int, device: str, batch_size: int = 64) -> np.ndarray:
    """fp32 logits of every row, batched by length, in the original order. The model is not moved
    (bitsandbytes models cannot be); its inputs go to ``device``."""
    model.eval()
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    out = None
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        ids, mask = onnxrun.pad([rows[i] for i in idx], pad_id)
        logits = torch_forward(model, ids, mask, device)
        if out is None:
            out = np.empty((len(rows), logits.shape[-1]), dtype=np.float32)
        out[idx] = logits
    return out


def torch_forward(model, ids: np.ndarray, mask: np.ndarray, device: str) -> np.ndarray:
    import torch

    with torch.inference_mode():
        logits = model(input_ids=torch.from_numpy(ids).to(device), attention_mask=torch.from_numpy(mask).to(device)).logits
    return logits.float().cpu().numpy()


def torch_latency(model, ids: np.ndarray, device: str, runs: int) -> float:
    import torch

    x = torch.from_numpy(ids).to(device)
    mask = torch.ones_like(x)

    def call():
        with torch.inference_mode():
            model(input_ids=x, attention_mask=mask)
        if device == "cuda":
            torch.cuda.synchronize()

    return median_ms(call, runs)
