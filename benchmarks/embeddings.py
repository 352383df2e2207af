"""How the int8 student's embedding tables are stored, side by side: size, accuracy and latency.

    python benchmarks/embeddings.py [--run benchmarks/runs/distilbert] [--rounds 9] [--min-seconds 3]
                                    [--out benchmarks/results/embeddings.json]

From a finished run's exported student (<run>/export/student/model.onnx) it builds, with the quantize stage's
own functions and the run's settings (dynamic int8, per-channel, 7-bit weights where the CPU has no VNNI):

  int8-fused   int8 tables in ONNX Runtime's fused embedding layer (QEmbedLayerNormalization): ``embeddings: int8``
  int4-word    the word embeddings in 4-bit blocks of 32 (GatherBlockQuantized), the position and token-type
               tables fp32 Gathers, the embedding layer unfused: ``embeddings: int4`` (what compress ships)
  int4-all     every table in 4-bit blocks: ``embeddings: int4`` before this script

Accuracy on the run's evaluation split (SST-2 test, 872 sentences). Latency: batch 1 x 128 tokens on all cores,
each model in a fresh process (compress.bench.latency.measure), interleaved over --rounds rounds with the order
rotated each round; a layout's p50 is the median of its per-round p50s. Also ONNX Runtime's profile of each
(the embedding lookups' share). Writes benchmarks/results/embeddings.json (or --out).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from compress.layout import ONNX_FILE, RunLayout

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: import the other benchmarks as the package benchmarks
LAYOUTS = ("int8-fused", "int4-word", "int4-all")
LOOKUPS = ("QEmbedLayerNormalization", "EmbedLayerNormalization", "GatherBlockQuantized", "Gather")


def build(source: Path, folder: Path, isa: str, first_token: bool) -> dict[str, Path]:
    """The three layouts of ``source`` (an exported, unfused student) under ``folder``."""
    from compress.onnxgraph import optimize
    from compress.quant import onnx_int8

    fused, unfused = folder / "fused.onnx", folder / "embeddings-unfused.onnx"
    optimize(source, fused, first_token=first_token)
    optimize(source, unfused, embed_layer_norm=False, first_token=first_token)
    s = onnx_int8.Settings("dynamic", True, onnx_int8.reduce_range_for(isa))
    int4 = s.but(embeddings="int4", embedding_block=32)
    paths = {name: folder / f"{name}.onnx" for name in LAYOUTS}
    onnx_int8.quantize_dynamic(fused, paths["int8-fused"], s)
    onnx_int8.quantize_dynamic(unfused, paths["int4-word"], int4)
    onnx_int8.quantize_dynamic(unfused, paths["int4-all"], int4)
    onnx_int8.int4_embeddings(paths["int4-all"], 32, tables="all")  # the position and token-type tables too
    return paths


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="benchmarks/runs/distilbert", help="a finished run folder")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds of the latency measurements")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--queries", type=int, default=100, help="at least this many timed queries per measurement...")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="...and on until this many seconds have passed")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: all cores)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "embeddings.json"))
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer

    from benchmarks.flagship import accuracy, evaluation, resolve
    from compress.bench.accuracy import paired_difference
    from compress.bench.latency import latency_input, measure
    from compress.bench.peak import profile_ops
    from compress.envinfo import environment
    from compress.io import write_json

    threads = args.threads or os.cpu_count() or 1
    run = resolve(args.run, ROOT)
    source = RunLayout(run).export_dir("student") / ONNX_FILE
    tokenizer_dir = RunLayout(run).model("trim") if RunLayout(run).model("trim").is_dir() else RunLayout(run).export_dir("student")
    if not source.is_file():
        print(f"error: {source}: not found (run `python benchmarks/pipeline.py pipelines/distilbert.yaml` first)",
              file=sys.stderr)
        return 2
    env = environment()
    cfg, split = evaluation(run, None)
    first_token = cfg.optimize.first_token_only
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    query = latency_input(tokenizer, split.texts, 128, 1)
    with tempfile.TemporaryDirectory(prefix="embeddings-") as tmp:
        paths = build(source, Path(tmp), env["int8_isa"], first_token)
        rows, correct = {}, {}
        for name in LAYOUTS:
            correct[name], _ = accuracy(name, paths[name], tokenizer_dir, split, threads)
            profile = profile_ops(paths[name], query, threads, runs=200)
            total = sum(profile.values())
            lookups = sum(ms for op, ms in profile.items() if op in LOOKUPS)
            rows[name] = {"size_bytes": paths[name].stat().st_size, "accuracy": round(float(correct[name].mean()), 5),
                          "profile_ms": profile, "profile_lookup_ms": round(lookups, 3),
                          "profile_total_ms": round(total, 3),
                          "p50_per_round_ms": []}
            print(f"{name:<11} {rows[name]['size_bytes'] / 1e6:5.2f} MB  accuracy {rows[name]['accuracy']:.4f}  "
                  f"lookups {lookups:.3f} of {total:.3f} ms (profile)", flush=True)
        for r in range(args.rounds):
            order = LAYOUTS[r % 3:] + LAYOUTS[: r % 3]
            for name in order:
                m = measure("onnx", paths[name], query, args.warmup, args.queries, threads, min_seconds=args.min_seconds)
                rows[name]["p50_per_round_ms"].append(m["latency"]["p50_ms"])
            print(f"round {r + 1}: " + "  ".join(f"{n} {rows[n]['p50_per_round_ms'][-1]:.3f} ms" for n in LAYOUTS),
                  flush=True)
    base = rows["int4-all"]
    for name in LAYOUTS:
        row = rows[name]
        row["p50_ms"] = round(statistics.median(row["p50_per_round_ms"]), 3)
        ratios = [b / x for b, x in zip(base["p50_per_round_ms"], row["p50_per_round_ms"])]
        row["speedup_vs_int4_all"] = {"median": round(statistics.median(ratios), 3), "min": round(min(ratios), 3),
                                      "max": round(max(ratios), 3)}
        row["accuracy_vs_int4_all"] = paired_difference(correct[name], correct["int4-all"])
    out = {"layouts": rows,
           "settings": {"run": str(run), "batch_size": 1, "sequence_length": 128, "threads": threads,
                        "rounds": args.rounds, "warmup": args.warmup, "queries": args.queries,
                        "min_seconds": args.min_seconds, "first_token_only": first_token,
                        "eval": {"split": split.name, "sentences": len(split), "source": cfg.data.source},
                        "latency": "p50 per round, median over rounds; each measurement in a fresh process"},
           "load_average": [round(x, 2) for x in os.getloadavg()],
           "environment": env}
    write_json(Path(args.out), out)
    print(f"\nbatch 1 x 128 tokens, {threads} threads, median of {args.rounds} rounds; accuracy on {len(split)} "
          f"{split.name} sentences")
    print(f"{'layout':<12}{'size MB':>8}{'accuracy':>10}{'p50 ms':>9}{'x int4-all (per-round median, min-max)':>42}")
    for name in LAYOUTS:
        row = rows[name]
        s = row["speedup_vs_int4_all"]
        print(f"{name:<12}{row['size_bytes'] / 1e6:>8.2f}{row['accuracy']:>10.4f}{row['p50_ms']:>9.3f}"
              f"{s['median']:>22.3f} ({s['min']:.3f}-{s['max']:.3f})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
