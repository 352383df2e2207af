"""Distil a causal LM: the tokenizer preflight, then token-level KD (live teacher) and/or sequence-level KD
(the teacher's completions as text).                                                        -> distill/model"""

from __future__ import annotations

from compress import models
from compress.distill.sharding import shard_frozen
from compress.distill.train import accelerator_for, fit
from compress.envinfo import resolve_precision
from compress.errors import CompressError
from compress.layout import MODEL_DIR
from compress.tasks.causal_lm import lm, preflight
from compress.tasks.causal_lm.lm import output_rows
from compress.tasks.causal_lm.objectives import (
    CACHE_FULL_ROWS,
    TokenKD,
    cached_teacher,
    kd_loss_fn,
    lm_cross_entropy,
    teacher_completions,
)
from compress.tasks.causal_lm.text import as_encoded, load_text, token_stream, train_rows

NAME = "distill"
DEPENDS = ("teacher", "student")
DISTRIBUTED = True
CONFIG = ("seed", "data", "distill")


def run(cfg, ctx) -> dict:
    dcfg, seq = cfg.distill, cfg.distill.sequence
    teacher_model, teacher_tok = lm.load_saved(ctx.layout.model("teacher"))
    model, tok = lm.load_saved(ctx.layout.model("student"))
    text = load_text(cfg)
    data = train_rows(cfg, tok, text)
    pre = preflight.compare(teacher_tok, tok, output_rows(teacher_model), output_rows(model), data.input_ids)
    ctx.console.print(f"preflight: {pre.mode}: {pre.reason}")
    if pre.mode == "different" and seq.mode != "only":
        raise CompressError(preflight.refusal(pre))
    metrics: dict = {"preflight": pre.to_dict(), "temperature": dcfg.temperature, "alpha": dcfg.alpha,
                     "divergence": dcfg.divergence, "sequence": {"mode": seq.mode}}
    if seq.mode != "off":
        completions = teacher_completions(teacher_model, teacher_tok, token_stream(teacher_tok, text.train), seq,
                                          cfg.seed, ctx.console)
        generated = [r for r in tok(completions, add_special_tokens=False, truncation=True,
                                    max_length=cfg.data.max_length)["input_ids"] if len(r) >= 2]
        metrics["sequence"].update(prompts=seq.prompts, rows=len(generated), tokens=sum(map(len, generated)),
                                   temperature=seq.temperature, max_new_tokens=seq.max_new_tokens,
                                   example=completions[0][:300] if completions else "")
        data = as_encoded(generated if seq.mode == "only" else data.input_ids + generated)
    accelerator = accelerator_for(dcfg.train, ctx)
    if seq.mode == "only":  # the teacher's text is the whole signal: next-token CE on it, the student's own tokenizer
        ctx.console.print(f"distill: sequence-level only, {len(data)} teacher completions, next-token CE")
        metrics["train"] = fit(model, data, tok.pad_token_id, dcfg.train, accelerator, cfg.seed, lm_cross_entropy,
                               "distill (sequence-level)", ctx.console, checkpoint_dir=ctx.checkpoint_dir)
    else:
        shared = pre.shared_vocab if pre.mode == "sliced" else None
        cached, rows = None, output_rows(model)
        if dcfg.cache.enabled and pre.mode == "identical" and (dcfg.divergence == "forward_kl" or rows <= CACHE_FULL_ROWS):
            # the main process runs the whole teacher once (the others read its cache): it is not sharded
            teacher_model.to(accelerator.device).eval().requires_grad_(False)
            cached, metrics["cache"] = cached_teacher(cfg, ctx, teacher_model, ctx.layout.model("teacher"), data,
                                                      tok.pad_token_id, resolve_precision(dcfg.train.precision, ctx.device),
                                                      rows)
        else:
            teacher_model = shard_frozen(teacher_model, accelerator)  # frozen; sharded like the student under FSDP
        source = (f"cached teacher ({'full distributions' if cached.format == 'full' else f'top-{cached.top_k} and the rest mass'})"
                  if cached is not None else f"live teacher (full next-token distributions over {shared or rows} tokens)")
        ctx.console.print(f"distill: token-level {dcfg.divergence} T={dcfg.temperature}, alpha={dcfg.alpha}, {source}, "
                          f"{len(data)} rows" + (f" ({metrics['sequence']['rows']} of them teacher completions)"
                                                 if seq.mode == "mix" else ""))
        metrics["train"] = fit(TokenKD(model, dcfg, shared), data, tok.pad_token_id, dcfg.train, accelerator, cfg.seed,
                               kd_loss_fn(teacher_model, accelerator, cached), "distill", ctx.console,
                               checkpoint_dir=ctx.checkpoint_dir)
    models.save(model.cpu(), tok, ctx.out / MODEL_DIR)
    return metrics
