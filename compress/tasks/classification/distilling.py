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
from compress.layout import teacher_cache as cache_root


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
        cached, metrics["cache"] = _cached_outputs(cfg, ctx, dcfg, teacher, teacher_dir, data, tokenizer.pad_token_id,
                                                   precision)
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


def _cached_outputs(cfg, ctx, dcfg, teacher, teacher_dir: Path, data, pad_id: int, precision: str):
    runs_dir = ctx.runs_dir or ctx.run_dir.parent
    root = Path(dcfg.cache.dir) if dcfg.cache.dir else cache_root(runs_dir)
    store = teacher_cache.TeacherCache(root)
    autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    top_k = teacher_cache.default_top_k(teacher.config.num_labels)
    # Full logits are raw, whatever T: the key holds T only for top-k soft targets, so runs and sweeps
    # over the temperature share one cache entry.
    key = store.key(teacher_dir, data, dcfg.temperature if top_k else 1.0, top_k, extra={"autocast": str(autocast)})
    device = str(next(teacher.parameters()).device)

    def compute():
        with ctx.console.status(f"teacher outputs for {len(data)} sentences (once; cached in {root})"):
            return teacher_cache.compute_teacher_outputs(teacher, data, pad_id, 128, device, top_k,
                                                         dcfg.temperature, autocast_dtype=autocast)

    from accelerate import PartialState

    with PartialState().main_process_first():  # one process computes; the others then read the cache
        outputs, hit = teacher_cache.get_or_compute(store, key, compute)
    info = {"hit": hit, "key": key[:16], "dir": str(root)}
    if dcfg.cache.fidelity_samples:
        atol = BF16_FIDELITY_ATOL if autocast is not None else 1e-3
        check = teacher_cache.fidelity_check(teacher, data, outputs, pad_id, sample=dcfg.cache.fidelity_samples,
                                             seed=cfg.seed, atol=atol, device=device)
        info["fidelity"] = check
        if not check["ok"]:
            raise CompressError(f"distill.cache: cached teacher outputs differ from the live teacher by "
                                f"{check['max_abs_diff']:.3g} (atol {atol}) in {store.path(key)}; delete it and run again")
    ctx.console.print(f"teacher outputs: cache {'hit' if hit else 'miss, computed and stored'} ({key[:12]})"
                      + (f", fidelity max diff {info['fidelity']['max_abs_diff']:.2e} on {info['fidelity']['rows']} rows"
                         if "fidelity" in info else ""))
    return outputs, info


def cross_entropy(model, batch):
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = F.cross_entropy(logits.float(), batch["labels"])
    return loss, {"ce": loss.item()}


BF16_FIDELITY_ATOL = 0.15  # bf16 keeps ~3 significant digits of logits of magnitude ~5
