"""The stages of a run for ``task: causal-lm``: each function is the body of the stage of the same name in
compress/stages/ (which calls it for this task), with the same folders, inputs hashing and atomic writes.

teacher   a pretrained decoder (hub id, folder) or a random GPT-2-style one with a BPE tokenizer trained on the
          text, trained or fine-tuned by next-token CE                                        -> teacher/model
student   layers of the teacher, a smaller config, or a smaller pretrained decoder         -> student/model
distill   tokenizer preflight, then token-level KD (live teacher) and/or sequence-level KD  -> distill/model
baseline  the same student on next-token CE only (same text, steps, seed)                  -> baseline/student-ce
export    ONNX with the KV cache; logits parity at several lengths (with and without the cache), greedy tokens
          equal to PyTorch's generate on held-out prompts                                      -> export/<model>/
quantize  dynamic int8 of the ONNX student, held to a perplexity budget                     -> quantize/<variant>/
bench     perplexity of every variant on held-out text; time to first token, tokens/s, peak RSS at batch 1 on each
          target (fresh process); greedy generations from the same prompts               -> bench/results.json
report    report.json / report.md                                                              -> runs/<name>/
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from compress import models
from compress.distill.train import accelerator_for, fit
from compress.errors import CompressError
from compress.io import dir_size, read_json, write_json, write_text
from compress.llm import lm, onnxlm, preflight
from compress.llm.objectives import TokenKD, kd_loss_fn, lm_cross_entropy, teacher_completions
from compress.llm.text import as_encoded, eval_rows, load_text, prompts, token_stream, train_rows

PROMPT_TOKENS = 16  # tokens of each greedy / side-by-side prompt
MANIFEST = "variants.json"
BUDGET_ROWS = 64  # training rows the int8 perplexity budget is judged on (never the held-out text)


def output_rows(model) -> int:
    return int(model.get_output_embeddings().weight.shape[0])


# ----------------------------------------------------------------------------- teacher, student


def teacher(cfg, ctx) -> dict:
    tcfg = cfg.teacher
    text = load_text(cfg)
    if tcfg.model:
        model, tokenizer = lm.load_pretrained(tcfg.model, tcfg.allow_pickle, tcfg.trust_remote_code)
        source = tcfg.model
    else:
        with ctx.console.status("training a byte-level BPE tokenizer on the training text"):
            model, tokenizer = lm.build_random(tcfg, text.train, cfg.data.max_length)
        source = f"random {tcfg.architecture}"
    data = train_rows(cfg, tokenizer, text)
    ctx.console.print(f"teacher: {source} ({models.count_parameters(model) / 1e6:.1f}M parameters, "
                      f"{model.config.model_type}, vocabulary {len(tokenizer)}); text: {text.source}; "
                      f"{len(data)} training rows of up to {cfg.data.max_length} tokens")
    metrics = {"source": source, "model_type": model.config.model_type, "parameters": models.count_parameters(model),
               "vocabulary": len(tokenizer), "text": text.source, "train_rows": len(data),
               "train_tokens": sum(map(len, data.input_ids))}
    if tcfg.finetune:
        metrics["train"] = fit(model, data, tokenizer.pad_token_id, tcfg.train, accelerator_for(tcfg.train, ctx),
                               cfg.seed, lm_cross_entropy, "train teacher", ctx.console, checkpoint_dir=ctx.checkpoint_dir)
        model = model.cpu()
    models.save(model, tokenizer, ctx.out / "model")
    return metrics


def student(cfg, ctx) -> dict:
    teacher_model, tokenizer = lm.load_saved(ctx.stage_dir("teacher") / "model")
    model, student_tokenizer, info = lm.build_student(cfg.student, teacher_model, tokenizer)
    models.save(model, student_tokenizer, ctx.out / "model")
    t, s = models.count_parameters(teacher_model), models.count_parameters(model)
    ctx.console.print(f"student: {', '.join(f'{k} {v}' for k, v in info.items())}; {s / 1e6:.1f}M parameters "
                      f"({s / t:.0%} of the teacher)")
    return {**info, "parameters": s, "teacher_parameters": t}


# ----------------------------------------------------------------------------- distill, baseline


def distill(cfg, ctx) -> dict:
    dcfg, seq = cfg.distill, cfg.distill.sequence
    teacher_model, teacher_tok = lm.load_saved(ctx.stage_dir("teacher") / "model")
    model, tok = lm.load_saved(ctx.stage_dir("student") / "model")
    text = load_text(cfg)
    data = train_rows(cfg, tok, text)
    pre = preflight.compare(teacher_tok, tok, output_rows(teacher_model), output_rows(model), data.input_ids)
    ctx.console.print(f"preflight: {pre.mode}: {pre.reason}")
    if pre.mode == "different" and seq.mode != "only":
        raise CompressError(preflight.refusal(pre))
    metrics: dict = {"preflight": pre.to_dict(), "temperature": dcfg.temperature, "alpha": dcfg.alpha,
                     "divergence": dcfg.divergence, "sequence": {"mode": seq.mode}}
    if seq.mode != "off":
        completions = teacher_completions(teacher_model, teacher_tok, token_stream(teacher_tok, text.train), seq,
                                          cfg.seed, ctx.console)
        generated = [r for r in tok(completions, add_special_tokens=False, truncation=True,
                                    max_length=cfg.data.max_length)["input_ids"] if len(r) >= 2]
        metrics["sequence"].update(prompts=seq.prompts, rows=len(generated), tokens=sum(map(len, generated)),
                                   temperature=seq.temperature, max_new_tokens=seq.max_new_tokens,
                                   example=completions[0][:300] if completions else "")
        data = as_encoded(generated if seq.mode == "only" else data.input_ids + generated)
    accelerator = accelerator_for(dcfg.train, ctx)
    if seq.mode == "only":  # the teacher's text is the whole signal: next-token CE on it, the student's own tokenizer
        ctx.console.print(f"distill: sequence-level only, {len(data)} teacher completions, next-token CE")
        metrics["train"] = fit(model, data, tok.pad_token_id, dcfg.train, accelerator, cfg.seed, lm_cross_entropy,
                               "distill (sequence-level)", ctx.console, checkpoint_dir=ctx.checkpoint_dir)
    else:
        teacher_model.to(accelerator.device).eval().requires_grad_(False)  # frozen
        shared = pre.shared_vocab if pre.mode == "sliced" else None
        ctx.console.print(f"distill: token-level {dcfg.divergence} T={dcfg.temperature}, alpha={dcfg.alpha}, live "
                          f"teacher (full next-token distributions over {shared or output_rows(model)} tokens), "
                          f"{len(data)} rows" + (f" ({metrics['sequence']['rows']} of them teacher completions)"
                                                 if seq.mode == "mix" else ""))
        metrics["train"] = fit(TokenKD(model, dcfg, shared), data, tok.pad_token_id, dcfg.train, accelerator, cfg.seed,
                               kd_loss_fn(teacher_model, accelerator), "distill", ctx.console,
                               checkpoint_dir=ctx.checkpoint_dir)
    models.save(model.cpu(), tok, ctx.out / "model")
    return metrics


def baseline(cfg, ctx) -> dict:
    model, tok = lm.load_saved(ctx.stage_dir("student") / "model")
    data = train_rows(cfg, tok, load_text(cfg))
    ctx.console.print(f"baseline: the student on next-token CE only, {len(data)} rows (the distillation's text, "
                      "steps and seed)")
    tcfg = cfg.distill.train
    metrics = fit(model, data, tok.pad_token_id, tcfg, accelerator_for(tcfg, ctx), cfg.seed, lm_cross_entropy,
                  "next-token CE only", ctx.console, checkpoint_dir=ctx.checkpoint_dir)
    models.save(model.cpu(), tok, ctx.out / "student-ce")
    return {"enabled": True, "train": metrics}


# ----------------------------------------------------------------------------- export


def parity_inputs(tokenizer, held_out: str, max_length: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, ids, mask) from the held-out text: two rows at each of several lengths, and a batch whose second
    row is right-padded (the padded positions are masked out of the comparison)."""
    stream = token_stream(tokenizer, held_out)
    lengths = sorted({n for n in (8, 32, max_length) if n <= max_length and 2 * n <= len(stream)})
    if not lengths:
        raise CompressError(f"export: the held-out text has {len(stream)} tokens, too few for the parity checks")
    out = []
    for n in lengths:
        ids = np.asarray([stream[:n], stream[n : 2 * n]], dtype=np.int64)
        out.append((f"batch 2 x length {n}", ids, np.ones_like(ids)))
    n = lengths[-1]
    ids = np.asarray([stream[:n], stream[n : 2 * n]], dtype=np.int64)
    mask = np.ones_like(ids)
    mask[1, n // 2 :] = 0
    ids[1, n // 2 :] = tokenizer.pad_token_id
    out.append((f"batch 2 x length {n}, second row padded to it", ids, mask))
    return out


def compare_rows(variant: str, shape: str, ref: np.ndarray, got: np.ndarray, mask: np.ndarray, atol: float | None) -> dict:
    """One parity row over the unpadded positions: max |diff|, top-1 agreement, cosine of the centred logits."""
    from compress.parity import compare

    keep = mask.astype(bool)
    m = compare(ref[keep], got[keep])
    problems = [f"logits differ by {m['max_abs_diff']:.3g} (atol {atol:g})"] if atol is not None and not m["max_abs_diff"] <= atol else []
    return {"variant": variant, "shape": shape, **m, "tolerance": f"atol {atol:g}" if atol is not None else "reported only",
            "ok": not problems, "problems": problems}


def logits_parity(variant: str, dec: onnxlm.Decoder, inputs, reference, atol: float | None) -> list[dict]:
    """Full-sequence logits at every input (an empty cache), then the last 4 tokens fed through the KV cache
    after the others: the path generation takes."""
    rows = []
    for (name, ids, mask), ref in zip(inputs, reference):
        rows.append(compare_rows(variant, name, ref, dec.logits(ids, mask), mask, atol))
    name, ids, mask = next(x for x in inputs[::-1] if x[2].all())
    ref = reference[[x[0] for x in inputs].index(name)]
    k = min(4, ids.shape[1] - 1)
    _, past = dec.step(ids[:, :-k], mask[:, :-k])
    got, _ = dec.step(ids[:, -k:], mask, past)
    rows.append(compare_rows(variant, f"{name.split(',')[0]}, last {k} through the KV cache", ref[:, -k:], got,
                             mask[:, -k:], atol))
    return rows


def print_rows(ctx, title: str, rows: list[dict]) -> None:
    from compress.parity import print_checklist

    print_checklist(ctx.console, title, rows)


def export(cfg, ctx) -> dict:
    text = load_text(cfg)
    results = {}
    for name, folder in (("teacher", ctx.stage_dir("teacher") / "model"), ("student", ctx.stage_dir("distill") / "model")):
        out = ctx.out / name
        with ctx.console.status(f"exporting {name} to ONNX with its KV cache ({onnxlm.TASK})"):
            path = onnxlm.export(folder, out, cfg.export.opset)
        model, tok = lm.load_saved(folder)
        inputs = parity_inputs(tok, text.eval, cfg.data.max_length)
        reference = [onnxlm.torch_logits_fn(model)(ids, mask) for _, ids, mask in inputs]
        np.savez(out / "parity.npz", names=np.array([n for n, _, _ in inputs]),
                 **{f"{k}{i}": a for i, (_, ids, mask) in enumerate(inputs) for k, a in (("ids", ids), ("mask", mask))},
                 **{f"ref{i}": r for i, r in enumerate(reference)})
        dec = onnxlm.Decoder(path)
        rows = logits_parity(f"{name}-onnx", dec, inputs, reference, cfg.export.atol)
        print_rows(ctx, f"{name}-onnx (export, KV cache) vs PyTorch fp32, held-out text", rows)
        greedy = greedy_check(cfg, model, tok, dec, text.eval)
        ctx.console.print(f"greedy: {name}-onnx {sum(g['equal'] for g in greedy)}/{len(greedy)} prompts give PyTorch's "
                          f"generate tokens exactly ({cfg.export.greedy_tokens} new tokens each, through the KV cache)")
        bad = [f"export: {r['variant']} at {r['shape']}: {'; '.join(r['problems'])}; {path}" for r in rows if not r["ok"]]
        bad += [f"export: {name}-onnx greedy tokens differ from PyTorch's on prompt {i} ({g['prompt']!r}) from token "
                f"{g['first_difference']}; {path}" for i, g in enumerate(greedy) if not g["equal"]]
        if bad:
            raise CompressError(*bad)
        results[name] = {"parity": rows, "greedy": greedy, "inputs": [i.name for i in dec.sess.get_inputs()],
                         "onnx_bytes": path.stat().st_size}
        del model, dec
    return results


def greedy_check(cfg, model, tok, dec, held_out: str) -> list[dict]:
    out = []
    eos = tok.eos_token_id
    for ids in prompts(tok, held_out, cfg.export.greedy_prompts, PROMPT_TOKENS):
        want = onnxlm.torch_greedy(model, ids, cfg.export.greedy_tokens, eos, tok.pad_token_id)
        got = dec.greedy(ids, cfg.export.greedy_tokens, eos)
        first = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), None if len(want) == len(got) else min(len(want), len(got)))
        out.append({"prompt": tok.decode(ids), "torch": want, "onnx": got, "equal": want == got, "first_difference": first})
    return out


# ----------------------------------------------------------------------------- quantize


def quantize(cfg, ctx) -> dict:
    from compress.envinfo import int8_isa
    from compress.quant.onnx_int8 import Settings, quantize_dynamic, reduce_range_for

    qcfg = cfg.quantize
    if not qcfg.enabled:
        ctx.console.print("quantize: disabled (quantize.enabled: false)")
        write_json(ctx.out / MANIFEST, [])
        return {"enabled": False}
    isa = int8_isa() if qcfg.isa == "auto" else qcfg.isa
    source_dir = ctx.stage_dir("export") / "student"
    source = source_dir / "model.onnx"
    model, tok = lm.load_saved(ctx.stage_dir("distill") / "model")
    text = load_text(cfg)
    rows = train_rows(cfg, tok, text).input_ids[: min(qcfg.accuracy_samples, BUDGET_ROWS)]
    parent = onnxlm.perplexity(onnxlm.Decoder(source, threads=cfg.bench.threads).logits, rows, tok.pad_token_id)
    with np.load(source_dir / "parity.npz") as z:
        names = [str(n) for n in z["names"]]
        inputs = [(n, z[f"ids{i}"], z[f"mask{i}"]) for i, n in enumerate(names)]
        reference = [z[f"ref{i}"] for i in range(len(names))]
    records, manifest = [], []
    for v in qcfg.variants:
        folder = ctx.out / v.name
        folder.mkdir(parents=True)
        settings = Settings("dynamic", per_channel=bool(v.per_channel), reduce_range=reduce_range_for(isa))
        with ctx.console.status(f"quantizing {v.name} (ONNX Runtime dynamic int8)"):
            quantize_dynamic(source, folder / "model.onnx", settings)
        for f in source_dir.iterdir():  # tokenizer and config beside the graph
            if f.is_file() and f.suffix != ".onnx" and f.name != "parity.npz":
                shutil.copy2(f, folder / f.name)
        dec = onnxlm.Decoder(folder / "model.onnx", threads=cfg.bench.threads)
        ppl = onnxlm.perplexity(dec.logits, rows, tok.pad_token_id)
        increase = (ppl["perplexity"] / parent["perplexity"] - 1) * 100
        parity_rows = logits_parity(v.name, dec, inputs, reference, None)
        print_rows(ctx, f"{v.name} vs PyTorch fp32 (reported; the gate is the perplexity budget)", parity_rows)
        greedy = [g["equal"] for g in greedy_check(cfg, model, tok, dec, text.eval)]
        ctx.console.print(f"quantize: {v.name} perplexity {ppl['perplexity']:.3f} vs student-onnx {parent['perplexity']:.3f} "
                          f"on {len(rows)} training rows ({increase:+.2f}%, budget {v.budget:g}%); greedy tokens equal to "
                          f"PyTorch fp32 on {sum(greedy)}/{len(greedy)} prompts; {(folder / 'model.onnx').stat().st_size / 1e6:.1f} MB")
        if increase > v.budget:
            raise CompressError(f"quantize.variants: {v.name} raises the perplexity by {increase:.2f}% against "
                                f"student-onnx on {len(rows)} training rows, over its budget of {v.budget:g}% (for causal-lm "
                                "the budget is a relative perplexity increase in percent); raise the budget or try "
                                "per_channel: true")
        records.append({"name": v.name, "method": v.method, "status": "produced", "per_channel": settings.per_channel,
                        "reduce_range": settings.reduce_range, "perplexity": ppl["perplexity"],
                        "parent_perplexity": parent["perplexity"], "increase_percent": round(increase, 3),
                        "budget_percent": v.budget, "judged_on": f"{len(rows)} training rows", "parity": parity_rows,
                        "greedy_equal_to_torch": f"{sum(greedy)}/{len(greedy)}"})
        manifest.append({"name": v.name, "path": f"{v.name}/model.onnx", "parent": "student-onnx", "method": v.method,
                         "precision": "int8", "format": "onnx"})
    write_json(ctx.out / MANIFEST, manifest)
    return {"enabled": True, "isa": isa, "variants": records}


# ----------------------------------------------------------------------------- bench


def variants(ctx) -> list[dict]:
    out = [{"name": "teacher", "role": "teacher", "format": "pytorch", "precision": "fp32", "path": ctx.stage_dir("teacher") / "model"},
           {"name": "teacher-onnx", "role": "teacher", "format": "onnx", "precision": "fp32",
            "path": ctx.stage_dir("export") / "teacher" / "model.onnx", "parent": "teacher"},
           {"name": "student", "role": "student", "format": "pytorch", "precision": "fp32", "path": ctx.stage_dir("distill") / "model"},
           {"name": "student-onnx", "role": "student", "format": "onnx", "precision": "fp32",
            "path": ctx.stage_dir("export") / "student" / "model.onnx", "parent": "student"}]
    listing = ctx.stage_dir("quantize") / MANIFEST
    for e in read_json(listing) if listing.is_file() else []:
        out.append({**e, "role": "student", "path": ctx.stage_dir("quantize") / e["path"]})
    ce = ctx.stage_dir("baseline") / "student-ce"
    if ce.is_dir():
        out.append({"name": "student-init", "role": "baseline", "format": "pytorch", "precision": "fp32",
                    "path": ctx.stage_dir("student") / "model"})
        out.append({"name": "student-ce", "role": "baseline", "format": "pytorch", "precision": "fp32", "path": ce})
    return out


def _folder(v: dict) -> Path:
    return v["path"] if v["format"] == "pytorch" else v["path"].parent


def bench(cfg, ctx) -> dict:
    from transformers import AutoTokenizer

    from compress.bench import targets

    bcfg = cfg.bench
    text = load_text(cfg)
    skipped = {t: why for t in bcfg.targets if (why := targets.unavailable(t))}
    for t, why in skipped.items():
        ctx.console.print(f"bench: the {t} target is skipped: {why}")
    first_tok = AutoTokenizer.from_pretrained(ctx.stage_dir("teacher") / "model")
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
    write_json(ctx.out / "results.json", {"task": "causal-lm", "eval": {"text": text.source, "rows": rows_out[0]["eval_rows"],
                                                                      "tokens": rows_out[0]["tokens"]},
                                          "prompts": prompt_texts, "targets": bcfg.targets, "not_measured": not_measured,
                                          "query": {"prompt_tokens": bcfg.sequence_length, "new_tokens": bcfg.new_tokens,
                                                    "batch_size": 1, "warmup": bcfg.warmup, "runs": bcfg.queries},
                                          "variants": rows_out, "environment": read_json(ctx.run_dir / "env.json")})
    return {"variants": [r["name"] for r in rows_out], "not_measured": not_measured}


def measure(v: dict, prompt: list[int], bcfg, threads: int) -> dict:
    """Time to first token, tokens per second and peak RSS of ``v`` in a fresh process (compress.llm.worker)."""
    spec = {"format": v["format"], "path": str(v["path"]), "prompt": prompt, "new_tokens": bcfg.new_tokens,
            "warmup": max(1, min(bcfg.warmup, 3)), "runs": bcfg.queries, "threads": threads}
    with tempfile.TemporaryDirectory() as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps(spec))
        proc = subprocess.run([sys.executable, "-m", "compress.llm.worker", str(spec_path), str(out_path)],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not out_path.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise CompressError(f"bench: the worker measuring {v['path']} failed (exit {proc.returncode}): {tail[0]}")
        return json.loads(out_path.read_text())


# ----------------------------------------------------------------------------- report


def build_report(cfg, ctx, stage_names) -> dict:
    from datetime import datetime, timezone

    bench_results = read_json(ctx.stage_dir("bench") / "results.json")
    rows = bench_results["variants"]
    ref = next(r for r in rows if r["name"] == "teacher")
    home = "cpu"
    out = []
    for r in rows:
        m = r["measurements"].get(home) or next(iter(r["measurements"].values()), None)
        out.append({
            "name": r["name"], "role": r["role"], "format": r["format"], "precision": r["precision"],
            "method": r.get("method"), "parameters": r["parameters"], "size_bytes": r["size_bytes"],
            "perplexity": r["perplexity"], "nll": r["nll"], "eval_tokens": r["tokens"],
            "perplexity_retention": round(ref["perplexity"] / r["perplexity"], 5),
            "perplexity_difference": round(r["perplexity"] - ref["perplexity"], 4),
            "time_to_first_token_ms": m["time_to_first_token_ms"]["p50"] if m else None,
            "tokens_per_second": m["tokens_per_second"] if m else None,
            "peak_memory_bytes": m["peak_rss_bytes"] if m else None,
            "load_seconds": m["load_seconds"] if m else None,
            "measurements": r["measurements"], "generations": r["generations"], "path": r["path"],
        })
    stages = {name: read_json(ctx.stage_dir(name) / "stage.json") for name in stage_names}
    by = {v["name"]: v for v in out}
    gain = {}
    for base in ("student-ce", "student-init"):
        if base in by:
            s, b = by["student"]["perplexity"], by[base]["perplexity"]
            gain[f"student vs {base}"] = {"student_perplexity": s, "baseline_perplexity": b,
                                          "difference": round(s - b, 4), "relative": round(s / b - 1, 5),
                                          "better": s < b}
    export_metrics = stages["export"]["metrics"]
    return {
        "name": cfg.name, "task": "causal-lm",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "config_hash": cfg.hash(),
        "reference": "teacher",
        "eval": bench_results["eval"], "query": bench_results["query"], "targets": bench_results["targets"],
        "not_measured": bench_results["not_measured"], "prompts": bench_results["prompts"],
        "distill": {"temperature": cfg.distill.temperature, "alpha": cfg.distill.alpha,
                    "divergence": cfg.distill.divergence, "preflight": stages["distill"]["metrics"]["preflight"],
                    "sequence": stages["distill"]["metrics"]["sequence"]},
        "teacher": {k: stages["teacher"]["metrics"].get(k) for k in ("source", "model_type", "parameters", "vocabulary",
                                                                    "text", "train_rows", "train_tokens")},
        "student": stages["student"]["metrics"],
        "export_parity": {name: e["parity"] for name, e in export_metrics.items()},
        "greedy_parity": {name: e["greedy"] for name, e in export_metrics.items()},
        "quantize": stages["quantize"]["metrics"],
        "distillation_gain": gain,
        "stage_seconds": {name: s["seconds"] for name, s in stages.items()},
        "environment": read_json(ctx.run_dir / "env.json"),
        "variants": out,
    }


def markdown(report: dict) -> str:
    q, env = report["query"], report["environment"]
    lines = [f"# compress report: {report['name']} (causal language model)", "",
             f"Perplexity on {report['eval']['tokens']:,} held-out tokens ({report['eval']['text']}); retention = teacher "
             f"perplexity / variant perplexity. Generation at batch 1, greedy through the KV cache: a {q['prompt_tokens']}-token "
             f"prompt, then {q['new_tokens']} new tokens, {q['runs']} timed runs after warm-up, each variant in a fresh "
             f"process on {env['cpu']} (cpu: all cores; mobile: one thread, ONNX only). Distillation: "
             f"{report['distill']['divergence']}, T={report['distill']['temperature']}, alpha={report['distill']['alpha']}; "
             f"tokenizer preflight: {report['distill']['preflight']['mode']}.", "",
             "| variant | format | precision | parameters | size (MB) | perplexity | retention | difference | "
             "first token (ms) | tokens/s | peak memory (MiB) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for v in report["variants"]:
        def num(x, f):
            return f.format(x) if x is not None else "-"
        lines.append(f"| {v['name']} | {v['format']} | {v['precision']} | {v['parameters'] / 1e6:.1f}M | "
                     f"{v['size_bytes'] / 1e6:.1f} | {v['perplexity']:.3f} | {v['perplexity_retention']:.1%} | "
                     f"{v['perplexity_difference']:+.3f} | {num(v['time_to_first_token_ms'], '{:.1f}')} | "
                     f"{num(v['tokens_per_second'], '{:.1f}')} | {num(v['peak_memory_bytes'] and v['peak_memory_bytes'] / 2**20, '{:.0f}')} |")
    for name, g in report["distillation_gain"].items():
        verdict = "better" if g["better"] else "NOT better"
        lines += ["", f"Distillation gain, {name}: perplexity {g['student_perplexity']:.3f} against "
                  f"{g['baseline_perplexity']:.3f} ({g['difference']:+.3f}, {g['relative']:+.1%}): the distilled student is "
                  f"{verdict}."]
    mobile = [v for v in report["variants"] if "mobile" in v["measurements"]]
    if mobile:
        lines += ["", "## mobile target (one thread, ONNX Runtime)", "", "| variant | first token (ms) | tokens/s | peak memory (MiB) |",
                  "|---|---:|---:|---:|"]
        for v in mobile:
            m = v["measurements"]["mobile"]
            lines.append(f"| {v['name']} | {m['time_to_first_token_ms']['p50']:.1f} | {m['tokens_per_second']:.1f} | "
                         f"{m['peak_rss_bytes'] / 2**20:.0f} |")
    for t, why in report["not_measured"].items():
        lines += ["", f"Not measured on {t}: {why}."]
    lines += ["", "## Greedy generations from the same held-out prompts", ""]
    for i, p in enumerate(report["prompts"]):
        lines += [f"### Prompt {i + 1}", "", "```", p, "```", "", "| variant | continuation |", "|---|---|"]
        for v in report["variants"]:
            cont = v["generations"][i].replace("|", "\\|").replace("\n", "⏎")
            lines.append(f"| {v['name']} | {cont} |")
        lines.append("")
    lines += ["## Export parity (ONNX Runtime with the KV cache against PyTorch fp32, held-out text)", "",
              "| variant | shape | max abs diff | top-1 agreement | cosine | tolerance | ok |", "|---|---|---:|---:|---:|---|---|"]
    checks = [r for rows in report["export_parity"].values() for r in rows]
    checks += [r for v in report["quantize"].get("variants", []) for r in v["parity"]]
    for r in checks:
        lines.append(f"| {r['variant']} | {r['shape']} | {r['max_abs_diff']:.2e} | {r['top1_agreement']:.1%} | "
                     f"{r['cosine']:.6f} | {r['tolerance']} | {'ok' if r['ok'] else 'FAIL'} |")
    for name, greedy in report["greedy_parity"].items():
        lines += ["", f"Greedy tokens, {name}-onnx against PyTorch generate: {sum(g['equal'] for g in greedy)}/{len(greedy)} "
                  "prompts identical."]
    for v in report["quantize"].get("variants", []):
        lines += ["", f"{v['name']}: dynamic int8 ({'per-channel' if v['per_channel'] else 'per-tensor'}"
                  f"{', 7-bit weights' if v['reduce_range'] else ''}), perplexity {v['increase_percent']:+.2f}% against "
                  f"student-onnx on {v['judged_on']} (budget {v['budget_percent']:g}%); greedy tokens equal to PyTorch fp32 on "
                  f"{v['greedy_equal_to_torch']} prompts."]
    lines += ["", "Stage wall times (s): " + ", ".join(f"{k} {v}" for k, v in report["stage_seconds"].items()), ""]
    return "\n".join(lines)


def report(cfg, ctx, stage_names) -> dict:
    rep = build_report(cfg, ctx, stage_names)
    write_json(ctx.run_dir / "report.json", rep)
    write_text(ctx.run_dir / "report.md", markdown(rep))
    return {"report": str(ctx.run_dir / "report.json")}
