"""Report: ``runs/<name>/report.json`` (the source of truth), ``report.md`` and ``report.html`` (plots of
accuracy against size and latency, and the recommended variants), relative to the teacher."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from compress import records
from compress.bench import rounds
from compress.bench.accuracy import paired_difference, retention_interval
from compress.io import read_json, write_text
from compress.layout import RunLayout
from compress.reports.accuracy import markdown
from compress.reports.html import render_run
from compress.tasks.classification import TASK, ort

NAME = "report"
VERSION = 5  # 2: per-target tables, plots and recommendations; retention intervals; repeatability; 3: data checks;
# 4: the shipped variant; accuracy at batch 1 (the shipped and the int8 variants), which the retention floor is judged on;
# 5: latency rounds, spreads, flags and speedup intervals; the sha256 of each variant
DEPENDS = ("teacher", "student", "distill", "refine", "baseline", "trim", "export", "quantize", "mobile", "bench")
CONFIG = ("name", "report", "ship.variant", "ship.enabled")  # the report says which variant the bundle holds
REFERENCE = "teacher"  # ratios are against the teacher in PyTorch fp32
ROUND_FIELDS = ("rounds", "p50_rounds_ms", "p50_range_ms", "relative_spread", "flags")  # compress.bench.rounds


def outputs(cfg, run_dir: Path) -> list[Path]:
    """Files written outside the stage folder: the stage reruns if one is gone."""
    where = RunLayout(run_dir)
    return [where.report_json, where.report_md, where.report_html]


def build(cfg, ctx) -> dict:
    bench = read_json(ctx.layout.bench_results)
    rows = bench["variants"]
    ref = next(r for r in rows if r["name"] == REFERENCE)
    labels = np.asarray(bench["labels"])
    correct = {r["name"]: (np.asarray(r["predictions"]) == labels).astype(np.int8) for r in rows}
    variants = []
    for r in rows:
        kept = retention_interval(correct[r["name"]], correct[REFERENCE])
        variants.append({
            "name": r["name"], "role": r["role"], "format": r["format"], "precision": r["precision"], "method": r.get("method"),
            "parameters": r["parameters"], "size_bytes": r["size_bytes"], "accuracy": r["accuracy"],
            "accuracy_ci95": r["accuracy_ci95"],
            "retention": round(r["accuracy"] / ref["accuracy"], 5) if ref["accuracy"] else None,
            "retention_ci95": [round(kept[0], 5), round(kept[1], 5)] if kept else None,
            "agreement_with_teacher": r["agreement_with_teacher"],
            **rounds.speedup(ref, r, same=r is ref),
            "size_ratio": round(ref["size_bytes"] / r["size_bytes"], 3),
            "latency_ms": r["latency_ms"], "throughput": r["throughput"], "queries": r["queries"],
            **{k: r[k] for k in ROUND_FIELDS},
            "peak_memory_bytes": r["peak_rss_bytes"], "load_seconds": r["load_seconds"], "runtime": r["runtime"],
            "cpu_mem_arena": r["cpu_mem_arena"], "measured_on": r["measured_on"],
            "measurements": {key: measurement(m) for key, m in r["measurements"].items()},
            "path": r["path"], "sha256": r["sha256"],
            **batch1_figures(r, labels, correct[REFERENCE], ref["accuracy"]),
        })
    stages = {name: records.read_stage(ctx.layout.record(name)) for name in DEPENDS}
    first = next(r for r in rows)
    return {
        "name": cfg.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config_hash": cfg.hash(),
        "reference": REFERENCE,
        "target": {"name": bench["target"], "threads": first["threads"], "batch_size": first["batch_size"],
                   "sequence_length": first["sequence_length"]},
        "targets": per_target(bench["targets"], variants, cfg.report.retention_floor),
        "latency_rounds": bench["latency_rounds"],
        "eval": {"split": bench["eval_split"], "sentences": first["eval_sentences"]},
        "distill": {"temperature": cfg.distill.temperature, "alpha": cfg.distill.alpha},
        "deployed": {"shipped": cfg.ship.variant, "scored": [r["name"] for r in rows if "accuracy_batch1" in r]},
        "quantize": stages["quantize"].metrics,
        "export_parity": {name: e.get("parity", []) for name, e in stages["export"].metrics.items()},
        "fusions": {name: e["fusions"] for name, e in stages["export"].metrics.items() if "fusions" in e},
        "data": stages["teacher"].metrics.get("data"),
        "student": stages["student"].metrics,
        "vocab_trim": stages["trim"].metrics,
        "mobile": ort.summary(stages["mobile"].metrics),
        "distillation_gain": {
            f"student vs {base}": paired_difference(correct["student"], correct[base])
            for base in ("student-ce", "student-init") if base in correct
        },
        "refine": refine_summary(stages["refine"].metrics, correct),
        "stage_seconds": {name: s.seconds for name, s in stages.items()},
        "environment": read_json(ctx.layout.env),
        "variants": variants,
        "recommended": recommend(variants, cfg.report.retention_floor),
        "shipped": {"enabled": cfg.ship.enabled, "variant": cfg.ship.variant},
    }


def batch1_figures(r: dict, labels: np.ndarray, correct_ref: np.ndarray, ref_accuracy: float) -> dict:
    """A bench row's accuracy one sentence at a time, unpadded (compress.bench.deployed), and its retention with a
    paired interval against the teacher's batched answers; {} for a variant not scored that way."""
    if "accuracy_batch1" not in r:
        return {}
    correct = (np.asarray(r["predictions_batch1"]) == labels).astype(np.int8)
    kept = retention_interval(correct, correct_ref)
    return {"accuracy_batch1": r["accuracy_batch1"], "accuracy_batch1_ci95": r["accuracy_batch1_ci95"],
            "retention_batch1": round(r["accuracy_batch1"] / ref_accuracy, 5) if ref_accuracy else None,
            "retention_batch1_ci95": [round(kept[0], 5), round(kept[1], 5)] if kept else None,
            "changed_at_batch1": r["changed_at_batch1"]}


def judged_retention(v: dict) -> float | None:
    """The retention a target is judged on (report.retention_floor): one sentence at a time, unpadded, as a device
    runs it, where the variant was scored that way; else the batched figure."""
    return v["retention_batch1"] if v.get("retention_batch1") is not None else v["retention"]


def measurement(m: dict) -> dict:
    """One (variant, target case) measurement of the bench's results, as report.json keeps it."""
    keep = ("runtime", "model_file", "device", "threads", "batch_size", "sequence_length", "cpu_mem_arena",
            "load_seconds", "latency_ms", "throughput", "queries", *ROUND_FIELDS)
    return {**{k: m[k] for k in keep}, "peak_memory_bytes": m["peak_rss_bytes"]}


def per_target(targets: list[dict], variants: list[dict], floor: float) -> list[dict]:
    """bench.targets as the report states them: each target's cases (a query shape each), the variant its
    speedups are against (the teacher where it runs there, else teacher-onnx), the fastest variant keeping
    ``floor`` of the teacher's accuracy there, and the variants it did not run, with the reason. Every
    variant measured on a case gets its speedup there."""
    out = []
    for t in targets:
        entry = {"name": t["name"], "status": t["status"], "reason": t["reason"], "not_run": t["not_run"], "cases": []}
        for c in t["cases"] if t["status"] == "measured" else []:
            key = c["key"]
            on = [v for v in variants if key in v["measurements"]]
            ref = next((v for v in on if v["name"] == REFERENCE), None) or next(
                (v for v in on if v["name"] == f"{REFERENCE}-onnx"), None)
            for v in on:
                m = v["measurements"][key]
                m.update(rounds.speedup(ref["measurements"][key], m, same=v is ref) if ref else {"speedup": None})
            fastest = recommend([{**v, "latency_ms": v["measurements"][key]["latency_ms"]} for v in on], floor)["latency"]
            entry["cases"].append({**c, "reference": ref["name"] if ref else None, "recommended": fastest})
        out.append(entry)
    return out


def recommend(variants: list[dict], floor: float) -> dict:
    """The smallest and the fastest variant that keep at least ``floor`` of the teacher's accuracy (at batch 1 where
    the variant was scored so: ``judged_retention``): what to ship when disk, or when latency, is what is scarce.
    Ties go to the more accurate; None when no variant keeps enough (only when the teacher itself scored 0)."""
    keep = [v for v in variants if judged_retention(v) is not None and judged_retention(v) >= floor]

    def pick(cost) -> dict | None:
        if not keep:
            return None
        best = min(keep, key=lambda v: (cost(v), -v["accuracy"]))
        at_batch1 = best.get("retention_batch1") is not None
        return {"name": best["name"], "size_bytes": best["size_bytes"], "p50_ms": best["latency_ms"]["p50"],
                "accuracy": best["accuracy_batch1"] if at_batch1 else best["accuracy"],
                "retention": judged_retention(best), "judged_at_batch1": at_batch1}

    return {"retention_floor": floor, "size": pick(lambda v: v["size_bytes"]),
            "latency": pick(lambda v: v["latency_ms"]["p50"])}


def refine_summary(metrics: dict, correct: dict) -> dict | None:
    """What the refine stage did and what it changed: the refined student against the distilled one it was
    pruned from, on the same sentences; None when it was off."""
    if not metrics.get("enabled"):
        return None
    shape = {}
    if "pruned_heads" in metrics:
        shape["num_attention_heads"] = [metrics["pruned_heads"]["heads_before"], metrics["pruned_heads"]["heads"]]
    if "pruned" in metrics:
        shape["intermediate_size"] = [metrics["pruned"]["intermediate_size_before"], metrics["pruned"]["intermediate_size"]]
    change = (paired_difference(correct["student"], correct["student-unpruned"])
              if "student-unpruned" in correct else None)
    return {"taught_by": metrics["taught_by"], "parameters": [metrics["parameters_before"], metrics["parameters"]],
            **shape, "student vs student-unpruned": change}


def run(cfg, ctx) -> dict:
    report = records.Report.model_validate({"schema_version": records.SCHEMA_VERSION, "task": TASK.name,
                                             **build(cfg, ctx)})
    records.write(ctx.layout.report_json, report)
    write_text(ctx.layout.report_md, markdown(report))
    write_text(ctx.layout.report_html, render_run(report))
    return {"report": str(ctx.layout.report_json)}


