"""Generation speed of one decoder variant in this (fresh) process: load time, time to first token, tokens per
second at batch 1 through the KV cache, peak RSS.

``python -m compress.tasks.causal_lm.worker SPEC.json RESULT.json``. An ONNX variant runs with numpy and onnxruntime alone
(torch is never imported for it), as on a device; a GGUF one (format ``gguf``) with llama.cpp and numpy alone. A
PyTorch one is a saved folder, or with ``"loader": "pretrained"`` any source lm.load_pretrained reads (package:...).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from compress.bench.worker import (
    peak_rss_bytes,  # VmHWM: ru_maxrss carries the parent's peak over
)
from compress.tasks.causal_lm import llamacpp
from compress.tasks.causal_lm.lm import load_pretrained
from compress.tasks.causal_lm.onnxlm import Decoder, torch_greedy_timed


def _runner(spec: dict):
    eos = None  # every query generates exactly new_tokens tokens: the same work for every variant
    if spec["format"] == "onnx":
        dec = Decoder(Path(spec["path"]), threads=spec["threads"])
        return (lambda prompt, n, t: dec.greedy(prompt, n, eos, t)), "onnxruntime"
    if spec["format"] == "gguf":
        llm = llamacpp.load(Path(spec["path"]), spec["threads"], n_ctx=len(spec["prompt"]) + spec["new_tokens"] + 8)
        return (lambda prompt, n, t: llamacpp.greedy(llm, prompt, n, t)), f"llama.cpp {llamacpp.info()['llama_cpp_python']}"
    import torch

    torch.set_num_threads(spec["threads"])
    if spec.get("loader") == "pretrained":
        model = load_pretrained(spec["path"])[0].eval()
    else:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(spec["path"], use_safetensors=True, dtype="float32").eval()
    return (lambda prompt, n, t: torch_greedy_timed(model, prompt, n, t)), f"torch {torch.__version__} eager"


def measure(spec: dict) -> dict:
    rss_before = rss_bytes()
    t0 = time.perf_counter()
    run, runtime = _runner(spec)
    load = time.perf_counter() - t0
    prompt, n = spec["prompt"], spec["new_tokens"]
    for _ in range(spec["warmup"]):
        run(prompt, n, {})
    ttft, rates, totals = [], [], []
    for _ in range(spec["runs"]):
        t: dict = {}
        tokens = run(prompt, n, t)
        ttft.append(t["first_token_s"] * 1000)
        rates.append((t["tokens"] - 1) / t["decode_s"] if t["decode_s"] > 0 else float("inf"))
        totals.append((t["first_token_s"] + t["decode_s"]) * 1000)
    ttft.sort()
    return {
        "runtime": runtime, "threads": spec["threads"], "prompt_tokens": len(prompt), "new_tokens": n,
        "warmup": spec["warmup"], "runs": spec["runs"], "load_seconds": round(load, 3),
        "time_to_first_token_ms": {"p50": round(statistics.median(ttft), 3), "p90": round(ttft[int(0.9 * (len(ttft) - 1))], 3),
                                   "min": round(ttft[0], 3)},
        "tokens_per_second": round(statistics.median(rates), 2),
        "generation_ms": round(statistics.median(totals), 3),
        "peak_rss_bytes": peak_rss_bytes(), "rss_before_load_bytes": rss_before,
        **({"tokens": tokens} if spec.get("return_tokens") else {}),  # the last run's greedy tokens
    }


def rss_bytes() -> int:
    """Resident memory of this process now (VmRSS; 0 where /proc is not there)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            return next((int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:")), 0)
    except OSError:
        return 0


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    Path(argv[1]).write_text(json.dumps(measure(spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
