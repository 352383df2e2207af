"""Distill: train the student on the frozen teacher's softened outputs mixed with the hard labels."""

from __future__ import annotations

import torch

from compress import models
from compress.data import encode, train_split
from compress.distill.losses import kd_loss
from compress.distill.train import fit, make_accelerator
from compress.envinfo import resolve_precision

NAME = "distill"
DEPENDS = ("teacher", "student")
CONFIG = ("seed", "data", "distill")


def run(cfg, ctx) -> dict:
    dcfg = cfg.distill
    teacher, _ = models.load_saved(ctx.stage_dir("teacher") / "model")
    student, tokenizer = models.load_saved(ctx.stage_dir("student") / "model")
    data = encode(tokenizer, train_split(cfg), cfg.data.max_length)
    accelerator = make_accelerator(ctx.device, resolve_precision(dcfg.train.precision, ctx.device))
    teacher.to(accelerator.device).eval().requires_grad_(False)  # frozen: eval mode, no gradients

    def loss_fn(model, batch):
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        with torch.no_grad(), accelerator.autocast():
            teacher_logits = teacher(**inputs).logits
        student_logits = model(**inputs).logits
        return kd_loss(student_logits, teacher_logits, batch["labels"], dcfg.temperature, dcfg.alpha)

    ctx.console.print(f"distill: T={dcfg.temperature}, alpha={dcfg.alpha}, {len(data)} sentences")
    metrics = fit(student, data, tokenizer.pad_token_id, dcfg.train, accelerator, cfg.seed, loss_fn, "distill", ctx.console)
    models.save(student.cpu(), tokenizer, ctx.out / "model")
    return {"temperature": dcfg.temperature, "alpha": dcfg.alpha, "train": metrics}
