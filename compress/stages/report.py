"""Report: ``runs/<name>/report.json`` (the source of truth) and ``report.md``, relative to the teacher."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from compress.bench.accuracy import accuracy_interval, paired_difference
from compress.io import read_json, write_json, write_text
from compress.stages import mobile

NAME = "report"
DEPENDS = ("teacher", "student", "distill", "baseline", "trim", "export", "quantize", "mobile", "bench")
CONFIG = ("name",)
REFERENCE = "teacher"  # ratios are against the teacher in PyTorch fp32


def outputs(cfg, run_dir: Path) -> list[Path]:
    """Files written outside the stage folder: the stage reruns if one is gone."""
    return [run_dir / "report.json", run_dir / "report.md"]


def build(cfg, ctx) -> dict:
    bench = read_json(ctx.stage_dir("bench") / "results.json")
    rows = bench["variants"]
    ref = next(r for r in rows if r["name"] == REFERENCE)
    labels = np.asarray(bench["labels"])
    correct = {r["name"]: (np.asarray(r["predictions"]) == labels).astype(np.int8) for r in rows}
    variants = []
    for r in rows:
        lo, hi = accuracy_interval(correct[r["name"]])
        variants.append({
            "name": r["name"], "role": r["role"], "format": r["format"], "precision": r["precision"],
            "parameters": r["parameters"], "size_bytes": r["size_bytes"], "accuracy": r["accuracy"],
            "accuracy_ci95": [round(lo, 5), round(hi, 5)],
            "retention": round(r["accuracy"] / ref["accuracy"], 5) if ref["accuracy"] else None,
            "agreement_with_teacher": r["agreement_with_teacher"],
            "speedup": round(ref["latency_ms"]["p50"] / r["latency_ms"]["p50"], 3),
            "size_ratio": round(ref["size_bytes"] / r["size_bytes"], 3),
            "latency_ms": r["latency_ms"], "throughput": r["throughput"], "queries": r["queries"],
            "peak_memory_bytes": r["peak_rss_bytes"], "load_seconds": r["load_seconds"], "runtime": r["runtime"],
            "path": r["path"],
        })
    stages = {name: read_json(ctx.stage_dir(name) / "stage.json") for name in DEPENDS}
    first = next(r for r in rows)
    return {
        "name": cfg.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config_hash": cfg.hash(),
        "reference": REFERENCE,
        "target": {"name": bench["target"], "threads": first["threads"], "batch_size": first["batch_size"],
                   "sequence_length": first["sequence_length"]},
        "eval": {"split": bench["eval_split"], "sentences": first["eval_sentences"]},
        "distill": {"temperature": cfg.distill.temperature, "alpha": cfg.distill.alpha},
        "quantize": stages["quantize"]["metrics"],
        "student": stages["student"]["metrics"],
        "vocab_trim": stages["trim"]["metrics"],
        "mobile": mobile.summary(stages["mobile"]["metrics"]),
        "distillation_gain": {
            f"student vs {base}": paired_difference(correct["student"], correct[base])
            for base in ("student-ce", "student-init") if base in correct
        },
        "stage_seconds": {name: s["seconds"] for name, s in stages.items()},
        "environment": read_json(ctx.run_dir / "env.json"),
        "variants": variants,
    }


def markdown(report: dict) -> str:
    t = report["target"]
    env = report["environment"]
    lines = [
        f"# compress report: {report['name']}",
        "",
        f"Evaluated on {report['eval']['sentences']} sentences of the `{report['eval']['split']}` split. "
        f"Latency on CPU ({env['cpu']}, {t['threads']} threads), batch {t['batch_size']}, sequence length "
        f"{t['sequence_length']}, after warm-up, each variant in a fresh process. Ratios are against the "
        f"teacher in PyTorch fp32. Distillation: T={report['distill']['temperature']}, alpha={report['distill']['alpha']}.",
        "",
        "| variant | format | precision | parameters | size (MB) | accuracy | retention | agreement | speedup | "
        "p50 (ms) | p90 (ms) | p99 (ms) | peak memory (MiB) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in report["variants"]:
        lat = v["latency_ms"]
        lines.append(
            f"| {v['name']} | {v['format']} | {v['precision']} | {v['parameters'] / 1e6:.1f}M | {v['size_bytes'] / 1e6:.1f} | "
            f"{v['accuracy']:.4f} | {v['retention']:.1%} | {v['agreement_with_teacher']:.1%} | {v['speedup']:.2f}x | "
            f"{lat['p50']:.2f} | {lat['p90']:.2f} | {lat['p99']:.2f} | {v['peak_memory_bytes'] / 2**20:.0f} |"
        )
    for name, gain in report["distillation_gain"].items():
        lo, hi = gain["ci95"]
        lines += ["", f"Distillation gain, {name}: {gain['difference'] * 100:+.2f} points of accuracy "
                  f"(95% paired bootstrap interval {lo * 100:+.2f} to {hi * 100:+.2f}; {gain['wins']} sentences won, "
                  f"{gain['losses']} lost)."]
    q = report["quantize"]
    if q.get("enabled"):
        lines += ["", f"int8: ONNX Runtime dynamic quantization for `{q['isa']}`, per-channel {q['per_channel']}."]
    lines += mobile_markdown(report["mobile"])
    lines += ["", "Peak memory is the peak RSS of a process that loads the variant and runs it (ONNX Runtime arena on; "
              "PyTorch variants include the torch runtime itself).", "",
              "Stage wall times (s): " + ", ".join(f"{k} {v}" for k, v in report["stage_seconds"].items()), ""]
    return "\n".join(lines)


def run(cfg, ctx) -> dict:
    report = build(cfg, ctx)
    write_json(ctx.run_dir / "report.json", report)
    write_text(ctx.run_dir / "report.md", markdown(report))
    return {"report": str(ctx.run_dir / "report.json")}


def mobile_markdown(section: dict) -> list[str]:
    """The ORT-format (mobile) section of report.md: size, parity with the .onnx, what NNAPI and CoreML could run."""
    if not section.get("enabled"):
        return []
    lines = ["", "## ORT format (ONNX Runtime Mobile)", "",
             f"`model.ort` {section['ort_bytes'] / 1e6:.2f} MB, converted from {section['variant']} "
             f"({section['onnx_bytes'] / 1e6:.2f} MB .onnx) with optimization level {section['optimization_level']}, "
             f"{section['optimization_style']} style, for {section['target_platform']}. Logits against the .onnx "
             f"(atol {section['atol']:g}):", ""]
    for c in section["parity"]:
        mark = "ok" if c["max_abs_diff"] <= section["atol"] else "FAIL"
        lines.append(f"- {mark}: {c['shape']}, max diff {c['max_abs_diff']:.2e}, top-1 agreement "
                     f"{c['top1_agreement']:.1%}, cosine >= {c['min_cosine']:.6f}")
    lines += ["", "ONNX Runtime's mobile usability check (nodes an execution provider could take, as the model is"
              + (f"; inputs {', '.join(section['dynamic_inputs'])} have dynamic shapes):" if section["dynamic_inputs"] else "):"),
              "", "| execution provider | partitions | nodes supported | suitability | with fixed shapes | unsupported ops |",
              "|---|---:|---:|---|---|---|"]
    for ep in section["execution_providers"].values():
        fixed = ep.get("with_fixed_shapes")
        fixed_text = (f"{fixed['partitions']} partitions, {fixed['supported_nodes']}/{ep['nodes']} nodes, {fixed['suitability']}"
                      if fixed else "-")
        ops = ", ".join(op.removeprefix("ai.onnx:") for op in ep["unsupported_ops"]) or "none"
        lines.append(f"| {ep['name']} | {ep['partitions']} | {ep['supported_nodes']}/{ep['nodes']} | {ep['suitability']} | "
                     f"{fixed_text} | {ops} |")
    advice = ("NNAPI or CoreML may help: compare them with the CPU execution provider on the device."
              if section["try_nnapi_or_coreml"] else "ONNX Runtime rates NNAPI and CoreML unsuitable for this model (too "
              "many partitions, or too few nodes supported): use the CPU execution provider.")
    package = section["mobile_package"]
    if package.get("checked"):
        advice += (" The reduced mobile package runs every operator." if package["usable"] else
                   f" Operators missing from the reduced mobile package: {', '.join(package['ops_not_in_package'])}.")
    return lines + ["", advice]
