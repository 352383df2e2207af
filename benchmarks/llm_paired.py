"""Two or more causal LMs on the same seeded zero-shot items, with paired differences: what a pipeline's 120
items a set cannot resolve (the distilled student against the CE-only one, for instance).

    python benchmarks/llm_paired.py NAME=FOLDER NAME=FOLDER ... [--reference NAME]
                                    [--sets hellaswag:500 piqa:500 arc_easy:500 lambada:500]
                                    [--wikitext-tokens 16384]
                                    [--data ../shared/data/llm/eval] [--seed 0]
                                    [--out benchmarks/results/llm_paired.json]

e.g. after `compress run pipelines/smollm2.yaml`:

    python benchmarks/llm_paired.py student=runs/smollm2/distill/model student-ce=runs/smollm2/baseline/student-ce \\
        --reference student-ce --out benchmarks/results/smollm2-kd-vs-ce.json

Each FOLDER is a model a run saved (safetensors, compress.tasks.causal_lm.lm.load_saved), loaded one at a time in
fp32. Every model answers the same items (each set a seeded sample of --seed, as compress/tasks/causal_lm/zeroshot.py
draws them; HellaSwag scored by acc_norm, the others by acc, as the pipeline's report does) and the same
--wikitext-tokens of WikiText-2's test text in windows of --window. Each model other than --reference (default:
the last) is then compared with it as the pipeline's report compares a variant with the teacher
(compress/tasks/causal_lm/retention.py): per set and for the mean of the sets, the paired difference in points
with its 95% interval; for WikiText-2, the perplexity ratio paired over the windows. A difference is "resolved"
when its interval excludes 0 (a ratio: excludes 1). Writes every figure, the per-item outcomes' counts and the
environment (the CPU) to --out (JSON).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.zeroshot import parse_sets, score_in_chunks  # noqa: E402

METRIC = {"hellaswag": "acc_norm"}


def parse_models(values: list[str]) -> dict[str, Path]:
    out = {}
    for v in values:
        name, sep, folder = v.partition("=")
        if not sep or not name or not folder:
            raise SystemExit(f"error: {v!r}: give each model as NAME=FOLDER (a folder a run saved)")
        if name in out:
            raise SystemExit(f"error: {name!r} is named twice")
        if not (Path(folder) / "model.safetensors").is_file():  # before the first model's minutes of scoring
            raise SystemExit(f"error: {name}: {folder} holds no model.safetensors (give a model folder a run saved)")
        out[name] = Path(folder)
    return out


def resolved(low: float, high: float, null: float = 0.0) -> str:
    return "resolved" if low > null or high < null else "not resolved"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="NAME=FOLDER, two or more")
    ap.add_argument("--reference", default=None, help="the model the others are compared with (default: the last)")
    ap.add_argument("--sets", nargs="+", default=["hellaswag:500", "piqa:500", "arc_easy:500", "lambada:500"])
    ap.add_argument("--wikitext-tokens", type=int, default=16384, help="0: no WikiText-2")
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "llm" / "eval"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=100, help="items scored between two progress lines")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "llm_paired.json"))
    args = ap.parse_args(argv)
    models = parse_models(args.models)
    if len(models) < 2:
        raise SystemExit("error: give two or more models (NAME=FOLDER)")
    reference = args.reference or list(models)[-1]
    if reference not in models:
        raise SystemExit(f"error: --reference {reference!r} is not one of {', '.join(models)}")

    import torch

    from compress.config.scores import ScoresConfig
    from compress.envinfo import environment
    from compress.errors import CompressError
    from compress.io import write_json
    from compress.tasks.causal_lm import lm, retention, zeroshot
    from compress.tasks.causal_lm.wikitext import read_wikitext, wikitext_scores

    data = Path(args.data)
    try:
        sets = parse_sets(args.sets)
        items = {name: zeroshot.load(name, data, n, args.seed) for name, n in sets.items()}
        wikitext = data / ScoresConfig.model_fields["wikitext"].default  # the file the pipeline's scores read
        text = read_wikitext(wikitext) if args.wikitext_tokens else None
    except CompressError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    meta = {name: {"metric": METRIC.get(name, "acc"), "chance": zeroshot.CHANCE[name], "items": len(its)}
            for name, its in items.items()}
    scored: dict[str, dict] = {}
    for name, folder in models.items():
        t0 = time.perf_counter()
        model, tokenizer = lm.load_saved(folder)
        limit = int(getattr(model.config, "max_position_embeddings", 2048))
        print(f"{name} ({folder}): {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, "
              f"{torch.get_num_threads()} threads", flush=True)
        result: dict = {"folder": str(folder), "sets": {}}
        with torch.inference_mode():
            for set_name, its in items.items():
                result["sets"][set_name] = score_in_chunks(zeroshot, set_name, its, tokenizer, model, limit, args.chunk)
            if text is not None:
                result["wikitext"] = wikitext_scores({"model": model}, tokenizer, text, args.wikitext_tokens,
                                                     args.window)
        result["seconds"] = round(time.perf_counter() - t0, 1)
        line = ", ".join(f"{n} {result['sets'][n][meta[n]['metric']]:.4f}" for n in items)
        if text is not None:
            line += f", WikiText-2 ppl {result['wikitext']['perplexity']:.2f}"
        print(f"{name}: {line} ({result['seconds']:.0f}s)", flush=True)
        scored[name] = result
        del model
    comparisons = {}
    for name, result in scored.items():
        if name == reference:
            continue
        c = retention.compare(result, scored[reference], meta)
        comparisons[name] = c
        print(f"\n{name} against {reference} (paired, 95% intervals):")
        for set_name, s in {**c["sets"], "mean": c.get("mean")}.items():
            if s is None:
                continue
            d = s["paired"]
            print(f"  {set_name:<10} {s['value']:.4f} vs {s['reference']:.4f}: {d['difference'] * 100:+.1f} points "
                  f"[{d['low'] * 100:+.1f}, {d['high'] * 100:+.1f}], {resolved(d['low'], d['high'])}")
        if "ratio" in c.get("wikitext", {}):
            w, r = c["wikitext"], c["wikitext"]["ratio"]
            print(f"  WikiText-2 perplexity {w['perplexity']:.2f} vs {w['reference_perplexity']:.2f}: ratio "
                  f"{r['value']:.3f} [{r['low']:.3f}, {r['high']:.3f}] over {r['windows']} windows, "
                  f"{resolved(r['low'], r['high'], 1.0)}")
    summary = {name: _summary(r, meta) for name, r in scored.items()}
    write_json(Path(args.out), {"reference": reference, "seed": args.seed, "sets": meta,
                                "wikitext_tokens": args.wikitext_tokens, "window": args.window, "models": summary,
                                "comparisons": comparisons, "argv": sys.argv[1:], "environment": environment()})
    print(f"wrote {args.out}")
    return 0


def _summary(result: dict, meta: dict) -> dict:
    """A model's figures for the JSON: per set its scores and the number of items it got right (the per-item
    outcomes are left out), WikiText-2 without its per-window figures."""
    sets = {}
    for name, s in result["sets"].items():
        key = "correct_norm" if meta[name]["metric"] == "acc_norm" else "correct"
        sets[name] = {k: v for k, v in s.items() if not k.startswith("correct")} | {"correct": int(sum(s[key]))}
    wikitext = {k: v for k, v in result.get("wikitext", {}).items() if k != "windows"} or None
    return {"seconds": result["seconds"], "folder": result["folder"], "sets": sets, "wikitext": wikitext}


if __name__ == "__main__":
    sys.exit(main())
