"""Distill: train the student on the frozen teacher's softened outputs mixed with the hard labels,
optionally with hidden-state (through a learned projection where widths differ) and attention
transfer. Logit-only recipes read the teacher's outputs from the cache: the teacher runs once."""

from __future__ import annotations

from compress import models
from compress.layout import MODEL_DIR
from compress.tasks.classification.distilling import distil

NAME = "distill"
DEPENDS = ("teacher", "student")
DISTRIBUTED = True  # runs on every process under accelerate launch
CONFIG = ("seed", "data", "distill")


def run(cfg, ctx) -> dict:
    student, tokenizer = models.load_saved(ctx.layout.model("student"))
    metrics = distil(cfg, ctx, cfg.distill, ctx.layout.model("teacher"), student, tokenizer, "distill")
    models.save(student.cpu(), tokenizer, ctx.out / MODEL_DIR)
    return metrics


