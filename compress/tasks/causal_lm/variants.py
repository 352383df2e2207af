"""The variants of a causal-LM run that the score and bench stages measure, found in the run folder: the
teacher (and teacher-onnx when it was exported), the distilled student and its ONNX export, the quantized
variants of quantize/variants.json, and the baselines student-init and student-ce when the baseline stage ran."""

from __future__ import annotations

from pathlib import Path

from compress.io import read_json
from compress.layout import ONNX_FILE


def variants(ctx) -> list[dict]:
    out = [{"name": "teacher", "role": "teacher", "format": "pytorch", "precision": "fp32", "path": ctx.layout.model("teacher")}]
    if (ctx.layout.export_dir("teacher") / ONNX_FILE).is_file():  # export.teacher: false exports the student only
        out.append({"name": "teacher-onnx", "role": "teacher", "format": "onnx", "precision": "fp32",
                    "path": (ctx.layout.export_dir("teacher") / ONNX_FILE), "parent": "teacher"})
    out += [{"name": "student", "role": "student", "format": "pytorch", "precision": "fp32", "path": ctx.layout.model("distill")},
           {"name": "student-onnx", "role": "student", "format": "onnx", "precision": "fp32",
            "path": (ctx.layout.export_dir("student") / ONNX_FILE), "parent": "student"}]
    listing = ctx.layout.variants_file
    for e in read_json(listing) if listing.is_file() else []:
        out.append({**e, "role": "student", "path": ctx.layout.stage("quantize") / e["path"]})
    ce = ctx.layout.baseline_model
    if ce.is_dir():
        out.append({"name": "student-init", "role": "baseline", "format": "pytorch", "precision": "fp32",
                    "path": ctx.layout.model("student")})
        out.append({"name": "student-ce", "role": "baseline", "format": "pytorch", "precision": "fp32", "path": ce})
    return out


def folder(v: dict) -> Path:
    """The folder of a variant's model (and its tokenizer)."""
    return v["path"] if v["format"] == "pytorch" else v["path"].parent
