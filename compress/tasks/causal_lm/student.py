"""Student of a causal LM: layers of the teacher, a smaller config, or a smaller pretrained decoder. -> student/model"""

from __future__ import annotations

from compress import models
from compress.layout import MODEL_DIR
from compress.tasks.causal_lm import lm

NAME = "student"
DEPENDS = ("teacher",)
CONFIG = ("student", "seed")


def run(cfg, ctx) -> dict:
    teacher_model, tokenizer = lm.load_saved(ctx.layout.model("teacher"))
    model, student_tokenizer, info = lm.build_student(cfg.student, teacher_model, tokenizer)
    models.save(model, student_tokenizer, ctx.out / MODEL_DIR)
    t, s = models.count_parameters(teacher_model), models.count_parameters(model)
    ctx.console.print(f"student: {', '.join(f'{k} {v}' for k, v in info.items())}; {s / 1e6:.1f}M parameters "
                      f"({s / t:.0%} of the teacher)")
    return {**info, "parameters": s, "teacher_parameters": t}
