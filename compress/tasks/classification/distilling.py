"""The distillation loop of a classifier, shared by the distill and refine stages: the student (with the heads
the hidden-state and attention losses need) trained on the teacher's softened outputs mixed with the hard labels,
the teacher's outputs read from the cache when they can be; and the hard-label loss the teacher and the baseline
train on."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from compress import models
from compress.data import encode
from compress.distill import cache as teacher_cache
from compress.distill.augment import training_split
from compress.distill.losses import HiddenStateLoss, attention_loss, kd_loss, uniform_layer_map
from compress.distill.train import accelerator_for, fit, validation_evaluator
from compress.envinfo import resolve_precision
from compress.errors import CompressError


class Trainable(torch.nn.Module):
    """The student and what the losses learn with it (the hidden-state projection); ``forward``
    returns the loss, so that Accelerate's autocast and DDP wrap the whole computation."""

    def __init__(self, student, dcfg, hidden: HiddenStateLoss | None, attention_map: list[tuple[int, int]]):
        super().__init__()
        self.student, self.hidden, self.dcfg, self.attention_map = student, hidden, dcfg, attention_map

    def forward(self, input_ids, attention_mask, labels, teacher_logits, teacher_hidden=None, teacher_attentions=None):
        d = self.dcfg
        out = self.student(input_ids=input_ids, attention_mask=attention_mask,
                           output_hidden_states=self.hidden is not None, output_attentions=d.attention_weight > 0)
        loss, parts = kd_loss(out.logits, teacher_logits, labels, d.temperature, d.alpha, divergence=d.divergence,
                              beta=d.beta)
        if self.hidden is not None:
            h = self.hidden(out.hidden_states, teacher_hidden, mask=attention_mask)
            loss = loss + d.hidden.weight * h
            parts["hidden"] = h.item()
        if d.attention_weight > 0:
            a = attention_loss(out.attentions, teacher_attentions, self.attention_map, mask=attention_mask)
            loss = loss + d.attention_weight * a
            parts["attention"] = a.item()
        return loss, parts


def distil(cfg, ctx, dcfg, teacher_dir: Path, student, tokenizer, desc: str,
           hidden_key: str = "distill.hidden") -> dict:
    """Train ``student`` in place on the outputs of the model saved in ``teacher_dir``, as ``dcfg`` (a DistillConfig)
    says; its metrics. The distill stage, and the refine stage's second round, call this. ``hidden_key`` names
    where ``dcfg.hidden`` came from, in errors."""
    teacher, _ = models.load_saved(teacher_dir)
    data = encode(tokenizer, training_split(cfg, tokenizer, hard_labels_for_copies=False), cfg.data.max_length)
    precision = resolve_precision(dcfg.train.precision, ctx.device)
    accelerator = accelerator_for(dcfg.train, ctx)
    teacher.to(accelerator.device).eval().requires_grad_(False)  # frozen: eval mode, no gradients
    hidden = _hidden_loss(dcfg, student, teacher, hidden_key)
    live = hidden is not None or dcfg.attention_weight > 0
    metrics: dict = {"temperature": dcfg.temperature, "alpha": dcfg.alpha, "divergence": dcfg.divergence}
    cached = None
    if dcfg.cache.enabled and not live:
        cached, metrics["cache"] = teacher_cache.for_run(
            cfg, ctx, dcfg, teacher, teacher_dir, data, tokenizer.pad_token_id, precision,
            top_k=teacher_cache.default_top_k(teacher.config.num_labels), what="sentences")
    if dcfg.attention_weight > 0:
        for m in (teacher, student):
            m.config._attn_implementation = "eager"  # attention maps are returned only by eager attention

    loss_fn = make_loss_fn(dcfg, accelerator, teacher, cached, want_hidden=hidden is not None)
    source = "cached teacher outputs" if cached is not None else "live teacher"
    ctx.console.print(f"{desc}: {dcfg.divergence} T={dcfg.temperature}, alpha={dcfg.alpha}, {source}"
                      + (f", hidden {dcfg.hidden.kind} x{dcfg.hidden.weight}" if hidden else "")
                      + (f", attention x{dcfg.attention_weight}" if dcfg.attention_weight else "")
                      + f", {len(data)} sentences"
                      + (f" ({dcfg.augment.copies} perturbed copies each included)" if dcfg.augment.copies else ""))
    trainable = Trainable(student, dcfg, hidden, _attention_map(student, teacher) if dcfg.attention_weight else [])
    metrics["train"] = fit(trainable, data, tokenizer.pad_token_id, dcfg.train, accelerator, cfg.seed, loss_fn,
                           desc, ctx.console, checkpoint_dir=ctx.checkpoint_dir,
                           evaluate=validation_evaluator(cfg, tokenizer, ctx.device, pick=lambda m: m.student))
    if hidden is not None:
        metrics["hidden"] = {"layer_map": [list(p) for p in hidden.layer_map], "projection": hidden.proj is not None}
    return metrics


def make_loss_fn(dcfg, accelerator, teacher, cached=None, want_hidden: bool = False):
    """loss_fn(trainable, batch) for ``fit``: teacher logits from the cache when given, else live."""

    def loss_fn(model, batch):
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        t_hidden = t_attn = None
        if cached is not None:
            teacher_logits = cached.soft_targets(batch["index"].cpu()).to(batch["input_ids"].device)
        else:
            with torch.no_grad(), accelerator.autocast():
                t_out = teacher(**inputs, output_hidden_states=want_hidden, output_attentions=dcfg.attention_weight > 0)
            teacher_logits, t_hidden, t_attn = t_out.logits, t_out.hidden_states, t_out.attentions
        return model(**inputs, labels=batch["labels"], teacher_logits=teacher_logits, teacher_hidden=t_hidden,
                     teacher_attentions=t_attn)

    return loss_fn


def _hidden_loss(dcfg, student, teacher, key: str = "distill.hidden") -> HiddenStateLoss | None:
    if dcfg.hidden.weight <= 0:
        return None
    s_spec, t_spec = models.layer_spec(student.config.model_type), models.layer_spec(teacher.config.model_type)
    n_s, n_t = getattr(student.config, s_spec.count), getattr(teacher.config, t_spec.count)
    layer_map = [tuple(p) for p in dcfg.hidden.layer_map] if dcfg.hidden.layer_map else uniform_layer_map(n_s, n_t)
    bad = [(s, t) for s, t in layer_map if not (0 <= s <= n_s and 0 <= t <= n_t)]
    if bad:
        raise CompressError(f"{key}.layer_map: {bad} out of range (student 0..{n_s}, teacher 0..{n_t}; "
                            "0 is the embeddings)")
    return HiddenStateLoss(layer_map, getattr(student.config, s_spec.width), getattr(teacher.config, t_spec.width),
                           kind=dcfg.hidden.kind)


def _attention_map(student, teacher) -> list[tuple[int, int]]:
    """Student block i (0-based) -> the teacher block at the same relative depth."""
    s = getattr(student.config, models.layer_spec(student.config.model_type).count)
    t = getattr(teacher.config, models.layer_spec(teacher.config.model_type).count)
    return [(i - 1, j - 1) for i, j in uniform_layer_map(s, t) if i > 0]


def cross_entropy(model, batch):
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = F.cross_entropy(logits.float(), batch["labels"])
    return loss, {"ce": loss.item()}

