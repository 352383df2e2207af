"""The ``sweep_figures`` hook of a causal LM: what a sweep (compress/reports/sweep.py) keeps of one point's
report.json, and how its table and plots name the figures.

A point's quality is its distilled student's (PyTorch fp32) perplexity retention, the teacher's perplexity over
the student's (1 = as good as the teacher, higher is better): on WikiText-2 when the run scores (``scores``), else
on the held-out text of the bench stage; with scores, the mean zero-shot accuracy of the sets and its retention
beside it. The frontier places every ONNX variant of the student (fp32, int8, int4) by the same retention against
its size on disk; size, time to first token and tokens/s are those of the deployed variant (the first quantized
one when the run quantizes, else the fp32 ONNX decoder).
"""

from __future__ import annotations

from compress.records import Report, Variant
from compress.reports.sweep import describe_student

_COMMON = [["parameters", "parameters", "params"], ["perplexity", "perplexity", "f2"],
           ["perplexity retention", "perplexity_retention", "pct"]]
_DEPLOYED = [["variant", "variant", "str"], ["size (MB)", "size_bytes", "mb"], ["variant retention", "variant_retention", "pct"],
             ["first token (ms)", "time_to_first_token_ms", "f2"], ["tokens/s", "tokens_per_second", "f1"]]
HELD_OUT = {
    "key": "perplexity_retention",
    "name": "perplexity retention",
    "format": "pct",
    "axis": "held-out perplexity retention (teacher / student)",
    "ci95": None,
    "retention_axis": "held-out perplexity retention (teacher / variant)",
    "note": "Perplexity is the distilled student's (PyTorch fp32) on the held-out text; retention is the teacher's "
            "perplexity over it (higher is better); variant, size and speed are the deployed variant's (the first "
            "quantized ONNX decoder when the run quantizes, else ONNX fp32), its retention on the same text.",
    "columns": _COMMON + _DEPLOYED,
    "tables": [["perplexity_retention", "Perplexity retention", "pct"]],
}
SCORED = {
    "key": "wikitext_retention",
    "name": "WikiText-2 perplexity retention",
    "format": "pct",
    "axis": "WikiText-2 perplexity retention (teacher / student)",
    "ci95": None,
    "retention_axis": "WikiText-2 perplexity retention (teacher / variant)",
    "note": "WikiText-2 perplexity and bits per byte, the mean zero-shot accuracy of the scored sets and their "
            "retention (against the teacher, on the same items) are the distilled student's in PyTorch fp32; "
            "perplexity is on the held-out text; variant, size and speed are the deployed variant's (the first "
            "quantized ONNX decoder when the run quantizes, else ONNX fp32), its retention on WikiText-2.",
    "columns": _COMMON + [["WikiText-2 perplexity", "wikitext_perplexity", "f2"], ["bits/byte", "wikitext_bits_per_byte", "f3"],
                          ["WikiText-2 retention", "wikitext_retention", "pct"], ["zero-shot mean", "zeroshot_mean", "f4"],
                          ["zero-shot retention", "zeroshot_retention", "pct"]] + _DEPLOYED,
    "tables": [["wikitext_retention", "WikiText-2 perplexity retention", "pct"],
               ["zeroshot_mean", "Mean zero-shot accuracy", "f4"]],
}


def figures(report: Report) -> dict:
    """{"metric": how the figures are named, "teacher": the teacher's, "point": the point's}."""
    scores = report.get("scores") or {}
    against = scores.get("against_teacher") or {}
    scored = bool(against.get("student", {}).get("wikitext"))
    metric = SCORED if scored else HELD_OUT
    student = report.variant("student")
    onnx = [v for v in report.variants if v.role == "student" and v.format == "onnx"]
    quantized = [v for v in onnx if v.precision != "fp32"]
    deployed = (quantized or onnx or [student])[0]

    def retention(v: Variant) -> float | None:
        if scored:
            return wikitext_retention(against.get(v.name))
        return v.perplexity_retention

    def short(v: Variant) -> dict:
        mean = (against.get(v.name) or {}).get("mean") or {}
        return {"name": v.name, "precision": v.precision, "size_bytes": v.size_bytes, "perplexity": v.perplexity,
                "retention": retention(v), "zeroshot_mean": mean.get("value"),
                "time_to_first_token_ms": v.time_to_first_token_ms, "tokens_per_second": v.tokens_per_second}

    distill = report.get("distill") or {}
    point = {
        "temperature": distill["temperature"], "alpha": distill["alpha"],
        "student": describe_student(report.get("student") or {}), "parameters": student.parameters,
        "perplexity": student.perplexity, "perplexity_retention": student.perplexity_retention,
        "retention": retention(student),
        "variant": deployed.name, "size_bytes": deployed.size_bytes, "variant_retention": retention(deployed),
        "time_to_first_token_ms": deployed.time_to_first_token_ms, "tokens_per_second": deployed.tokens_per_second,
        "variants": [short(v) for v in onnx],
        "distill_seconds": report.stage_seconds.get("distill"), "score_seconds": report.stage_seconds.get("score"),
    }
    if scored:
        mine = against["student"]
        mean = mine.get("mean") or {}
        point.update({"wikitext_perplexity": mine["wikitext"]["perplexity"],
                      "wikitext_bits_per_byte": mine["wikitext"]["bits_per_byte"],
                      "wikitext_retention": wikitext_retention(mine),
                      "zeroshot_mean": mean.get("value"), "zeroshot_retention": mean.get("retention"),
                      "zeroshot_sets": mean.get("sets")})
    return {"metric": metric, "teacher": teacher(report, against if scored else None), "point": point}


def wikitext_retention(compared: dict | None) -> float | None:
    """The teacher's WikiText-2 perplexity over the variant's (retention.compare's ``wikitext``), or None."""
    w = (compared or {}).get("wikitext")
    return w["reference_perplexity"] / w["perplexity"] if w else None


def teacher(report: Report, against: dict | None) -> dict:
    t, onnx = report.variant(report.reference), report.variant("teacher-onnx")
    evaluation = report.get("eval") or {}
    out = {"parameters": t.parameters, "size_bytes": t.size_bytes, "perplexity": t.perplexity,
           "perplexity_retention": 1.0, "onnx_size_bytes": onnx.size_bytes if onnx else None}
    tokens = evaluation.get("tokens")
    text = (f"Teacher: {t.parameters / 1e6:.1f}M parameters, perplexity {t.perplexity:.2f} on "
            + (f"{tokens:,} held-out tokens" if isinstance(tokens, int) else "the held-out text"))
    if against:
        mine = against[report.reference]
        mean = mine.get("mean") or {}
        out.update({"wikitext_perplexity": mine["wikitext"]["perplexity"], "wikitext_retention": 1.0,
                    "wikitext_bits_per_byte": mine["wikitext"]["bits_per_byte"], "zeroshot_mean": mean.get("value"),
                    "zeroshot_retention": 1.0 if mean else None})
        text += f", WikiText-2 perplexity {out['wikitext_perplexity']:.2f}"
        if mean:
            text += f", mean zero-shot accuracy {mean['value']:.4f} ({', '.join(mean['sets'])})"
    out["text"] = text + "."
    return out
