"""Measure one variant in this (fresh) process: load time, latency, peak RSS.

``python -m compress.bench.worker SPEC.json RESULT.json``. An ONNX variant is run with
onnxruntime and numpy alone, as on a device: torch is never imported for it.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from compress import onnxrun
from compress.bench.latency import LatencyStats
from compress.quant.gpu import load_bnb
from compress.quant.torch_int8 import load


def _onnx_runner(spec: dict):
    import numpy as np

    sess = onnxrun.session(Path(spec["path"]), threads=spec["threads"], arena=True, providers=spec.get("providers"))
    ids = np.asarray(spec["input_ids"], dtype=np.int64)
    inputs = onnxrun.feeds(sess, ids, np.ones_like(ids))
    runtime = "onnxruntime" + (f" ({sess.get_providers()[0]})" if spec.get("providers") else "")
    # the CPU arena keeps freed buffers for reuse: faster steady state, a higher peak RSS
    return lambda: sess.run(["logits"], inputs), {"runtime": runtime, "cpu_mem_arena": True}


def _torch_runner(spec: dict):
    import torch

    torch.set_num_threads(spec["threads"])
    model = _load_torch(spec)
    device = spec.get("device", "cpu")
    if spec.get("loader", "saved") == "saved":  # bitsandbytes models are placed on CUDA when they load
        model = model.to(device)
    ids = torch.tensor(spec["input_ids"], dtype=torch.long).to(device)
    mask = torch.ones_like(ids)

    def run():
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask).logits
        if device == "cuda":  # kernels are asynchronous: time them, not their launch
            torch.cuda.synchronize()
        return logits

    loader = spec.get("loader", "saved")
    on = "" if device == "cpu" else f" on {device}"
    return run, {"runtime": "torch eager" + ("" if loader == "saved" else f" ({loader})") + on, "cpu_mem_arena": None}


def _load_torch(spec: dict):
    """The model of a PyTorch variant: fp32 safetensors, int8 (compress.quant.torch_int8) or bitsandbytes."""
    path, loader = Path(spec["path"]), spec.get("loader", "saved")
    if loader == "torch_int8":
        return load(path)[0]
    if loader == "bnb":
        return load_bnb(path)[0]
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=True).eval()


def peak_rss_bytes() -> int:
    """Peak resident memory of this process since its exec.

    VmHWM is the high-water mark of this process's own address space. ru_maxrss is not used
    on Linux: it carries over the parent's peak through fork and exec.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text())
    started = time.perf_counter()
    runner, info = (_onnx_runner if spec["format"] == "onnx" else _torch_runner)(spec)
    load_seconds = time.perf_counter() - started
    for _ in range(spec["warmup"]):
        runner()
    # at least `queries` queries, and on until `min_seconds` have passed (MLPerf's minimum duration)
    times, began = [], time.perf_counter()
    while len(times) < spec["queries"] or time.perf_counter() - began < spec.get("min_seconds", 0):
        t0 = time.perf_counter()
        runner()
        times.append(time.perf_counter() - t0)
    timed_seconds = time.perf_counter() - began
    batch, length = len(spec["input_ids"]), len(spec["input_ids"][0])
    result = {
        **info,
        "threads": spec["threads"],
        "batch_size": batch,
        "sequence_length": length,
        "warmup": spec["warmup"],
        "load_seconds": round(load_seconds, 3),
        "timed_seconds": round(timed_seconds, 3),
        "latency": LatencyStats.from_seconds(times, batch).to_dict(),
        "peak_rss_bytes": peak_rss_bytes(),
        "torch_imported": "torch" in sys.modules,
    }
    Path(argv[2]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
