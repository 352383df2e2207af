"""Score every variant of a causal LM as LLM papers do (``scores``): WikiText-2 perplexity and bits per byte,
LAMBADA, HellaSwag, PIQA and ARC-Easy zero-shot (compress/tasks/causal_lm/zeroshot.py), on the same seeded items
for every variant, each item's outcome kept so that the report can pair them.     -> score/results.json

A variant's scores are written to the stage's checkpoint folder as soon as they are computed: a killed run
resumes with the variants it had finished. A variant whose files are byte-identical to one scored before (under the
same runs folder, on the same items and settings) is read from the score cache (score_cache.py)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from compress.errors import CompressError
from compress.io import write_json
from compress.layout import RESULTS_FILE
from compress.tasks.causal_lm import lm, onnxlm, score_cache, zeroshot
from compress.tasks.causal_lm.variants import variants

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
    for v in variants(ctx):
        partial = ctx.checkpoint_dir / f"{v['name']}.json" if ctx.checkpoint_dir else None
        if partial is not None and partial.is_file():
            done[v["name"]] = json.loads(partial.read_text())
            ctx.console.print(f"score: {v['name']} scored before this run was stopped (kept)")
            continue
        folder_v = v["path"] if v["format"] == "pytorch" else v["path"].parent
        longest = min(scfg.max_length, positions(folder_v))
        runtime = (f"pytorch:{_torch_device(cfg)}" if v["format"] == "pytorch" else f"onnxruntime:{cfg.bench.threads}")
        key = store.key(score_cache.model_files(folder_v), score_cache.settings_digest(items, text, {
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


def read_wikitext(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CompressError(f"scores.wikitext: {path} cannot be read ({exc})") from None


def windows(tokenizer, text: str, max_tokens: int | None, window: int) -> tuple[list[list[int]], int]:
    """(windows of token ids, the UTF-8 bytes of the text they cover): the text's first ``max_tokens`` tokens
    (tokenized line by line), each window the end-of-text token and then ``window - 1`` tokens of the text, so that every
    token of the text is predicted once."""
    ids: list[int] = []
    nbytes = 0
    for line in text.splitlines(keepends=True):
        part = tokenizer(line, add_special_tokens=False)["input_ids"]
        if max_tokens is not None and len(ids) + len(part) > max_tokens:  # the line's first tokens, and their bytes
            part = part[: max_tokens - len(ids)]
            ids += part
            nbytes += len(tokenizer.decode(part).encode("utf-8"))
            break
        ids += part
        nbytes += len(line.encode("utf-8"))
    eot = tokenizer.eos_token_id
    step = window - 1
    rows = [[eot] + ids[i: i + step] for i in range(0, len(ids), step)]
    return rows, nbytes


def wikitext_scores(runner: dict, tokenizer, text: str, max_tokens: int | None, window: int) -> dict:
    """Perplexity per token, bits per byte (the total negative log-likelihood in bits over the text's UTF-8
    bytes: comparable across tokenizers) and each window's NLL (for paired intervals)."""
    rows, nbytes = windows(tokenizer, text, max_tokens, window)
    logits_fn = runner["decoder"].logits if "decoder" in runner else zeroshot.torch_logits_fn(runner["model"])
    per_window = []
    for row in rows:  # one window a call: rows are long, and a batch of them would hold V x window floats each
        ids = np.asarray([row], dtype=np.int64)
        nll, count = onnxlm.nll_from_logits(logits_fn(ids, np.ones_like(ids)), ids, np.ones_like(ids))
        per_window.append([nll, count])
    total, tokens = sum(n for n, _ in per_window), sum(c for _, c in per_window)
    return {"perplexity": math.exp(total / tokens), "bits_per_byte": total / math.log(2) / nbytes,
            "nll": total / tokens, "tokens": tokens, "bytes": nbytes, "windows": per_window}
