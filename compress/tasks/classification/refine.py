"""Refine: prune the distilled student and distil it again (``refine:`` in the YAML; off by default).

The distilled student knows the task, so the heads and feed-forward neurons it does not use for it rank lower
than they do in the teacher's raw layers, and pruning them loses less. The pruned model is then distilled a
second time with distill's recipe, taught by the distilled student (a teacher assistant) or the teacher.
"""

from __future__ import annotations

from compress import models, students
from compress.data import train_split
from compress.layout import MODEL_DIR
from compress.tasks.classification.distilling import distil

NAME = "refine"
DEPENDS = ("teacher", "distill")
DISTRIBUTED = True  # runs on every process under accelerate launch
CONFIG = ("seed", "data", "refine", "distill")


def run(cfg, ctx) -> dict:
    rcfg = cfg.refine
    if not rcfg.enabled:
        ctx.console.print("refine: disabled (refine.enabled: false)")
        return {"enabled": False}
    distilled = ctx.layout.model("distill")
    student, tokenizer = models.load_saved(distilled)
    before = models.count_parameters(student)
    info = students.prune(student, tokenizer, train_split(cfg), rcfg.num_attention_heads, rcfg.intermediate_size,
                          rcfg.prune_samples, cfg.data.max_length, "refine")
    after = models.count_parameters(student)
    teacher_dir = distilled if rcfg.teacher == "student" else ctx.layout.model("teacher")
    by = "distilled student" if rcfg.teacher == "student" else "teacher"
    ctx.console.print(f"refine: the distilled student{students.describe_pruning(info)}; {before / 1e6:.1f}M -> "
                      f"{after / 1e6:.1f}M parameters; taught by the {by}")
    own = {k: getattr(rcfg, k) for k in ("train", "hidden", "alpha", "temperature") if getattr(rcfg, k) is not None}
    dcfg = cfg.distill.model_copy(update=own)  # the rest of the recipe, and every null here, is distill's
    metrics = distil(cfg, ctx, dcfg, teacher_dir, student, tokenizer, "refine",
                     "refine.hidden" if rcfg.hidden else "distill.hidden")
    models.save(student.cpu(), tokenizer, ctx.out / MODEL_DIR)
    return {"enabled": True, **info, "taught_by": rcfg.teacher, "parameters_before": before, "parameters": after,
            **metrics}
