"""Student: built from the teacher's layers, from a smaller config, or a pretrained smaller model."""

from __future__ import annotations

from compress import models, students
from compress.data import train_split
from compress.layout import MODEL_DIR

NAME = "student"
DEPENDS = ("teacher",)
CONFIG = ("student", "data", "seed")  # data and seed: the sentences a pruned student's neurons are ranked on


def run(cfg, ctx) -> dict:

    teacher, tokenizer = models.load_saved(ctx.layout.model("teacher"))
    scfg = cfg.student
    prunes = scfg.method == "layers" and (scfg.intermediate_size is not None or scfg.num_attention_heads is not None)
    student, tokenizer, info = students.build(scfg, teacher, tokenizer, train_split(cfg) if prunes else None,
                                              cfg.data.max_length)
    models.save(student, tokenizer, ctx.out / MODEL_DIR)
    t, s = models.count_parameters(teacher), models.count_parameters(student)
    described = ", ".join(f"{k} {v}" for k, v in info.items() if not k.startswith("pruned"))
    described += students.describe_pruning(info)
    ctx.console.print(f"student: {described}; {s / 1e6:.1f}M parameters ({s / t:.0%} of the teacher)")
    return {**info, "parameters": s, "teacher_parameters": t}
