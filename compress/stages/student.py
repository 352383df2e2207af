"""Student: a copy of the teacher that keeps some of its layers (DistilBERT-style)."""

from __future__ import annotations

from compress import models

NAME = "student"
DEPENDS = ("teacher",)
CONFIG = ("student",)


def run(cfg, ctx) -> dict:
    teacher, tokenizer = models.load_saved(ctx.stage_dir("teacher") / "model")
    student, kept = models.student_from_layers(teacher, cfg.student.layers)
    models.save(student, tokenizer, ctx.out / "model")
    t, s = models.count_parameters(teacher), models.count_parameters(student)
    ctx.console.print(f"student: teacher layers {kept} kept, {s / 1e6:.1f}M parameters ({s / t:.0%} of the teacher)")
    return {"layers": kept, "parameters": s, "teacher_parameters": t}
