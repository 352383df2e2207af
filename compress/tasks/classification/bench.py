"""Bench: accuracy of every variant on the whole evaluation split (with a 95% bootstrap interval), the shipped and
every int8 variant also one sentence at a time, unpadded, as a device runs them (compress.bench.deployed); size on
disk and the sha256 of its files; then latency, load time and peak memory of each on every target of
``bench.targets`` (compress.bench.targets) in ``bench.rounds`` interleaved rounds, each measurement in a fresh
process, with the rounds' spread and the noisy / below-resolution flags (compress.bench.rounds)."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from compress import models, onnxrun
from compress.bench import deployed, rounds, targets
from compress.bench.accuracy import accuracy_interval
from compress.bench.latency import LatencyStats, latency_input, measure
from compress.bench.torch_model import torch_logits
from compress.data import Encoded, eval_split
from compress.errors import CompressError
from compress.io import dir_size, files_sha256, read_json, write_json
from compress.layout import RESULTS_FILE
from compress.quant.gpu import load_bnb
from compress.quant.torch_int8 import RECIPE, load, weight_files

NAME = "bench"
VERSION = 5  # 2: targets (cpu, mobile, gpu), min_seconds, accuracy intervals, repeatability; 3: the repeat right after;
# 4: the shipped and the int8 variants also scored at batch 1, unpadded; 5: interleaved rounds (bench.rounds) replace
# the repeat, with spreads and flags; sha256 of each variant
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

    @property
    def identity_files(self) -> list[Path]:
        """The files whose bytes make the model: its weights, and a PyTorch folder's config and int8 recipe."""
        extra = [self.path / n for n in ("config.json", RECIPE)] if self.format == "pytorch" else []
        return self.weights + [p for p in extra if p.is_file()]

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
    measured = variants(ctx)
    results, params, teacher_pred, queries, jobs = [], {}, None, {}, []
    for v in measured:
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
            "sha256": files_sha256(v.identity_files),
            "parameters": params[v.name],
            "size_bytes": sum(dir_size(p) for p in v.weights),
            "accuracy": round(float(correct.mean()), 5),
            "accuracy_ci95": [round(lo, 5), round(hi, 5)],
            "agreement_with_teacher": round(float((pred == teacher_pred).mean()), 5),
            "eval_sentences": len(split),
            **(deployed.figures(alone.argmax(-1), pred, labels) if batch1 else {}),
            "measurements": {},
            "predictions": pred.tolist(),
        }
        ctx.console.print(f"{v.name:<13} acc {row['accuracy']:.4f} [{lo:.4f}, {hi:.4f}]"
                          + (f", batch 1 unpadded {row['accuracy_batch1']:.4f} ({row['changed_at_batch1']} sentences "
                             "classified otherwise)" if batch1 else "")
                          + f"  size {row['size_bytes'] / 1e6:.1f} MB")
        mine = []
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
                mine.append(Job(v, row, case, how, queries[key]))
        if not mine:
            why = "; ".join(f"{t}: {skipped.get(t) or not_run[t].get(v.name)}" for t in by_target)
            raise CompressError(f"bench: {v.name} could not be measured on any target ({why}); add a target it runs "
                                "on to bench.targets")
        jobs += mine
        results.append(row)
    how_measured = measure_rounds(ctx, bcfg, jobs)
    for v, row in zip(measured, results):
        home = next((c.key for c in by_target.get(targets.home(v), []) if c.key in row["measurements"]),
                    next(iter(row["measurements"])))
        row.update({"measured_on": home, **{k: row["measurements"][home][k] for k in HOME_FIELDS}})
    write_json(ctx.out / RESULTS_FILE, {
        "target": "cpu", "eval_split": split.name, "labels": split.labels,
        "targets": [{"name": t, "status": "skipped" if t in skipped else "measured", "reason": skipped.get(t),
                     "cases": [c.to_dict() for c in cases], "not_run": not_run[t]} for t, cases in by_target.items()],
        "variants": results, "latency_rounds": how_measured, "environment": read_json(ctx.layout.env)})
    flagged = sorted({r["name"] for r in results for m in r["measurements"].values() if m["flags"]})
    return {"variants": [r["name"] for r in results], "eval_sentences": len(split),
            "targets": {t: "skipped" if t in skipped else "measured" for t in by_target},
            "rounds": bcfg.rounds, "flagged": flagged}


@dataclass
class Job:
    """One measurement: a variant on one target case, taken once per round."""

    variant: Variant
    row: dict  # the variant's row of results.json: its measurement goes to row["measurements"][case.key]
    case: targets.Case
    how: targets.Plan
    query: list[list[int]]


def measure_rounds(ctx, bcfg, jobs: list[Job]) -> dict:
    """Every job in ``bench.rounds`` interleaved rounds (round r measures every job once, in order, then round
    r+1), each measurement in a fresh process; then each job's measurement from its rounds (compress.bench.rounds),
    into its row. Returns how they were measured: rounds, tolerance, timer, the machine before and after."""
    clock, before = rounds.timer(), rounds.machine()
    taken: list[list[dict]] = [[] for _ in jobs]
    for r in range(bcfg.rounds):
        for i, job in enumerate(jobs):
            label = f"round {r + 1}/{bcfg.rounds}: latency and memory of {job.variant.name} on {job.case.key}"
            taken[i].append(measure_case(ctx, bcfg, job, label))
    after = rounds.machine()
    for job, ms in zip(jobs, taken):
        m = combine_case(ms, bcfg.noise_tolerance, clock["floor_ms"])
        job.row["measurements"][job.case.key] = m
        lo, hi = m["p50_range_ms"]
        ctx.console.print(f"{job.variant.name:<13} {job.case.key:<11} p50 {m['latency_ms']['p50']:.3f} ms (rounds "
                          f"{lo:.3f}-{hi:.3f}), p99 {m['latency_ms']['p99']:.2f} ms, peak RSS "
                          f"{m['peak_rss_bytes'] / 2**20:.0f} MiB ({m['model_file']}){rounds.tag(m['flags'])}")
    ctx.console.print(f"bench: {bcfg.rounds} interleaved rounds; load average {before['load_average']} before, "
                      f"{after['load_average']} after; CPU governor {before['governor']}")
    return {"rounds": bcfg.rounds, "noise_tolerance": bcfg.noise_tolerance, "timer": clock,
            "machine": {"before": before, "after": after}}


# the figures of a variant's home case, kept at the top of its row (and of report.json) as before targets existed
HOME_FIELDS = ("runtime", "threads", "batch_size", "sequence_length", "load_seconds", "peak_rss_bytes", "latency_ms",
               "queries", "throughput", "cpu_mem_arena", "rounds", "p50_rounds_ms", "p50_range_ms", "relative_spread",
               "flags")


def mobile_model(ctx) -> tuple[Path | None, str | None]:
    """(model.ort, the variant it was converted from) from the mobile stage, or (None, None) when it is off."""
    metrics = read_json(ctx.layout.record("mobile"))["metrics"]
    if not metrics.get("enabled"):
        return None, None
    return ctx.layout.ort_model, metrics["variant"]


def measure_case(ctx, bcfg, job: Job, label: str) -> dict:
    """Latency, load time and peak RSS of one job, once, in a fresh process."""
    v, how = job.variant, job.how
    with ctx.console.status(f"{label} in a fresh process"):
        timing = measure(v.format, how.path, job.query, bcfg.warmup, bcfg.queries, how.threads, device=how.device,
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
    }


def combine_case(per_round: list[dict], tolerance: float, floor_ms: float) -> dict:
    """One measurement from its rounds: latencies and throughput the median over rounds, load time the median,
    peak RSS the largest, queries and timed seconds summed; the rounds' spread and flags (compress.bench.rounds)."""
    first = per_round[0]
    return {
        **{k: first[k] for k in ("runtime", "threads", "batch_size", "sequence_length", "warmup", "device",
                                 "model_file", "cpu_mem_arena")},
        "load_seconds": round(statistics.median(m["load_seconds"] for m in per_round), 3),
        "timed_seconds": round(sum(m["timed_seconds"] for m in per_round), 3),
        "peak_rss_bytes": max(m["peak_rss_bytes"] for m in per_round),
        "queries": sum(m["queries"] for m in per_round),
        "throughput": round(statistics.median(m["throughput"] for m in per_round), 2),
        **rounds.combine([m["latency_ms"] for m in per_round], tolerance, floor_ms),
    }
