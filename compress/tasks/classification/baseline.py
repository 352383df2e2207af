"""Baseline: the same student trained on hard labels only (same data, steps and seed as
distillation), so the report can say how much the teacher's soft targets bought."""

from __future__ import annotations

from compress import models
from compress.data import encode
from compress.distill.augment import training_split
from compress.distill.train import accelerator_for, fit, validation_evaluator
from compress.layout import BASELINE_MODEL
from compress.tasks.classification.distilling import cross_entropy

NAME = "baseline"
DEPENDS = ("student",)
DISTRIBUTED = True  # runs on every process under accelerate launch
CONFIG = ("seed", "data", "baselines", "distill.train", "distill.augment")


def run(cfg, ctx) -> dict:
    if not cfg.baselines.enabled:
        ctx.console.print("baseline: disabled (baselines.enabled: false)")
        return {"enabled": False}
    tcfg = cfg.distill.train
    student, tokenizer = models.load_saved(ctx.layout.model("student"))
    data = encode(tokenizer, training_split(cfg, tokenizer, hard_labels_for_copies=True), cfg.data.max_length)
    ctx.console.print(f"baseline: the student on hard labels only, {len(data)} sentences")
    metrics = fit(student, data, tokenizer.pad_token_id, tcfg, accelerator_for(tcfg, ctx), cfg.seed, cross_entropy,
                  "hard labels only", ctx.console, evaluate=validation_evaluator(cfg, tokenizer, ctx.device),
                  checkpoint_dir=ctx.checkpoint_dir)
    models.save(student.cpu(), tokenizer, ctx.out / BASELINE_MODEL)
    return {"enabled": True, "train": metrics}
