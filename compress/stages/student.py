"""Student: built from the teacher's layers, from a smaller config, or a pretrained smaller model."""

from __future__ import annotations

from compress import models, students

NAME = "student"
DEPENDS = ("teacher",)
CONFIG = ("student",)


def run(cfg, ctx) -> dict:
    if cfg.task == "causal-lm":
        from compress.llm import stages as llm

        return llm.student(cfg, ctx)

    teacher, tokenizer = models.load_saved(ctx.stage_dir("teacher") / "model")
    student, tokenizer, info = students.build(cfg.student, teacher, tokenizer)
    models.save(student, tokenizer, ctx.out / "model")
    t, s = models.count_parameters(teacher), models.count_parameters(student)
    described = ", ".join(f"{k} {v}" for k, v in info.items())
    ctx.console.print(f"student: {described}; {s / 1e6:.1f}M parameters ({s / t:.0%} of the teacher)")
    return {**info, "parameters": s, "teacher_parameters": t}
