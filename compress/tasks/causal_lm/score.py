"""Score every variant of a causal LM as LLM papers do (``scores``): WikiText-2 perplexity and bits per byte,
LAMBADA, HellaSwag, PIQA and ARC-Easy zero-shot (compress/tasks/causal_lm/zeroshot.py), on the same seeded items
for every variant, each item's outcome kept so that the report can pair them.     -> score/results.json

A variant's scores are written to the stage's checkpoint folder as soon as they are computed: a killed run
resumes with the variants it had finished. A variant whose files are byte-identical to one scored before (under the
same runs folder, on the same items and settings) is read from the score cache (score_cache.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from compress.io import write_json
from compress.layout import RESULTS_FILE
from compress.tasks.causal_lm import lm, onnxlm, score_cache, zeroshot
from compress.tasks.causal_lm.variants import variants
from compress.tasks.causal_lm.wikitext import read_wikitext, wikitext_scores

NAME = "score"
DEPENDS = ("teacher", "student", "distill", "baseline", "export", "quantize")
CONFIG = ("scores", "seed")
METRIC = {"hellaswag": "acc_norm", "piqa": "acc", "arc_easy": "acc", "lambada": "acc"}  # what the report leads with


def run(cfg, ctx) -> dict:
    from transformers import AutoTokenizer

    scfg = cfg.scores
    if not scfg.enabled:
        ctx.console.print("score: disabled (scores.enabled: false)")
        write_json(ctx.out / RESULTS_FILE, {"enabled": False})
        return {"enabled": False}
    folder = Path(scfg.folder).expanduser()
    items = {name: zeroshot.load(name, folder, n, seed=cfg.seed) for name, n in scfg.sets.items()}
    text = read_wikitext(folder / scfg.wikitext) if scfg.wikitext else None
    done = {}
    store = score_cache.ScoreCache(score_cache.root(ctx.runs_dir or ctx.run_dir.parent))
    content = score_cache.items_digest(items, text)
    for v in variants(ctx):
        partial = ctx.checkpoint_dir / f"{v['name']}.json" if ctx.checkpoint_dir else None
        if partial is not None and partial.is_file():
            done[v["name"]] = json.loads(partial.read_text())
            ctx.console.print(f"score: {v['name']} scored before this run was stopped (kept)")
            continue
        folder_v = v["path"] if v["format"] == "pytorch" else v["path"].parent
        longest = min(scfg.max_length, positions(folder_v))
        runtime = (f"pytorch:{_torch_device(cfg)}" if v["format"] == "pytorch" else f"onnxruntime:{cfg.bench.threads}")
        key = store.key(score_cache.model_files(folder_v), score_cache.settings_digest(content, {
            "runtime": runtime, "max_length": longest, "batch_size": scfg.batch_size,
            "wikitext_tokens": scfg.wikitext_tokens, "window": min(scfg.window, longest)}))
        cached = store.get(key)
        if cached is not None:
            done[v["name"]] = {**cached, "cache": key[:12]}
            ctx.console.print(f"score: {v['name']:<13} files identical to a variant scored before: its scores read "
                              f"from the score cache ({key[:12]})")
            continue
        tok = AutoTokenizer.from_pretrained(folder_v)
        runner = _runner(v, cfg)
        result, t0 = {"sets": {}}, time.perf_counter()
        for name, its in items.items():
            with ctx.console.status(f"score: {v['name']} on {len(its)} {name} items"):
                r = zeroshot.score(name, its, tok, max_length=longest, batch_size=scfg.batch_size, **runner)
            result["sets"][name] = r
        if text is not None:
            with ctx.console.status(f"score: {v['name']} on WikiText-2"):
                result["wikitext"] = wikitext_scores(runner, tok, text, scfg.wikitext_tokens, min(scfg.window, longest))
        result["seconds"] = round(time.perf_counter() - t0, 1)
        ctx.console.print(f"score: {v['name']:<13} " + ", ".join(
            f"{n} {r[METRIC[n]]:.3f}" for n, r in result["sets"].items())
            + (f", WikiText-2 perplexity {result['wikitext']['perplexity']:.2f} ({result['wikitext']['bits_per_byte']:.3f} "
               "bits/byte)" if "wikitext" in result else "") + f" ({result['seconds']:.0f} s)")
        store.put(key, result)
        if partial is not None:
            partial.write_text(json.dumps(result))
        done[v["name"]] = result
    sets = {name: {"items": len(its), "requested": scfg.sets[name], "metric": METRIC[name],
                   "chance": zeroshot.CHANCE[name], "file": str(folder / zeroshot.FILES[name])} for name, its in items.items()}
    out = {"enabled": True, "seed": cfg.seed, "sets": sets, "variants": done,
           "wikitext": ({"file": str(folder / scfg.wikitext), "window": scfg.window, "max_tokens": scfg.wikitext_tokens}
                        if text is not None else None)}
    write_json(ctx.out / RESULTS_FILE, out)
    return {"enabled": True, "variants": list(done), "items": {n: s["items"] for n, s in sets.items()},
            "seconds": {n: r["seconds"] for n, r in done.items()}}


def _runner(v: dict, cfg) -> dict:
    """zeroshot.score's keyword for this variant: the PyTorch model, or the ONNX decoder with its KV cache."""
    if v["format"] == "pytorch":
        model, _ = lm.load_saved(v["path"])
        return {"model": model.to(_torch_device(cfg))}
    return {"decoder": onnxlm.Decoder(v["path"], threads=cfg.bench.threads)}


def _torch_device(cfg) -> str:
    import torch

    return "cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu"


def positions(folder: Path) -> int:
    """The longest sequence the model in ``folder`` takes (its position table), from its config.json."""
    config = json.loads((folder / "config.json").read_text())
    return int(config.get("max_position_embeddings") or config.get("n_positions") or 2048)
