"""Benchmark every variant of a causal LM: perplexity on held-out text; time to first token, tokens/s and peak
RSS at batch 1 on each target (a fresh process each); greedy generations from the same prompts.
                                                                               -> bench/results.json"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from compress import models
from compress.bench import targets
from compress.errors import CompressError
from compress.io import dir_size, read_json, write_json
from compress.layout import RESULTS_FILE
from compress.tasks.causal_lm import lm, onnxlm
from compress.tasks.causal_lm.checks import PROMPT_TOKENS
from compress.tasks.causal_lm.text import eval_rows, load_text, prompts, token_stream
from compress.tasks.causal_lm.variants import folder as _folder
from compress.tasks.causal_lm.variants import variants

NAME = "bench"
DEPENDS = ("teacher", "student", "distill", "baseline", "export", "quantize")
CONFIG = ("bench", "data")


def run(cfg, ctx) -> dict:
    from transformers import AutoTokenizer

    bcfg = cfg.bench
    text = load_text(cfg)
    skipped = {t: why for t in bcfg.targets if (why := targets.unavailable(t))}
    for t, why in skipped.items():
        ctx.console.print(f"bench: the {t} target is skipped: {why}")
    first_tok = AutoTokenizer.from_pretrained(ctx.layout.model("teacher"))
    prompt_texts = [first_tok.decode(p) for p in prompts(first_tok, text.eval, bcfg.generation_prompts, PROMPT_TOKENS)]
    rows_out, params = [], {}
    for v in variants(ctx):
        tok = AutoTokenizer.from_pretrained(_folder(v))
        held = eval_rows(cfg, tok, text)
        with ctx.console.status(f"perplexity of {v['name']} on {len(held)} held-out rows"):
            if v["format"] == "pytorch":
                model, _ = lm.load_saved(v["path"])
                params[v["name"]] = models.count_parameters(model)
                ppl = onnxlm.perplexity(onnxlm.torch_logits_fn(model), held, tok.pad_token_id)
                generate = lambda ids, m=model: onnxlm.torch_greedy(m, ids, bcfg.generation_tokens, tok.eos_token_id, tok.pad_token_id)  # noqa: E731
            else:
                dec = onnxlm.Decoder(v["path"], threads=bcfg.threads)
                params[v["name"]] = params[v["parent"]]
                ppl = onnxlm.perplexity(dec.logits, held, tok.pad_token_id)
                generate = lambda ids, d=dec: d.greedy(ids, bcfg.generation_tokens, tok.eos_token_id)  # noqa: E731
            generations = [tok.decode(generate(tok(p, add_special_tokens=False)["input_ids"])) for p in prompt_texts]
        weights = sorted(v["path"].glob("*.safetensors")) if v["format"] == "pytorch" else [v["path"]]
        row = {**{k: str(x) if isinstance(x, Path) else x for k, x in v.items()}, "parameters": params[v["name"]],
               "size_bytes": sum(dir_size(p) for p in weights), **ppl, "eval_rows": len(held),
               "generations": generations, "measurements": {}}
        ctx.console.print(f"{v['name']:<13} perplexity {ppl['perplexity']:.3f} on {ppl['tokens']} held-out tokens, "
                          f"{row['size_bytes'] / 1e6:.1f} MB")
        query = token_stream(tok, text.eval)[: bcfg.sequence_length]
        for target in bcfg.targets:
            if target in skipped:
                continue
            if target == "mobile" and v["format"] != "onnx":
                continue  # ONNX Runtime on one thread stands for the device; PyTorch does not run there
            if target == "gpu":
                continue  # unavailable() said yes: CUDA generation is not measured for causal-lm yet
            threads = 1 if target == "mobile" else (bcfg.threads or os.cpu_count() or 1)
            with ctx.console.status(f"generation speed of {v['name']} on {target} in a fresh process"):
                m = measure(v, query, bcfg, threads)
            row["measurements"][target] = m
            ctx.console.print(f"{v['name']:<13} {target:<7} first token {m['time_to_first_token_ms']['p50']:.1f} ms, "
                              f"{m['tokens_per_second']:.1f} tokens/s, peak RSS {m['peak_rss_bytes'] / 2**20:.0f} MiB "
                              f"({m['threads']} thread{'s' if m['threads'] > 1 else ''})")
        rows_out.append(row)
    not_measured = {t: why for t, why in skipped.items()}
    if "gpu" in bcfg.targets and "gpu" not in skipped:
        not_measured["gpu"] = "generation on CUDA is not measured for task causal-lm yet"
    write_json(ctx.out / RESULTS_FILE, {"task": "causal-lm", "eval": {"text": text.source, "rows": rows_out[0]["eval_rows"],
                                                                      "tokens": rows_out[0]["tokens"]},
                                          "prompts": prompt_texts, "targets": bcfg.targets, "not_measured": not_measured,
                                          "query": {"prompt_tokens": bcfg.sequence_length, "new_tokens": bcfg.new_tokens,
                                                    "batch_size": 1, "warmup": bcfg.warmup, "runs": bcfg.queries},
                                          "variants": rows_out, "environment": read_json(ctx.layout.env)})
    return {"variants": [r["name"] for r in rows_out], "not_measured": not_measured}


def measure(v: dict, prompt: list[int], bcfg, threads: int) -> dict:
    """Time to first token, tokens per second and peak RSS of ``v`` in a fresh process (compress.tasks.causal_lm.worker)."""
    spec = {"format": v["format"], "path": str(v["path"]), "prompt": prompt, "new_tokens": bcfg.new_tokens,
            "warmup": max(1, min(bcfg.warmup, 3)), "runs": bcfg.queries, "threads": threads}
    with tempfile.TemporaryDirectory() as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps(spec))
        proc = subprocess.run([sys.executable, "-m", "compress.tasks.causal_lm.worker", str(spec_path), str(out_path)],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not out_path.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise CompressError(f"bench: the worker measuring {v['path']} failed (exit {proc.returncode}): {tail[0]}")
        return json.loads(out_path.read_text())
