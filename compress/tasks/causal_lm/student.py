"""Student of a causal LM: layers of the teacher, a smaller config, or a smaller pretrained decoder. -> student/model"""

from __future__ import annotations

from compress import models
from compress.layout import MODEL_DIR
from compress.tasks.causal_lm import lm
from compress.tasks.causal_lm.text import load_text, train_rows

NAME = "student"
DEPENDS = ("teacher",)
CONFIG = ("student", "seed", "data")


def run(cfg, ctx) -> dict:
    teacher_model, tokenizer = lm.load_saved(ctx.layout.model("teacher"))
    rows = None
    if cfg.student.method == "layers" and (cfg.student.intermediate_size or (cfg.student.num_layers and not cfg.student.layers)):
        rows = train_rows(cfg, tokenizer, load_text(cfg)).input_ids[: cfg.student.prune_samples]
    model, student_tokenizer, info = lm.build_student(cfg.student, teacher_model, tokenizer, rows)
    models.save(model, student_tokenizer, ctx.out / MODEL_DIR)
    t, s = models.count_parameters(teacher_model), models.count_parameters(model)
    shown = {k: v for k, v in info.items() if k not in ("block_influence", "ffn")}
    if "ffn" in info:
        shown["feed-forward"] = f"{info['ffn']['intermediate_size_before']} -> {info['ffn']['intermediate_size']}"
    ctx.console.print(f"student: {', '.join(f'{k} {v}' for k, v in shown.items())}; {s / 1e6:.1f}M parameters "
                      f"({s / t:.0%} of the teacher)")
    return {**info, "parameters": s, "teacher_parameters": t}
