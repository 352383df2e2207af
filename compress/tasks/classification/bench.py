"""Bench: accuracy of every variant on the whole evaluation split (with a 95% bootstrap interval), the shipped and
every int8 variant also one sentence at a time, unpadded, as a device runs them (compress.bench.deployed); then
latency, load time and peak memory of each on every target of ``bench.targets`` (compress.bench.targets), each
measurement in a fresh process, size on disk, and one measurement repeated to show how far two agree."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from compress import models, onnxrun
from compress.bench import deployed, targets
from compress.bench.accuracy import accuracy_interval
from compress.bench.latency import LatencyStats, latency_input, measure
from compress.bench.torch_model import torch_logits
from compress.data import Encoded, eval_split
from compress.errors import CompressError
from compress.io import dir_size, read_json, write_json
from compress.layout import RESULTS_FILE
from compress.quant.gpu import load_bnb
from compress.quant.torch_int8 import load, weight_files

NAME = "bench"
VERSION = 4  # 2: targets (cpu, mobile, gpu), min_seconds, accuracy intervals, repeatability; 3: the repeat right after
# the first measurement; 4: the shipped and the int8 variants also scored at batch 1, unpadded
DEPENDS = ("teacher", "student", "distill", "refine", "baseline", "trim", "export", "quantize", "mobile")
CONFIG = ("bench", "data", "ship.variant")


@dataclass
class Variant:
    name: str
    role: str  # teacher | student
    format: str  # pytorch | onnx
    precision: str  # fp32 | int8 | fp16 | nf4
    path: Path  # folder (pytorch) or .onnx file
    parent: str | None = None
    method: str | None = None  # how a quantized variant was made (quantize.variants[].method)
    device: str = "cpu"  # cuda: GPU-only variants, measured there
    loader: str = "saved"  # pytorch: saved (fp32 safetensors) | torch_int8 | bnb
    providers: list[str] | None = None  # onnx: execution providers (None = CPU)

    @property
    def tokenizer_dir(self) -> Path:
        return self.path if self.format == "pytorch" else self.path.parent

    @property
    def weights(self) -> list[Path]:
        if self.loader == "torch_int8":
            return weight_files(self.path)
        return sorted(self.path.glob("*.safetensors")) if self.format == "pytorch" else [self.path]

    def load_torch(self):
        """(model, tokenizer) of a PyTorch variant, on its device."""
        if self.loader == "torch_int8":
            return load(self.path)
        if self.loader == "bnb":
            return load_bnb(self.path)
        return models.load_saved(self.path)


def variants(ctx) -> list[Variant]:
    out = [
        Variant("teacher", "teacher", "pytorch", "fp32", ctx.layout.model("teacher")),
        Variant("teacher-onnx", "teacher", "onnx", "fp32", ctx.layout.export_onnx("teacher"), "teacher"),
        Variant("student", "student", "pytorch", "fp32", ctx.layout.final_student()),
        Variant("student-onnx", "student", "onnx", "fp32", ctx.layout.export_onnx("student"), "student"),
    ]
    out += quantized(ctx)
    if (ctx.layout.model("refine")).is_dir():  # what the refine round (prune, distil again) changed
        out.append(Variant("student-unpruned", "baseline", "pytorch", "fp32", ctx.layout.model("distill")))
    ce = ctx.layout.baseline_model
    if ce.is_dir():  # baselines: the same student before distillation, and trained on hard labels only
        out.append(Variant("student-init", "baseline", "pytorch", "fp32", ctx.layout.model("student")))
        out.append(Variant("student-ce", "baseline", "pytorch", "fp32", ce))
    return out


def quantized(ctx) -> list[Variant]:
    """The variants the quantize stage produced, as listed in its variants.json."""

    listing = ctx.layout.variants_file
    if not listing.is_file():
        return []
    return [Variant(e["name"], "student", e["format"], e["precision"], ctx.layout.stage("quantize") / e["path"], e["parent"],
                    e["method"], e.get("device", "cpu"), e.get("loader", "saved"), e.get("providers"))
            for e in read_json(listing)]


def run(cfg, ctx) -> dict:

    from transformers import AutoTokenizer

    bcfg = cfg.bench
    split = eval_split(cfg)
    labels = np.asarray(split.labels)
    by_target = targets.cases(bcfg)
    skipped = {t: why for t in by_target if (why := targets.unavailable(t))}
    for t, why in skipped.items():
        ctx.console.print(f"bench: the {t} target is skipped: {why}")
    ort_file, shipped = mobile_model(ctx)
    not_run: dict[str, dict[str, str]] = {t: {} for t in by_target}
    results, params, teacher_pred, queries, repeat = [], {}, None, {}, None
    for v in variants(ctx):
        # Each variant reads the text with its own tokenizer (a trimmed student has its own vocabulary).
        tokenizer = AutoTokenizer.from_pretrained(v.tokenizer_dir)
        limit = min(tokenizer.model_max_length, 512)
        encoded = Encoded(tokenizer(split.texts, truncation=True, max_length=limit)["input_ids"], split.labels)
        batch1 = deployed.scored_at_batch1(v.name, v.precision, cfg.ship.variant)
        with ctx.console.status(f"accuracy of {v.name} on {len(split)} {split.name} sentences"
                                + (", batched and one at a time" if batch1 else "")):
            if v.format == "pytorch":
                model, _ = v.load_torch()
                # packed int8 weights are not parameters: a quantized model has its parent's count
                params[v.name] = params[v.parent] if v.parent else models.count_parameters(model)
                logits = torch_logits(model, encoded.input_ids, tokenizer.pad_token_id, v.device, bcfg.eval_batch_size)
                alone = deployed.torch_logits(model, encoded.input_ids, v.device) if batch1 else None
                del model
            else:
                sess = onnxrun.session(v.path, threads=bcfg.threads, providers=v.providers)
                logits = onnxrun.logits(sess, encoded.input_ids, tokenizer.pad_token_id, bcfg.eval_batch_size)
                alone = deployed.onnx_logits(sess, encoded.input_ids) if batch1 else None
                params[v.name] = params[v.parent]
                del sess
        pred = logits.argmax(-1)
        teacher_pred = pred if teacher_pred is None else teacher_pred
        correct = (pred == labels).astype(np.int8)
        lo, hi = accuracy_interval(correct)
        row = {
            **{k: str(val) if isinstance(val, Path) else val for k, val in asdict(v).items()},
            "parameters": params[v.name],
            "size_bytes": sum(dir_size(p) for p in v.weights),
            "accuracy": round(float(correct.mean()), 5),
            "accuracy_ci95": [round(lo, 5), round(hi, 5)],
            "agreement_with_teacher": round(float((pred == teacher_pred).mean()), 5),
            "eval_sentences": len(split),
            **(deployed.figures(alone.argmax(-1), pred, labels) if batch1 else {}),
            "measurements": {},
        }
        for target, cases in by_target.items():
            how = skipped.get(target) or targets.plan(v, cases[0], ort_file, shipped)  # the same at every length
            if isinstance(how, str):
                if target not in skipped:
                    not_run[target][v.name] = how
                continue
            for case in cases:
                key = (v.tokenizer_dir, case.sequence_length, case.batch_size)
                if key not in queries:
                    queries[key] = latency_input(tokenizer, split.texts, case.sequence_length, case.batch_size)
                m = measure_case(ctx, bcfg, v, case, how, queries[key])
                row["measurements"][case.key] = m
                ctx.console.print(f"{v.name:<13} {case.key:<11} {m['stats']}  peak RSS {m['peak_rss_bytes'] / 2**20:.0f} "
                                  f"MiB  ({m['model_file']})")
                m.pop("stats")
                if repeat is None and target == "cpu" and case is cases[0] and v.role == "student" and v.format == "onnx":
                    repeat = repeatability(ctx, bcfg, v, case, m, queries[key])
        home = next((c.key for c in by_target.get(targets.home(v), []) if c.key in row["measurements"]),
                    next(iter(row["measurements"]), None))
        if home is None:
            why = "; ".join(f"{t}: {skipped.get(t) or not_run[t].get(v.name)}" for t in by_target)
            raise CompressError(f"bench: {v.name} could not be measured on any target ({why}); add a target it runs "
                                "on to bench.targets")
        row.update({"measured_on": home, **{k: row["measurements"][home][k] for k in HOME_FIELDS}})
        row["predictions"] = pred.tolist()
        results.append(row)
        ctx.console.print(f"{v.name:<13} acc {row['accuracy']:.4f} [{lo:.4f}, {hi:.4f}]"
                          + (f", batch 1 unpadded {row['accuracy_batch1']:.4f} ({row['changed_at_batch1']} sentences "
                             "classified otherwise)" if batch1 else "")
                          + f"  size {row['size_bytes'] / 1e6:.1f} MB")
    write_json(ctx.out / RESULTS_FILE, {
        "target": "cpu", "eval_split": split.name, "labels": split.labels,
        "targets": [{"name": t, "status": "skipped" if t in skipped else "measured", "reason": skipped.get(t),
                     "cases": [c.to_dict() for c in cases], "not_run": not_run[t]} for t, cases in by_target.items()],
        "variants": results, "repeatability": repeat, "environment": read_json(ctx.layout.env)})
    return {"variants": [r["name"] for r in results], "eval_sentences": len(split),
            "targets": {t: "skipped" if t in skipped else "measured" for t in by_target}, "repeatability": repeat}


# the figures of a variant's home case, kept at the top of its row (and of report.json) as before targets existed
HOME_FIELDS = ("runtime", "threads", "batch_size", "sequence_length", "load_seconds", "peak_rss_bytes", "latency_ms",
               "queries", "throughput", "cpu_mem_arena")


def mobile_model(ctx) -> tuple[Path | None, str | None]:
    """(model.ort, the variant it was converted from) from the mobile stage, or (None, None) when it is off."""
    metrics = read_json(ctx.layout.record("mobile"))["metrics"]
    if not metrics.get("enabled"):
        return None, None
    return ctx.layout.ort_model, metrics["variant"]


def measure_case(ctx, bcfg, v: Variant, case: targets.Case, how: targets.Plan, query: list[list[int]]) -> dict:
    """Latency, load time and peak RSS of ``v`` on ``case``, in a fresh process."""
    with ctx.console.status(f"latency and memory of {v.name} on {case.key} in a fresh process"):
        timing = measure(v.format, how.path, query, bcfg.warmup, bcfg.queries, how.threads, device=how.device,
                         loader=v.loader, providers=how.providers, min_seconds=bcfg.min_seconds)
    stats = LatencyStats(**timing["latency"])
    arena = targets.ARENA if timing.get("cpu_mem_arena") else None
    return {
        **{k: timing[k] for k in ("runtime", "threads", "batch_size", "sequence_length", "warmup", "load_seconds",
                                  "timed_seconds", "peak_rss_bytes")},
        "device": how.device,
        "model_file": how.path.name,
        "cpu_mem_arena": arena,
        "latency_ms": {"p50": stats.p50_ms, "p90": stats.p90_ms, "p99": stats.p99_ms, "mean": stats.mean_ms},
        "queries": stats.count,
        "throughput": stats.throughput,
        "stats": stats,
    }


def repeatability(ctx, bcfg, v: Variant, case: targets.Case, first: dict, query: list[list[int]]) -> dict:
    """The first ONNX student variant measured on ``case`` a second time, in another fresh process, right after the
    first measurement (so that what the shared machine does meanwhile moves both alike): how far apart two
    measurements of one model in one run are (not a gate; the report states it)."""
    again = measure_case(ctx, bcfg, v, case, targets.plan(v, case, None, None), query)
    p50_first, p50_second = first["latency_ms"]["p50"], again["latency_ms"]["p50"]
    diff = abs(p50_second - p50_first) / p50_first
    out = {"variant": v.name, "case": case.key, "p50_first_ms": p50_first, "p50_second_ms": p50_second,
           "relative_difference": round(diff, 4), "within_10pct": diff <= 0.10}
    ctx.console.print(f"bench: repeatability: {v.name} on {case.key} measured twice, p50 {p50_first:.3f} ms then "
                      f"{p50_second:.3f} ms ({diff:.1%} apart, {'within' if out['within_10pct'] else 'NOT within'} 10%)")
    return out


