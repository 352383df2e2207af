"""What would a smaller student cost to run? The run's student cut to other shapes, quantized like the shipped one
and timed side by side with the teacher in PyTorch fp32, before any of them is trained.

    python benchmarks/student_shapes.py [--run benchmarks/runs/distilbert] [--shapes 3x12x1536 2x12x1536 3x6x768]
                                        [--all-rows] [--rounds 3] [--min-seconds 3] [--out benchmarks/results/student_shapes.json]

A shape LxHxF is the run's final student (trimmed vocabulary: <run>/trim/model, else <run>/distill/model) keeping its
first L layers, its H most important attention heads and its F most important feed-forward neurons per layer, pruned
by the code behind `student.num_attention_heads` and `student.intermediate_size` (compress.models.prune_heads and
prune_ffn, ranked on the run's evaluation sentences). Each is exported with optimum, fused (compress.onnxgraph.optimize,
the run's optimize settings) and quantized as pipelines/distilbert.yaml ships (dynamic int8, per-channel, int4
embedding tables in blocks of 32); with the run's optimize.first_token_only on, the last layer computes the first
token's row only, and --all-rows adds each shape with every row computed. The shipped model itself is timed too, as
the reference.

Latency: batch 1 x --sequence-length tokens of evaluation text on all cores, each model in a fresh process
(compress.bench.latency.measure), the teacher, the shipped model and every shape interleaved over --rounds rounds;
a model's p50 is the median of its per-round p50s, and speedup = the teacher's p50 / the model's.

The weights are not retrained, so these figures say what a shape costs, not what it scores. Its accuracy needs a
training run, e.g. `compress run pipelines/distilbert.yaml name=h6f768 student.num_attention_heads=6
student.intermediate_size=768` (README, Results, lists the ones measured).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
from pathlib import Path

from compress.layout import RunLayout

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: import the other benchmarks as the package benchmarks
SHAPES = ("3x12x1536", "3x8x1536", "3x6x1536", "3x6x768", "2x12x1536", "2x12x1024", "2x6x768")
SHAPE = re.compile(r"^(\d+)x(\d+)x(\d+)$")


def parse_shape(text: str) -> tuple[int, int, int]:
    """``LxHxF`` -> (layers, heads, feed-forward neurons); a clear error for anything else."""
    from compress.errors import CompressError

    m = SHAPE.match(text.strip())
    if not m or 0 in (values := tuple(int(g) for g in m.groups())):
        raise CompressError(f"--shapes: '{text}' is not LAYERSxHEADSxFFN with positive integers (e.g. 3x6x768)")
    return values


def student_sizes(model) -> dict[str, int]:
    """The student's layers, heads and feed-forward neurons per layer."""
    from compress import models

    spec = models.layer_spec(model.config.model_type)
    return {"layers": getattr(model.config, spec.count), "heads": getattr(model.config, spec.heads),
            "ffn": getattr(model.config, spec.ffn)}


def too_large(name: str, shape: tuple[int, int, int], have: dict[str, int]) -> list[str]:
    """One line per part of ``shape`` wider than the student (a shape can only cut it down)."""
    return [f"--shapes: {name} asks for {want} {key}; the run's student has {have[key]} (a shape can only cut it down)"
            for key, want in zip(("layers", "heads", "ffn"), shape) if want > have[key]]


def build_shape(base, tokenizer, shape: tuple[int, int, int], split, max_length: int, out: Path,
                skip_layer_norm: bool, first_token: bool) -> dict:
    """Cut the student ``base`` (left as it is) to ``shape``, export, fuse and quantize it into ``out``; returns where
    the int8 model is and how many parameters it has."""
    from optimum.exporters.onnx import main_export

    from compress import students
    from compress.config import StudentConfig
    from compress.envinfo import int8_isa
    from compress.onnxgraph import optimize
    from compress.quant.onnx_int8 import Settings, quantize_dynamic, reduce_range_for

    layers, heads, ffn = shape
    have = student_sizes(base)
    scfg = StudentConfig(layers=list(range(layers)), num_attention_heads=heads if heads < have["heads"] else None,
                         intermediate_size=ffn if ffn < have["ffn"] else None, prune_samples=min(512, len(split)))
    student, _, info = students.build(scfg, base, tokenizer, split, max_length)
    student.save_pretrained(out / "pytorch")
    tokenizer.save_pretrained(out / "pytorch")
    main_export(str(out / "pytorch"), output=out / "onnx", task="text-classification", do_validation=False, device="cpu")
    fused = out / "fused.onnx"
    optimize(out / "onnx" / "model.onnx", fused, embed_layer_norm=False, skip_layer_norm=skip_layer_norm,
             first_token=first_token)
    target = out / "model.onnx"
    quantize_dynamic(fused, target, Settings("dynamic", per_channel=True, reduce_range=reduce_range_for(int8_isa()),
                                             embeddings="int4", embedding_block=32))
    return {"path": target, "parameters": sum(p.numel() for p in student.parameters()), "pruning": info}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="benchmarks/runs/distilbert", help="a finished run folder")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), help="LAYERSxHEADSxFFN, each at most the student's")
    parser.add_argument("--data", help="evaluation data folder (default: the run config's data.source)")
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: all cores)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--queries", type=int, default=100, help="at least this many timed queries per measurement...")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="...and on until this many seconds have passed")
    parser.add_argument("--all-rows", action="store_true", help="also build each shape with every row of its last "
                        "layer computed (optimize.first_token_only off), named <shape>-all-rows, to time what "
                        "the first-token rewrite saves")
    parser.add_argument("--work", help="where the cut models are written (default: <run>/student_shapes)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "student_shapes.json"))
    args = parser.parse_args(argv)

    import shutil

    from transformers import AutoTokenizer

    from benchmarks.flagship import evaluation, resolve, shipped_student
    from compress import models as model_io
    from compress.bench.latency import latency_input, measure
    from compress.envinfo import environment
    from compress.errors import CompressError
    from compress.io import dir_size, write_json

    try:
        shapes = {s: parse_shape(s) for s in args.shapes}
        run = resolve(args.run, ROOT)
        student_dir = next((d for d in (RunLayout(run).model("trim"), RunLayout(run).model("distill")) if d.is_dir()), None)
        if student_dir is None or not (RunLayout(run).model("teacher")).is_dir():
            raise CompressError(f"--run: {run} has no finished teacher and student (run `python benchmarks/pipeline.py "
                                f"pipelines/distilbert.yaml` first)")
        base, tokenizer = model_io.load_saved(student_dir)
        bad = [line for name, shape in shapes.items() for line in too_large(name, shape, student_sizes(base))]
        if bad:
            raise CompressError(*bad)
        cfg, split = evaluation(run, args.data)
        work = Path(args.work) if args.work else run / "student_shapes"
        models = {"teacher": ("pytorch", RunLayout(run).model("teacher"), RunLayout(run).model("teacher"))}
        shipped, shipped_tok, _ = shipped_student(run)
        models["shipped"] = ("onnx", shipped, shipped_tok)
        built = {}
        variants = [(name, shape, cfg.optimize.first_token_only) for name, shape in shapes.items()]
        if args.all_rows:
            variants = [v for name, shape, first in variants
                        for v in ((name, shape, first), (f"{name}-all-rows", shape, False))]
        for name, shape, first in variants:
            folder = work / name
            if folder.exists():
                shutil.rmtree(folder)
            print(f"building {name} (layers x heads x feed-forward) from {student_dir}", flush=True)
            built[name] = build_shape(base, tokenizer, shape, split, cfg.data.max_length, folder,
                                      cfg.optimize.skip_layer_norm, first)
            built[name]["shape"], built[name]["first_token_only"] = shape, first
            models[name] = ("onnx", built[name]["path"], folder / "pytorch")
    except CompressError as exc:
        for line in exc.args:
            print(f"error: {line}", file=sys.stderr)
        return 2

    threads = args.threads or os.cpu_count() or 1
    queries = {n: latency_input(AutoTokenizer.from_pretrained(tok), split.texts, args.sequence_length, 1)
               for n, (_, _, tok) in models.items()}
    names = list(models)
    p50s: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            fmt, path, _ = models[name]
            m = measure(fmt, path, queries[name], args.warmup, args.queries, threads, min_seconds=args.min_seconds)
            p50s[name].append(m["latency"]["p50_ms"])
            print(f"round {r + 1}: {name:<10} p50 {m['latency']['p50_ms']:7.2f} ms", flush=True)

    teacher = statistics.median(p50s["teacher"])
    rows = {}
    for name in names:
        fmt, path, _ = models[name]
        p50 = statistics.median(p50s[name])
        per_round = [t / s for t, s in zip(p50s["teacher"], p50s[name])]
        rows[name] = {"format": fmt, "path": str(path), "p50_ms": round(p50, 3), "p50_per_round_ms": p50s[name],
                      "speedup": round(teacher / p50, 2),
                      "speedup_per_round": [round(min(per_round), 2), round(max(per_round), 2)],
                      "size_bytes": sum(dir_size(p) for p in sorted(path.glob("*.safetensors")))
                      if fmt == "pytorch" else dir_size(path)}
        if name in built:
            layers, heads, ffn = built[name]["shape"]
            rows[name].update(layers=layers, heads=heads, intermediate_size=ffn, parameters=built[name]["parameters"],
                              first_token_only=built[name]["first_token_only"], pruning=built[name]["pruning"])
    out = {"teacher_p50_ms": round(teacher, 3), "models": rows,
           "settings": {"run": str(run), "student": str(student_dir), "batch_size": 1,
                        "sequence_length": args.sequence_length, "threads": threads, "rounds": args.rounds,
                        "warmup": args.warmup, "queries": args.queries, "min_seconds": args.min_seconds,
                        "quantization": "dynamic int8, per-channel, int4 embedding tables (blocks of 32)",
                        "weights": "the run's student pruned, not retrained: latency and size only"},
           "load_average": [round(x, 2) for x in os.getloadavg()], "environment": environment()}
    write_json(Path(args.out), out)
    print(f"\nbatch 1 x {args.sequence_length} tokens, {threads} threads, median of {args.rounds} rounds "
          f"(not retrained: what each shape costs, not what it scores)")
    print(f"{'model':<20}{'size MB':>9}{'p50 ms':>9}{'speedup':>9}  per round")
    for name, r in rows.items():
        print(f"{name:<20}{r['size_bytes'] / 1e6:>9.1f}{r['p50_ms']:>9.2f}{r['speedup']:>8.2f}x  "
              f"{r['speedup_per_round'][0]}-{r['speedup_per_round'][1]}x")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
