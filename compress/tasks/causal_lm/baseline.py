"""The student of a causal LM on next-token CE only (the distillation's text, steps and seed), so the report
can say what the teacher's distributions bought.                                      -> baseline/student-ce"""

from __future__ import annotations

from compress import models
from compress.distill.train import accelerator_for, fit
from compress.layout import BASELINE_MODEL
from compress.tasks.causal_lm import lm
from compress.tasks.causal_lm.objectives import lm_cross_entropy
from compress.tasks.causal_lm.text import load_text, train_rows

NAME = "baseline"
DEPENDS = ("student",)
DISTRIBUTED = True
CONFIG = ("seed", "data", "baselines", "distill.train")


def run(cfg, ctx) -> dict:
    if not cfg.baselines.enabled:
        ctx.console.print("baseline: disabled (baselines.enabled: false)")
        return {"enabled": False}
    model, tok = lm.load_saved(ctx.layout.model("student"))
    data = train_rows(cfg, tok, load_text(cfg))
    ctx.console.print(f"baseline: the student on next-token CE only, {len(data)} rows (the distillation's text, "
                      "steps and seed)")
    tcfg = cfg.distill.train
    metrics = fit(model, data, tok.pad_token_id, tcfg, accelerator_for(tcfg, ctx), cfg.seed, lm_cross_entropy,
                  "next-token CE only", ctx.console, checkpoint_dir=ctx.checkpoint_dir)
    models.save(model.cpu(), tok, ctx.out / BASELINE_MODEL)
    return {"enabled": True, "train": metrics}
