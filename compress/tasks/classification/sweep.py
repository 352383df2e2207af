"""The ``sweep_figures`` hook of a classifier: what a sweep (compress/reports/sweep.py) keeps of one point's
report.json, and how its table and plots name the figures.

A point's accuracy is its distilled student's (PyTorch fp32: what distillation made, before quantization); its
size and p50 latency are those of its deployed variant: the first ONNX int8 variant when the run quantizes, else
the fp32 ONNX graph.
"""

from __future__ import annotations

from compress.records import Report, Variant
from compress.reports.sweep import describe_student

METRIC = {
    "key": "accuracy",  # the point's figure the temperature curve draws (higher is better)
    "name": "accuracy",
    "format": "f4",
    "axis": "accuracy, PyTorch fp32 student",
    "ci95": "accuracy_ci95",
    "retention_axis": "retention (accuracy / teacher's)",
    "note": "Accuracy and retention (against the teacher) are the distilled student's in PyTorch fp32; size and p50 "
            "latency are its deployed variant's (ONNX int8 when quantized, else ONNX fp32).",
    "columns": [["parameters", "parameters", "params"], ["accuracy", "accuracy", "f4"], ["retention", "retention", "pct"],
                ["variant", "variant", "str"], ["size (MB)", "size_bytes", "mb"],
                ["variant accuracy", "variant_accuracy", "f4"], ["p50 (ms)", "p50_ms", "f2"]],
    "tables": [["accuracy", "Accuracy", "f4"]],
}


def figures(report: Report) -> dict:
    """{"metric": how the figures are named, "teacher": the teacher's, "point": the point's}."""
    student = report.variant("student")
    onnx = [v for v in report.variants if v.role == "student" and v.format == "onnx"]
    int8 = [v for v in onnx if v.precision == "int8"]
    deployed = (int8 or onnx or [student])[0]

    def short(v: Variant) -> dict:
        return {"name": v.name, "precision": v.precision, "size_bytes": v.size_bytes, "accuracy": v.accuracy,
                "accuracy_ci95": v.get("accuracy_ci95"), "retention": v.retention, "p50_ms": v.latency_ms.p50}

    distill = report.get("distill") or {}
    point = {
        "temperature": distill["temperature"], "alpha": distill["alpha"],
        "student": describe_student(report.get("student") or {}, report.get("refine")), "parameters": student.parameters,
        "accuracy": student.accuracy, "accuracy_ci95": student.get("accuracy_ci95"), "retention": student.retention,
        "teacher_accuracy": report.variant(report.reference).accuracy,
        "variant": deployed.name, "size_bytes": deployed.size_bytes, "variant_accuracy": deployed.accuracy,
        "variant_retention": deployed.retention, "p50_ms": deployed.latency_ms.p50,
        "variants": [short(v) for v in onnx],
        "distill_seconds": report.stage_seconds.get("distill"),
    }
    return {"metric": METRIC, "teacher": teacher(report), "point": point}


def teacher(report: Report) -> dict:
    t, onnx = report.variant(report.reference), report.variant("teacher-onnx")
    evaluation = report.get("eval") or {}
    text = (f"Teacher: accuracy {t.accuracy:.4f} on {evaluation.get('sentences')} sentences of the "
            f"`{evaluation.get('split')}` split, {t.parameters / 1e6:.1f}M parameters.")
    return {"accuracy": t.accuracy, "accuracy_ci95": t.get("accuracy_ci95"), "parameters": t.parameters,
            "size_bytes": t.size_bytes, "p50_ms": t.latency_ms.p50,
            "onnx_size_bytes": onnx.size_bytes if onnx else None, "onnx_p50_ms": onnx.latency_ms.p50 if onnx else None,
            "text": text}
