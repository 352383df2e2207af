"""Teacher: load a pretrained model (or build a random one) and fine-tune it on the task."""

from __future__ import annotations

from compress import models
from compress.data import count_truncated, encode, eval_split, train_split, validation_split
from compress.distill.train import accelerator_for, fit, validation_evaluator
from compress.layout import MODEL_DIR
from compress.preflight import overlaps
from compress.tasks.classification.distilling import cross_entropy

NAME = "teacher"
DEPENDS: tuple[str, ...] = ()
DISTRIBUTED = True  # runs on every process under accelerate launch
CONFIG = ("seed", "task", "data", "teacher")


def run(cfg, ctx) -> dict:

    tcfg = cfg.teacher
    train = train_split(cfg)
    if tcfg.model:
        model, tokenizer = models.load_pretrained(tcfg.model, tcfg.num_labels, tcfg.allow_pickle, tcfg.trust_remote_code)
        source = tcfg.model
    else:
        model, tokenizer = models.build_random(tcfg, train.texts, cfg.data.max_length)
        source = f"random {tcfg.architecture}"
    if train.names:  # the data's class names, in the recorded order, name the head's outputs
        models.name_labels(model, train.names)
    ctx.console.print(f"teacher: {source} ({models.count_parameters(model) / 1e6:.1f}M parameters, "
                      f"{model.config.model_type}), {len(train)} training sentences")
    metrics = {"source": source, "model_type": model.config.model_type, "parameters": models.count_parameters(model),
               "data": {**data_summary(cfg, tokenizer, train, ctx.console), "labels": label_summary(train, model)}}
    if tcfg.finetune:
        data = encode(tokenizer, train, cfg.data.max_length)
        metrics["train"] = fit(model, data, tokenizer.pad_token_id, tcfg.train, accelerator_for(tcfg.train, ctx), cfg.seed,
                               cross_entropy, "fine-tune teacher", ctx.console,
                               evaluate=validation_evaluator(cfg, tokenizer, ctx.device), checkpoint_dir=ctx.checkpoint_dir)
        model = model.cpu()
    models.save(model, tokenizer, ctx.out / MODEL_DIR)
    return metrics


def data_summary(cfg, tokenizer, train, console) -> dict:
    """Per split: rows, sentences longer than data.max_length (truncated: warned and kept in the report), the
    longest; and evaluation sentences that also appear in the training split (counted by the preflight too)."""
    evals, val = eval_split(cfg), validation_split(cfg)
    limit = cfg.data.max_length
    out = {"max_length": limit, "train": count_truncated(tokenizer, train.texts, limit),
           "eval": {**count_truncated(tokenizer, evals.texts, limit), **overlaps(train.texts, evals.texts, "train")}}
    if val is not None:
        out["validation"] = {**count_truncated(tokenizer, val.texts, limit), **overlaps(train.texts, val.texts, "train")}
    for name, split in out.items():
        if isinstance(split, dict) and split["truncated"]:
            console.print(f"[yellow]warning[/] data: {split['truncated']} of {split['rows']} {name} sentences are longer "
                          f"than data.max_length ({limit} tokens; the longest has {split['longest_tokens']}) and are "
                          f"truncated", soft_wrap=True)
    return out


def label_summary(train, model) -> dict:
    """How the labels were read (ids or names) and what the classes are called: the data's names, else those the
    teacher's own config gives (a pretrained classifier), else none."""
    out = train.label_set.to_dict() if train.label_set else {"values": "ids", "names": None, "from": None}
    if not out["names"]:
        out.update(names=models.label_names(model.config), **{"from": "the teacher's config"})
        if not out["names"]:
            out["from"] = None
    return out
