"""Teacher of a causal LM: a pretrained decoder (hub id, folder) or a random GPT-2-style one with a BPE tokenizer
trained on the text, trained or fine-tuned by next-token CE.                                   -> teacher/model"""

from __future__ import annotations

from compress import models
from compress.distill.train import accelerator_for, fit
from compress.layout import MODEL_DIR
from compress.tasks.causal_lm import lm
from compress.tasks.causal_lm.objectives import lm_cross_entropy
from compress.tasks.causal_lm.text import load_text, train_rows

NAME = "teacher"
DEPENDS: tuple[str, ...] = ()
DISTRIBUTED = True  # trains on every process under accelerate launch
CONFIG = ("seed", "task", "data", "teacher")


def run(cfg, ctx) -> dict:
    tcfg = cfg.teacher
    text = load_text(cfg)
    if tcfg.model:
        model, tokenizer = lm.load_pretrained(tcfg.model, tcfg.allow_pickle, tcfg.trust_remote_code)
        source = tcfg.model
    else:
        with ctx.console.status("training a byte-level BPE tokenizer on the training text"):
            model, tokenizer = lm.build_random(tcfg, text.train, cfg.data.max_length)
        source = f"random {tcfg.architecture}"
    data = train_rows(cfg, tokenizer, text)
    ctx.console.print(f"teacher: {source} ({models.count_parameters(model) / 1e6:.1f}M parameters, "
                      f"{model.config.model_type}, vocabulary {len(tokenizer)}); text: {text.source}; "
                      f"{len(data)} training rows of up to {cfg.data.max_length} tokens")
    metrics = {"source": source, "model_type": model.config.model_type, "parameters": models.count_parameters(model),
               "vocabulary": len(tokenizer), "text": text.source, "train_rows": len(data),
               "train_tokens": sum(map(len, data.input_ids))}
    if tcfg.finetune:
        metrics["train"] = fit(model, data, tokenizer.pad_token_id, tcfg.train, accelerator_for(tcfg.train, ctx),
                               cfg.seed, lm_cross_entropy, "train teacher", ctx.console, checkpoint_dir=ctx.checkpoint_dir)
        model = model.cpu()
    models.save(model, tokenizer, ctx.out / MODEL_DIR)
    return metrics
