"""Bench: accuracy of every variant on the whole evaluation split, then latency and peak
memory of each in a fresh process (CPU, batch and length from ``bench``), and size on disk."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from compress import models, onnxrun
from compress.bench.latency import LatencyStats, measure
from compress.data import Encoded, eval_split
from compress.io import dir_size, read_json, write_json
from compress.stages.export import onnx_model
from compress.stages.quantize import torch_logits
from compress.stages.trim import final_student

NAME = "bench"
DEPENDS = ("teacher", "student", "distill", "baseline", "trim", "export", "quantize")
CONFIG = ("bench", "data")


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
            from compress.quant.torch_int8 import weight_files

            return weight_files(self.path)
        return sorted(self.path.glob("*.safetensors")) if self.format == "pytorch" else [self.path]

    def load_torch(self):
        """(model, tokenizer) of a PyTorch variant, on its device."""
        if self.loader == "torch_int8":
            from compress.quant.torch_int8 import load

            return load(self.path)
        if self.loader == "bnb":
            from compress.quant.gpu import load_bnb

            return load_bnb(self.path)
        return models.load_saved(self.path)


def variants(ctx) -> list[Variant]:
    out = [
        Variant("teacher", "teacher", "pytorch", "fp32", ctx.stage_dir("teacher") / "model"),
        Variant("teacher-onnx", "teacher", "onnx", "fp32", onnx_model(ctx, "teacher"), "teacher"),
        Variant("student", "student", "pytorch", "fp32", final_student(ctx)),
        Variant("student-onnx", "student", "onnx", "fp32", onnx_model(ctx, "student"), "student"),
    ]
    out += quantized(ctx)
    ce = ctx.stage_dir("baseline") / "student-ce"
    if ce.is_dir():  # baselines: the same student before distillation, and trained on hard labels only
        out.append(Variant("student-init", "baseline", "pytorch", "fp32", ctx.stage_dir("student") / "model"))
        out.append(Variant("student-ce", "baseline", "pytorch", "fp32", ce))
    return out


def quantized(ctx) -> list[Variant]:
    """The variants the quantize stage produced, as listed in its variants.json."""
    from compress.stages.quantize import MANIFEST

    listing = ctx.stage_dir("quantize") / MANIFEST
    if not listing.is_file():
        return []
    return [Variant(e["name"], "student", e["format"], e["precision"], ctx.stage_dir("quantize") / e["path"], e["parent"],
                    e["method"], e.get("device", "cpu"), e.get("loader", "saved"), e.get("providers"))
            for e in read_json(listing)]


def run(cfg, ctx) -> dict:
    from transformers import AutoTokenizer

    bcfg = cfg.bench
    split = eval_split(cfg)
    labels = np.asarray(split.labels)
    results, params, teacher_pred = [], {}, None
    for v in variants(ctx):
        # Each variant reads the text with its own tokenizer (a trimmed student has its own vocabulary).
        tokenizer = AutoTokenizer.from_pretrained(v.tokenizer_dir)
        limit = min(tokenizer.model_max_length, 512)
        encoded = Encoded(tokenizer(split.texts, truncation=True, max_length=limit)["input_ids"], split.labels)
        query = latency_input(tokenizer, split.texts, bcfg.sequence_length, bcfg.batch_size)
        with ctx.console.status(f"accuracy of {v.name} on {len(split)} {split.name} sentences"):
            if v.format == "pytorch":
                model, _ = v.load_torch()
                # packed int8 weights are not parameters: a quantized model has its parent's count
                params[v.name] = params[v.parent] if v.parent else models.count_parameters(model)
                logits = torch_logits(model, encoded.input_ids, tokenizer.pad_token_id, v.device, bcfg.eval_batch_size)
                del model
            else:
                sess = onnxrun.session(v.path, threads=bcfg.threads, providers=v.providers)
                logits = onnxrun.logits(sess, encoded.input_ids, tokenizer.pad_token_id, bcfg.eval_batch_size)
                params[v.name] = params[v.parent]
                del sess
        pred = logits.argmax(-1)
        teacher_pred = pred if teacher_pred is None else teacher_pred
        with ctx.console.status(f"latency and memory of {v.name} in a fresh process"):
            timing = measure(v.format, v.path, query, bcfg.warmup, bcfg.queries, bcfg.threads,
                             device=v.device, loader=v.loader, providers=v.providers)
        stats = LatencyStats(**timing["latency"])
        row = {
            **{k: str(val) if isinstance(val, Path) else val for k, val in asdict(v).items()},
            "parameters": params[v.name],
            "size_bytes": sum(dir_size(p) for p in v.weights),
            "accuracy": round(float((pred == labels).mean()), 5),
            "agreement_with_teacher": round(float((pred == teacher_pred).mean()), 5),
            "eval_sentences": len(split),
            **{k: timing[k] for k in ("runtime", "threads", "batch_size", "sequence_length", "load_seconds", "peak_rss_bytes")},
            "latency_ms": {"p50": stats.p50_ms, "p90": stats.p90_ms, "p99": stats.p99_ms, "mean": stats.mean_ms},
            "queries": stats.count,
            "throughput": stats.throughput,
            "predictions": pred.tolist(),
        }
        results.append(row)
        ctx.console.print(f"{v.name:<13} acc {row['accuracy']:.4f}  {stats}  peak RSS {row['peak_rss_bytes'] / 2**20:.0f} MiB  "
                          f"size {row['size_bytes'] / 1e6:.1f} MB")
    write_json(ctx.out / "results.json", {"target": "cpu", "eval_split": split.name, "labels": split.labels,
                                          "variants": results})
    return {"variants": [r["name"] for r in results], "eval_sentences": len(split)}


def latency_input(tokenizer, texts: list[str], length: int, batch: int) -> list[list[int]]:
    """``batch`` rows of exactly ``length`` real tokens: evaluation sentences joined until long enough."""
    ids: list[int] = []
    for text in texts:
        ids += tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) >= length:
            break
    while len(ids) < length - 2:  # a tiny evaluation set: repeat it
        ids += ids or [tokenizer.unk_token_id]
    row = tokenizer.build_inputs_with_special_tokens(ids[: length - 2])
    return [row] * batch
