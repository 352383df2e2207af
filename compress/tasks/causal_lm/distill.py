"""Distil a causal LM: the tokenizer preflight, then token-level KD (live teacher) and/or sequence-level KD
(the teacher's completions as text).                                                        -> distill/model"""

from __future__ import annotations

from compress import models
from compress.distill.sharding import shard_frozen
from compress.distill.train import accelerator_for, fit
from compress.errors import CompressError
from compress.layout import MODEL_DIR
from compress.tasks.causal_lm import lm, preflight
from compress.tasks.causal_lm.lm import output_rows
from compress.tasks.causal_lm.objectives import TokenKD, kd_loss_fn, lm_cross_entropy, teacher_completions
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
        teacher_model = shard_frozen(teacher_model, accelerator)  # frozen; sharded like the student under FSDP
        shared = pre.shared_vocab if pre.mode == "sliced" else None
        ctx.console.print(f"distill: token-level {dcfg.divergence} T={dcfg.temperature}, alpha={dcfg.alpha}, live "
                          f"teacher (full next-token distributions over {shared or output_rows(model)} tokens), "
                          f"{len(data)} rows" + (f" ({metrics['sequence']['rows']} of them teacher completions)"
                                                 if seq.mode == "mix" else ""))
        metrics["train"] = fit(TokenKD(model, dcfg, shared), data, tok.pad_token_id, dcfg.train, accelerator, cfg.seed,
                               kd_loss_fn(teacher_model, accelerator), "distill", ctx.console,
                               checkpoint_dir=ctx.checkpoint_dir)
    models.save(model.cpu(), tok, ctx.out / MODEL_DIR)
    return metrics
