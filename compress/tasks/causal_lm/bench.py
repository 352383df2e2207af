"""Benchmark every variant of a causal LM: perplexity on held-out text; time to first token, tokens/s and peak
RSS at batch 1 on each target, in bench.rounds interleaved rounds (a fresh process each; spreads and noise flags as
compress.bench.rounds); greedy generations from the same prompts. The baselines (student-init, student-ce) are
scored, not timed: they are the student's architecture and format, so their speed is the student's.
                                                                               -> bench/results.json"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from compress import models
from compress.bench import rounds, targets
from compress.errors import CompressError
from compress.io import dir_size, files_sha256, read_json, write_json
from compress.layout import RESULTS_FILE
from compress.tasks.causal_lm import lm, onnxlm
from compress.tasks.causal_lm.checks import PROMPT_TOKENS
from compress.tasks.causal_lm.text import eval_rows, load_text, prompts, token_stream
from compress.tasks.causal_lm.variants import folder as _folder
from compress.tasks.causal_lm.variants import variants

NAME = "bench"
DEPENDS = ("teacher", "student", "distill", "baseline", "export", "quantize")
VERSION = 3  # 2: interleaved rounds, spreads and noise flags; 3: the baselines are not timed
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
    rows_out, params, jobs = [], {}, []
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
        identity = weights + ([v["path"] / "config.json"] if v["format"] == "pytorch" else [])
        row = {**{k: str(x) if isinstance(x, Path) else x for k, x in v.items()}, "parameters": params[v["name"]],
               "sha256": files_sha256([p for p in identity if p.is_file()]),
               "size_bytes": sum(dir_size(p) for p in weights), **ppl, "eval_rows": len(held),
               "generations": generations, "measurements": {}}
        ctx.console.print(f"{v['name']:<13} perplexity {ppl['perplexity']:.3f} on {ppl['tokens']} held-out tokens, "
                          f"{row['size_bytes'] / 1e6:.1f} MB")
        if v["role"] == "baseline":  # student-init and student-ce: the student's own architecture and format
            row["not_timed"] = "the student's architecture and format: its generation speed is the student's"
            rows_out.append(row)
            continue
        query = token_stream(tok, text.eval)[: bcfg.sequence_length]
        for target in bcfg.targets:
            if target in skipped:
                continue
            if target == "mobile" and v["format"] != "onnx":
                continue  # ONNX Runtime on one thread stands for the device; PyTorch does not run there
            if target == "gpu":
                continue  # unavailable() said yes: CUDA generation is not measured for causal-lm yet
            threads = 1 if target == "mobile" else (bcfg.threads or os.cpu_count() or 1)
            jobs.append((v, row, target, query, threads))
        rows_out.append(row)
    how_measured = measure_rounds(ctx, bcfg, jobs)
    not_measured = {t: why for t, why in skipped.items()}
    if "gpu" in bcfg.targets and "gpu" not in skipped:
        not_measured["gpu"] = "generation on CUDA is not measured for task causal-lm yet"
    write_json(ctx.out / RESULTS_FILE, {"task": "causal-lm", "eval": {"text": text.source, "rows": rows_out[0]["eval_rows"],
                                                                      "tokens": rows_out[0]["tokens"]},
                                          "prompts": prompt_texts, "targets": bcfg.targets, "not_measured": not_measured,
                                          "query": {"prompt_tokens": bcfg.sequence_length, "new_tokens": bcfg.new_tokens,
                                                    "batch_size": 1, "warmup": bcfg.warmup, "runs": bcfg.queries},
                                          "variants": rows_out, "latency_rounds": how_measured,
                                          "environment": read_json(ctx.layout.env)})
    flagged = sorted({r["name"] for r in rows_out for m in r["measurements"].values() if m["flags"]})
    return {"variants": [r["name"] for r in rows_out], "not_measured": not_measured, "rounds": bcfg.rounds,
            "flagged": flagged}


def measure_rounds(ctx, bcfg, jobs: list[tuple]) -> dict:
    """Generation speed of every (variant, target) in ``bench.rounds`` interleaved rounds (round r measures each
    once, in order, then round r+1; each in a fresh process), combined as compress.bench.rounds does for latency:
    time to first token and tokens/s the medians over rounds, flagged noisy when either's rounds disagree by more
    than bench.noise_tolerance. Returns how they were measured."""
    clock, before = rounds.timer(), rounds.machine()
    taken: list[list[dict]] = [[] for _ in jobs]
    for r in range(bcfg.rounds):
        for i, (v, _, target, query, threads) in enumerate(jobs):
            with ctx.console.status(f"round {r + 1}/{bcfg.rounds}: generation speed of {v['name']} on {target} in a "
                                    "fresh process"):
                taken[i].append(measure(v, query, bcfg, threads))
    after = rounds.machine()
    for (v, row, target, _, _), ms in zip(jobs, taken):
        m = combine_generation(ms, bcfg.noise_tolerance, clock["floor_ms"])
        row["measurements"][target] = m
        ctx.console.print(f"{v['name']:<13} {target:<7} first token {m['time_to_first_token_ms']['p50']:.1f} ms "
                          f"(rounds {m['p50_range_ms'][0]:.1f}-{m['p50_range_ms'][1]:.1f}), {m['tokens_per_second']:.1f} "
                          f"tokens/s, peak RSS {m['peak_rss_bytes'] / 2**20:.0f} MiB ({m['threads']} "
                          f"thread{'s' if m['threads'] > 1 else ''}){rounds.tag(m['flags'])}")
    return {"rounds": bcfg.rounds, "noise_tolerance": bcfg.noise_tolerance, "timer": clock,
            "machine": {"before": before, "after": after}}


def combine_generation(per_round: list[dict], tolerance: float, floor_ms: float) -> dict:
    """One generation measurement from its rounds (the worker's results, in round order): the time to first token
    as compress.bench.rounds.combine gives a latency (its p50s' spread and flags), tokens/s the median over rounds
    with its rounds beside it, flagged noisy too when they disagree by more than ``tolerance``."""
    ttft = rounds.combine([m["time_to_first_token_ms"] for m in per_round], tolerance, floor_ms)
    rates = [m["tokens_per_second"] for m in per_round]
    flags = ttft["flags"]
    if rounds.spread(rates)[2] > tolerance and rounds.NOISY not in flags:
        flags = [rounds.NOISY, *flags]
    return {**per_round[0],
            "time_to_first_token_ms": ttft.pop("latency_ms"), **ttft, "flags": flags,
            "tokens_per_second": round(statistics.median(rates), 2), "tokens_per_second_rounds": rates,
            "generation_ms": round(statistics.median(m["generation_ms"] for m in per_round), 3),
            "load_seconds": round(statistics.median(m["load_seconds"] for m in per_round), 3),
            "peak_rss_bytes": max(m["peak_rss_bytes"] for m in per_round)}


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
