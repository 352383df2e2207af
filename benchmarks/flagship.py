"""The flagship comparison: the teacher in PyTorch fp32, the teacher through optimum + ONNX Runtime int8 (the
peer), and compress's shipped student, measured side by side in one run.

    python benchmarks/flagship.py [--run benchmarks/runs/distilbert] [--rounds 3] [--min-seconds 10] [--split held-out]

Reads a finished `compress run` folder (default benchmarks/runs/distilbert, made by
`python benchmarks/pipeline.py pipelines/distilbert.yaml`): the fine-tuned teacher (<run>/teacher/model)
and the shipped bundle (the folder <run>/ship/stage.json names, e.g. exports/distilbert/model.onnx; the
run's ship variant when the bundle is gone). The peer is the same teacher exported with optimum and
quantized with ORTQuantizer's AVX-512 VNNI dynamic preset (compress.bench.peer); it is built once and
cached in <run>/flagship/peer.

Accuracy: all three on the run's evaluation split (SST-2 test, 872 sentences), each with its own tokenizer;
retention = accuracy / the teacher's (PyTorch fp32) accuracy, with a paired 95% bootstrap interval. The two int8
models (the peer and the shipped student) are also scored one sentence at a time, unpadded, as a device runs them
(compress.bench.deployed: dynamic int8 ranges otherwise see the padding of longer rows); the retention targets are
judged on that figure.
`--split held-out` judges them instead on the run's validation rows that no stage read (SST-2: 4,735
phrases held out of GLUE's train; the first 2,000 pick each stage's best epoch, the first 1,000 of them set
the quantization budgets): a sample five times larger, for telling the student and the peer apart (the
targets are the test split's).
Latency: batch 1 x 128 tokens on all cores by default, each model in a fresh process
(compress.bench.latency.measure: warm-up, then at least --queries timed queries and on until --min-seconds),
the three interleaved over --rounds rounds (order rotated each round); a model's p50 is the median of its
per-round p50s, and the ratios are taken between those. Size: the weight files on disk (safetensors for the
teacher, the .onnx file for the others).

Prints the figures and the ratios and writes benchmarks/results/flagship.json with ``speedup`` and
``size_ratio`` (shipped student vs the teacher in PyTorch fp32), ``speedup_vs_peer``, ``retention``, the
issue's targets with whether each is met, and the environment.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from compress.layout import ONNX_FILE, RunLayout
from compress.records import read_report, read_stage

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("teacher", "peer", "student")
LABELS = {"teacher": "teacher, PyTorch fp32", "peer": "teacher, optimum + ORT int8", "student": "shipped student"}
TARGETS = {"speedup": 10.0, "size_ratio": 10.0, "retention": 0.99, "speedup_vs_peer": 2.5}


def resolve(path: str | Path, *bases: Path) -> Path:
    """``path`` as given when absolute or found from the working directory, else under the first base it exists in."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p.resolve()
    for base in bases:
        if (base / p).exists():
            return (base / p).resolve()
    return (bases[0] / p) if bases else p


def shipped_student(run: Path) -> tuple[Path, Path, str]:
    """(model.onnx, tokenizer folder, where it came from) of the run's shipped student: the bundle the ship
    stage wrote, else the run's ship variant in the quantize stage."""
    from compress.errors import CompressError

    ship = RunLayout(run).record("ship")
    if ship.is_file():
        bundle = read_stage(ship).metrics.get("bundle")
        if bundle:
            folder = resolve(bundle, ROOT, run.parent.parent.parent)
            if (folder / ONNX_FILE).is_file():
                return folder / ONNX_FILE, folder, f"bundle {bundle}"
    report = read_report(RunLayout(run).report_json)
    import yaml

    variant = (yaml.safe_load(RunLayout(run).config.read_text()).get("ship") or {}).get("variant", "student-int8")
    row = report.variant(variant)
    if row is None:
        raise CompressError(f"{run}: no shipped bundle and no variant {variant!r} in report.json")
    path = resolve(row.path, ROOT, run)
    return path, path.parent, f"variant {variant} ({row.path})"


def evaluation(run: Path, data: str | None, which: str = "eval"):
    """The run's evaluation split (``which="eval"``), or its validation rows that no stage read
    (``"held-out"``), read with the run's own config; a relative local data.source is resolved against the
    working directory, then the repo root (where `compress run` is run from)."""
    import yaml

    from compress.config import is_local_path
    from compress.data import eval_split
    from compress.tasks import load_config

    source = data or yaml.safe_load(RunLayout(run).config.read_text())["data"]["source"]
    if is_local_path(source):
        source = str(resolve(source, ROOT))
    cfg = load_config(RunLayout(run).config, [f"data.source={source}"])
    return cfg, (eval_split(cfg) if which == "eval" else held_out_validation(cfg, run))


def held_out_validation(cfg, run: Path):
    """The validation rows after the first ones the run read: each training epoch's check reads the first
    data.max_validation_samples (the best epoch is kept by them) and the quantization budgets the first
    quantize.accuracy_samples. What is left was read by no stage, so it judges teacher, peer and student alike
    (SST-2: 4,735 of GLUE's 6,735 held-out training phrases)."""
    from compress.data import Split, load_split
    from compress.errors import CompressError

    d = cfg.data
    if not d.validation_split:
        raise CompressError(f"--split held-out: {RunLayout(run).config} has no data.validation_split")
    rows = load_split(d, d.validation_split, cfg.teacher.num_labels)
    read = len(rows) if d.max_validation_samples is None else max(d.max_validation_samples, cfg.quantize.accuracy_samples)
    if read >= len(rows):
        raise CompressError(f"--split held-out: the run read all {len(rows)} rows of validation split "
                            f"'{d.validation_split}' (data.max_validation_samples {d.max_validation_samples}, "
                            f"quantize.accuracy_samples {cfg.quantize.accuracy_samples}); none is left")
    return Split(f"{d.validation_split} (rows {read + 1}-{len(rows)}, read by no stage)", rows.texts[read:], rows.labels[read:])


def inside_training(cfg, split):
    """Whether each row's text (lowercased) occurs inside one of the run's training rows. SST-2's rows are
    phrases cut from the parse trees of the same reviews, so most held-out phrases are pieces of training
    phrases whose labels were learnt in context; the rest are the part of the sample closest to unseen text."""
    import numpy as np

    from compress.data import train_split

    blob = "\n".join(t.strip().lower() for t in train_split(cfg).texts)
    return np.array([t.strip().lower() in blob for t in split.texts], dtype=bool)


def accuracy(name: str, path: Path, tokenizer_dir: Path, split, threads: int):
    """Per-sentence correctness (int8 array) and predictions of one model on ``split``, batched; and for an ONNX
    model (the int8 peer and student) the same one sentence at a time, unpadded (else None, None)."""
    import numpy as np
    from transformers import AutoTokenizer

    from compress import onnxrun

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    limit = min(tokenizer.model_max_length, 512)
    rows = tokenizer(split.texts, truncation=True, max_length=limit)["input_ids"]
    alone = None
    if name == "teacher":
        import torch

        from compress import models
        from compress.bench.torch_model import torch_logits

        torch.set_num_threads(threads)
        model, _ = models.load_saved(path)
        logits = torch_logits(model, rows, tokenizer.pad_token_id, "cpu", 64)
        del model
    else:
        from compress.bench import deployed

        sess = onnxrun.session(path, threads=threads)
        logits = onnxrun.logits(sess, rows, tokenizer.pad_token_id, 64)
        alone = deployed.onnx_logits(sess, rows)
        del sess
    pred, labels = logits.argmax(-1), np.asarray(split.labels)
    pred1 = alone.argmax(-1) if alone is not None else None
    return ((pred == labels).astype(np.int8), pred,
            (pred1 == labels).astype(np.int8) if pred1 is not None else None, pred1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="benchmarks/runs/distilbert", help="a finished run folder (relative to the "
                        "working directory or the repo root)")
    parser.add_argument("--student", help="the student's model.onnx (default: the run's shipped bundle)")
    parser.add_argument("--data", help="evaluation data folder (default: the run config's data.source)")
    parser.add_argument("--split", choices=("eval", "held-out"), default="eval",
                        help="eval: the run's evaluation split (SST-2 test, what the targets are judged on); held-out: "
                        "its validation rows that no stage read, a second and larger sample to compare on")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: all cores)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the three latency measurements")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--queries", type=int, default=100, help="at least this many timed queries per measurement...")
    parser.add_argument("--min-seconds", type=float, default=10.0, help="...and on until this many seconds have passed")
    parser.add_argument("--peer-per-channel", action=argparse.BooleanOptionalAction, default=True,
                        help="per-channel int8 weights for the peer (optimum's avx512_vnni preset default: on)")
    parser.add_argument("--rebuild-peer", action="store_true", help="export and quantize the peer again")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "flagship.json"))
    args = parser.parse_args(argv)

    import os

    from transformers import AutoTokenizer

    from compress.bench import peer as peer_mod
    from compress.bench.accuracy import accuracy_interval, paired_difference, retention_interval
    from compress.bench.latency import latency_input, measure
    from compress.envinfo import environment
    from compress.errors import CompressError
    from compress.io import dir_size, write_json

    threads = args.threads or os.cpu_count() or 1
    run = resolve(args.run, ROOT)
    try:
        if not (RunLayout(run).report_json).is_file():
            raise CompressError(f"--run: {run} has no report.json (run `python benchmarks/pipeline.py "
                                f"pipelines/distilbert.yaml` first)")
        report = read_report(RunLayout(run).report_json)
        cfg, split = evaluation(run, args.data, args.split)
        if args.student:
            student_path = resolve(args.student, ROOT)
            if not student_path.is_file():
                raise CompressError(f"--student: {args.student} is not a file")
            student_tok, student_from = student_path.parent, str(args.student)
        else:
            student_path, student_tok, student_from = shipped_student(run)
    except CompressError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    teacher_dir = RunLayout(run).model("teacher")
    print(f"run {run}\nstudent: {student_from}", flush=True)
    built = peer_mod.build(teacher_dir, run / "flagship" / "peer", per_channel=args.peer_per_channel,
                           rebuild=args.rebuild_peer)
    print(f"peer: {'cached' if built['cached'] else 'built'} in {run / 'flagship' / 'peer'} "
          f"({built['quantization_config']})", flush=True)
    peer_path = Path(built["path"])
    spec = {  # name -> (format, path, tokenizer folder, weight files)
        "teacher": ("pytorch", teacher_dir, teacher_dir, sorted(teacher_dir.glob("*.safetensors"))),
        "peer": ("onnx", peer_path, teacher_dir, [peer_path]),
        "student": ("onnx", student_path, student_tok, [student_path]),
    }

    rows: dict[str, dict] = {}
    correct, pred, alone = {}, {}, {}  # alone: one sentence at a time, unpadded (the int8 peer and student)
    for name in MODELS:
        fmt, path, tok, weights = spec[name]
        correct[name], pred[name], alone[name], pred1 = accuracy(name, path, tok, split, threads)
        lo, hi = accuracy_interval(correct[name])
        rows[name] = {"label": LABELS[name], "format": fmt, "path": str(path), "size_bytes": sum(dir_size(p) for p in weights),
                      "accuracy": round(float(correct[name].mean()), 5), "accuracy_ci95": [round(lo, 5), round(hi, 5)]}
        if alone[name] is not None:
            lo1, hi1 = accuracy_interval(alone[name])
            rows[name].update(accuracy_batch1=round(float(alone[name].mean()), 5),
                              accuracy_batch1_ci95=[round(lo1, 5), round(hi1, 5)],
                              changed_at_batch1=int((pred1 != pred[name]).sum()))
        print(f"{name:<8} accuracy {rows[name]['accuracy']:.4f} [{lo:.4f}, {hi:.4f}]"
              + (f", one at a time unpadded {rows[name]['accuracy_batch1']:.4f}" if alone[name] is not None else "")
              + f" on {len(split)} {split.name} sentences, {rows[name]['size_bytes'] / 1e6:.1f} MB", flush=True)
    for name in ("peer", "student"):
        lo, hi = retention_interval(correct[name], correct["teacher"])
        rows[name]["retention"] = round(float(correct[name].mean() / correct["teacher"].mean()), 5)
        rows[name]["retention_ci95"] = [round(lo, 5), round(hi, 5)]
        lo, hi = retention_interval(alone[name], correct["teacher"])
        rows[name]["retention_batch1"] = round(float(alone[name].mean() / correct["teacher"].mean()), 5)
        rows[name]["retention_batch1_ci95"] = [round(lo, 5), round(hi, 5)]
        rows[name]["agreement_with_teacher"] = round(float((pred[name] == pred["teacher"]).mean()), 5)
    # cross-check with the run's own figures (report.json measured the teacher and the shipped variant)
    ship = RunLayout(run).record("ship")
    shipped_name = read_stage(ship).metrics.get("variant") if ship.is_file() else None
    teacher_row, shipped_row = report.variant("teacher"), report.variant(shipped_name) if shipped_name else None
    report_check = {"teacher_accuracy": teacher_row.accuracy if teacher_row else None,
                    "teacher_p50_ms": teacher_row.latency_ms.p50 if teacher_row and teacher_row.latency_ms else None,
                    "student_variant": shipped_name, "student_accuracy": shipped_row.accuracy if shipped_row else None,
                    "student_accuracy_batch1": shipped_row.accuracy_batch1 if shipped_row else None,
                    "student_p50_ms": shipped_row.latency_ms.p50 if shipped_row and shipped_row.latency_ms else None,
                    "target": report.get("target")}

    queries = {}
    for name in MODELS:
        tokenizer = AutoTokenizer.from_pretrained(spec[name][2])
        queries[name] = latency_input(tokenizer, split.texts, args.sequence_length, args.batch_size)
    rounds: dict[str, list[dict]] = {n: [] for n in MODELS}
    for r in range(args.rounds):
        order = MODELS[r % 3:] + MODELS[: r % 3]
        for name in order:
            fmt, path, _, _ = spec[name]
            m = measure(fmt, path, queries[name], args.warmup, args.queries, threads, min_seconds=args.min_seconds)
            rounds[name].append({"round": r + 1, **m["latency"], "load_seconds": m["load_seconds"],
                                 "peak_rss_bytes": m["peak_rss_bytes"], "runtime": m["runtime"]})
            print(f"round {r + 1}: {name:<8} p50 {m['latency']['p50_ms']:7.2f} ms  p90 {m['latency']['p90_ms']:7.2f} ms  "
                  f"({m['latency']['count']} queries, {m['runtime']})", flush=True)
    for name in MODELS:
        rs = rounds[name]
        rows[name]["latency_ms"] = {k: round(statistics.median(x[f"{k}_ms"] for x in rs), 3) for k in ("p50", "p90", "p99", "mean")}
        rows[name]["p50_per_round_ms"] = [x["p50_ms"] for x in rs]
        rows[name]["peak_rss_bytes"] = max(x["peak_rss_bytes"] for x in rs)
        rows[name]["runtime"] = rs[0]["runtime"]
        rows[name]["rounds"] = rs

    t, p, s = rows["teacher"], rows["peer"], rows["student"]
    per_round = [t["p50_per_round_ms"][i] / s["p50_per_round_ms"][i] for i in range(args.rounds)]
    per_round_peer = [p["p50_per_round_ms"][i] / s["p50_per_round_ms"][i] for i in range(args.rounds)]
    result = {
        "speedup": round(t["latency_ms"]["p50"] / s["latency_ms"]["p50"], 2),
        "size_ratio": round(t["size_bytes"] / s["size_bytes"], 2),
        "speedup_vs_peer": round(p["latency_ms"]["p50"] / s["latency_ms"]["p50"], 2),
        "retention": s["retention"],
        "peer_retention": p["retention"],
        "retention_batch1": s["retention_batch1"],  # one sentence at a time, unpadded: what the targets judge
        "peer_retention_batch1": p["retention_batch1"],
        "peer_speedup": round(t["latency_ms"]["p50"] / p["latency_ms"]["p50"], 2),
        "peer_size_ratio": round(t["size_bytes"] / p["size_bytes"], 2),
        "size_ratio_vs_peer": round(p["size_bytes"] / s["size_bytes"], 2),
        "speedup_per_round": {"median": round(statistics.median(per_round), 2), "min": round(min(per_round), 2),
                              "max": round(max(per_round), 2)},
        "speedup_vs_peer_per_round": {"median": round(statistics.median(per_round_peer), 2),
                                      "min": round(min(per_round_peer), 2), "max": round(max(per_round_peer), 2)},
    }
    judged = {**result, "retention": result["retention_batch1"]}  # retention as a device sees it
    targets = {k: {"value": judged[k], "target": v, "met": judged[k] >= v} for k, v in TARGETS.items()}
    targets["retention"]["judged_on"] = "one sentence at a time, unpadded"
    targets["retention_above_peer"] = {"value": result["retention_batch1"], "target": result["peer_retention_batch1"],
                                       "met": result["retention_batch1"] > result["peer_retention_batch1"],
                                       "judged_on": "one sentence at a time, unpadded"}
    # the same sentences judged by both: how far apart the two really are (a handful of sentences on SST-2)
    versus_peer = paired_difference(correct["student"], correct["peer"])
    unseen = None
    if args.split == "held-out":  # the same comparison on the rows that are no piece of a training row
        fresh = ~inside_training(cfg, split)
        unseen = {"rows": int(fresh.sum()), "accuracy": {n: round(float(correct[n][fresh].mean()), 5) for n in MODELS},
                  "student_vs_peer": paired_difference(correct["student"][fresh], correct["peer"][fresh])}
    out = {
        **result,
        "targets": targets,
        "accuracy_vs_peer": versus_peer,
        **({"rows_outside_training_text": unseen} if unseen else {}),
        "all_targets_met": all(x["met"] for x in targets.values()),
        "models": rows,
        "settings": {"run": str(run), "student": student_from, "batch_size": args.batch_size,
                     "sequence_length": args.sequence_length, "threads": threads, "rounds": args.rounds,
                     "warmup": args.warmup, "queries": args.queries, "min_seconds": args.min_seconds,
                     "latency": "p50 per round, median over rounds; each measurement in a fresh process",
                     "size": "weight files on disk: teacher *.safetensors, peer and student the .onnx file",
                     "eval": {"split": split.name, "sentences": len(split), "source": cfg.data.source}},
        "peer": {k: built[k] for k in ("quantization_config", "export_seconds", "seconds", "cached") if k in built}
                | {"per_channel": args.peer_per_channel, "fp32_onnx": built["fp32_path"]},
        "report_json": report_check,
        "load_average": [round(x, 2) for x in os.getloadavg()],  # 1, 5, 15 min: others on the machine
        "environment": environment(),
    }
    write_json(Path(args.out), out)

    print(f"\nbatch {args.batch_size} x {args.sequence_length} tokens, {threads} threads, median of {args.rounds} rounds; "
          f"accuracy on {len(split)} {split.name} sentences")
    print(f"{'model':<30}{'accuracy':>9}{'batch 1':>9}{'retention':>10}{'batch 1':>9}{'size MB':>9}{'p50 ms':>9}"
          f"{'p90 ms':>9}")
    for name in MODELS:
        r = rows[name]
        ret = f"{r['retention']:.2%}" if "retention" in r else "-"
        ret1 = f"{r['retention_batch1']:.2%}" if "retention_batch1" in r else "-"
        acc1 = f"{r['accuracy_batch1']:.4f}" if "accuracy_batch1" in r else "-"
        print(f"{LABELS[name]:<30}{r['accuracy']:>9.4f}{acc1:>9}{ret:>10}{ret1:>9}{r['size_bytes'] / 1e6:>9.1f}"
              f"{r['latency_ms']['p50']:>9.2f}{r['latency_ms']['p90']:>9.2f}")
    print("(batch 1: one sentence at a time, unpadded, as a device runs it; the retention targets are judged on it)")
    print(f"\nspeedup {result['speedup']}x (per round: median {result['speedup_per_round']['median']}, {result['speedup_per_round']['min']}-{result['speedup_per_round']['max']}), "
          f"size_ratio {result['size_ratio']}x, retention {result['retention']:.2%} ({result['retention_batch1']:.2%} at "
          f"batch 1) (peer: {result['peer_speedup']}x faster, {result['peer_size_ratio']}x smaller, retention "
          f"{result['peer_retention']:.2%}, {result['peer_retention_batch1']:.2%} at batch 1)")
    print(f"speedup_vs_peer {result['speedup_vs_peer']}x (per round: median "
          f"{result['speedup_vs_peer_per_round']['median']}, {result['speedup_vs_peer_per_round']['min']}-"
          f"{result['speedup_vs_peer_per_round']['max']}), {result['size_ratio_vs_peer']}x smaller than the peer")
    for k, v in targets.items():
        print(f"  {k:<22} {v['value']:<8} target {'>' if k == 'retention_above_peer' else '>='} {v['target']}: "
              f"{'met' if v['met'] else 'NOT met'}")
    print(f"  student - peer accuracy {versus_peer['difference']:+.4f} (paired 95% interval {versus_peer['ci95'][0]:+.4f} "
          f"to {versus_peer['ci95'][1]:+.4f}; {versus_peer['wins']} sentences only the student gets right, "
          f"{versus_peer['losses']} only the peer)")
    if unseen:
        u = unseen["student_vs_peer"]
        print(f"  on the {unseen['rows']} rows that are no piece of a training row: teacher {unseen['accuracy']['teacher']:.4f}, "
              f"peer {unseen['accuracy']['peer']:.4f}, student {unseen['accuracy']['student']:.4f}; student - peer "
              f"{u['difference']:+.4f} ({u['ci95'][0]:+.4f} to {u['ci95'][1]:+.4f})")
    for key, want in (("teacher_accuracy", t["accuracy"]), ("student_accuracy", s["accuracy"]),
                      ("student_accuracy_batch1", s["accuracy_batch1"])):
        have = report_check[key]
        if args.split == "eval" and have is not None and abs(have - want) > 1e-4:
            print(f"note: report.json has {key} {have}, measured here {want}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
