"""Trim: keep only the tokens the task text uses in the distilled (and refined) student (edge builds).

The embedding matrix and the tokenizer shrink together; on the task's text the trimmed student
computes exactly what the untrimmed one does (checked here on every evaluation sentence).
"""

from __future__ import annotations

import torch

from compress import models
from compress.data import encode, eval_split, train_split
from compress.distill.train import predict_logits
from compress.errors import CompressError
from compress.layout import MODEL_DIR
from compress.vocab import trim_vocabulary

NAME = "trim"
DEPENDS = ("distill", "refine")
CONFIG = ("vocab_trim", "data")
ATOL = 1e-5


def run(cfg, ctx) -> dict:
    if not cfg.vocab_trim.enabled:
        ctx.console.print("trim: disabled (vocab_trim.enabled: false)")
        return {"enabled": False}
    student, tokenizer = models.load_saved(ctx.layout.distilled_student())
    train, evaluation = train_split(cfg), eval_split(cfg)
    with ctx.console.status("trimming the vocabulary to the task's tokens"):
        trimmed, new_tokenizer, info = trim_vocabulary(student, tokenizer, train.texts + evaluation.texts)
    before = predict_logits(student, encode(tokenizer, evaluation, 512), tokenizer.pad_token_id, 64, "cpu")
    after = predict_logits(trimmed, encode(new_tokenizer, evaluation, 512), new_tokenizer.pad_token_id, 64, "cpu")
    diff = float((before - after).abs().max())
    if diff > ATOL or not torch.equal(before.argmax(-1), after.argmax(-1)):
        raise CompressError(f"vocab_trim: the trimmed student's logits differ by {diff:.3g} on the evaluation text "
                            f"(allowed {ATOL:g}); set vocab_trim.enabled: false and report this")
    models.save(trimmed, new_tokenizer, ctx.out / MODEL_DIR)
    t, s = models.count_parameters(student), models.count_parameters(trimmed)
    ctx.console.print(f"trim: vocabulary {info['vocab_before']} -> {info['vocab_after']} tokens, "
                      f"{t / 1e6:.1f}M -> {s / 1e6:.1f}M parameters ({info['bytes_saved_fp32'] / 1e6:.1f} MB saved in fp32), "
                      f"logits max diff {diff:.1e} on {len(evaluation)} sentences")
    return {"enabled": True, **info, "parameters_before": t, "parameters_after": s, "max_abs_diff": diff}
