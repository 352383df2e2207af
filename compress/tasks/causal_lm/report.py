"""The report of a causal-LM run: report.json (the source of truth) and report.md.  -> runs/<name>/"""

from __future__ import annotations

from pathlib import Path

from compress import records
from compress.io import read_json, write_text
from compress.layout import RunLayout
from compress.reports.perplexity import markdown
from compress.tasks.causal_lm import TASK, retention

NAME = "report"
DEPENDS = ("teacher", "student", "distill", "baseline", "export", "quantize", "score", "bench")
CONFIG = ("name", "report", "distill")


def outputs(cfg, run_dir: Path) -> list[Path]:
    """Files written outside the stage folder: the stage reruns if one is gone."""
    where = RunLayout(run_dir)
    return [where.report_json, where.report_md]


def build_report(cfg, ctx, stage_names) -> dict:
    from datetime import datetime, timezone

    bench_results = read_json(ctx.layout.bench_results)
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
            "sha256": r["sha256"], **({"not_timed": r["not_timed"]} if r.get("not_timed") else {}),
            **({k: m[k] for k in ("rounds", "p50_rounds_ms", "p50_range_ms", "relative_spread", "flags")} if m else {}),
        })
    stages = {name: records.read_stage(ctx.layout.record(name)) for name in stage_names}
    by = {v["name"]: v for v in out}
    gain = {}
    for base in ("student-ce", "student-init"):
        if base in by:
            s, b = by["student"]["perplexity"], by[base]["perplexity"]
            gain[f"student vs {base}"] = {"student_perplexity": s, "baseline_perplexity": b,
                                          "difference": round(s - b, 4), "relative": round(s / b - 1, 5),
                                          "better": s < b}
    export_metrics = stages["export"].metrics
    scores = read_json(ctx.layout.score_results)
    if not scores.get("enabled"):
        scores = None
    else:
        scored = scores["variants"]
        scores = {"sets": scores["sets"], "wikitext": scores["wikitext"], "seed": scores["seed"],
                  "against_teacher": retention.table(scores),
                  "distillation_gain": {f"student vs {b}": retention.compare(scored["student"], scored[b], scores["sets"])
                                        for b in ("student-ce", "student-init") if b in scored and "student" in scored},
                  "seconds": {n: r["seconds"] for n, r in scored.items()}}
    return {
        "name": cfg.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "config_hash": cfg.hash(),
        "reference": "teacher",
        "eval": bench_results["eval"], "query": bench_results["query"], "targets": bench_results["targets"],
        "not_measured": bench_results["not_measured"], "prompts": bench_results["prompts"],
        "distill": {"temperature": cfg.distill.temperature, "alpha": cfg.distill.alpha,
                    "divergence": cfg.distill.divergence, "preflight": stages["distill"].metrics["preflight"],
                    "sequence": stages["distill"].metrics["sequence"]},
        "teacher": {k: stages["teacher"].metrics.get(k) for k in ("source", "model_type", "parameters", "vocabulary",
                                                                    "text", "train_rows", "train_tokens")},
        "student": stages["student"].metrics,
        "export_parity": {name: e["parity"] for name, e in export_metrics.items()},
        "greedy_parity": {name: e["greedy"] for name, e in export_metrics.items()},
        "quantize": stages["quantize"].metrics,
        "distillation_gain": gain,
        "scores": scores,
        "stage_seconds": {name: s.seconds for name, s in stages.items()},
        "environment": read_json(ctx.layout.env),
        "variants": out,
        "latency_rounds": bench_results["latency_rounds"],
    }


def run(cfg, ctx) -> dict:
    rep = records.Report.model_validate({"schema_version": records.SCHEMA_VERSION, "task": TASK.name,
                                          **build_report(cfg, ctx, DEPENDS)})
    records.write(ctx.layout.report_json, rep)
    write_text(ctx.layout.report_md, markdown(rep))
    return {"report": str(ctx.layout.report_json)}
