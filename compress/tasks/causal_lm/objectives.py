"""What a causal LM trains on: next-token CE, token-level KD against the teacher's full next-token
distributions (compress.distill.losses: forward KL, reverse KL, JSD, at temperature T, mixed with CE by alpha,
masked on padding and normalised per token), and sequence-level KD data (the teacher's completions)."""

from __future__ import annotations

import torch

from compress.distill import cache as teacher_cache
from compress.distill.losses import cross_entropy, kd_loss, topk_forward_kl

CACHE_FULL_ROWS = 1024  # vocabularies up to this size are cached whole; larger ones as their top-k (distill.cache.top_k)
CACHE_BATCH_TOKENS = 2**27  # logits floats of one teacher batch while the cache is computed (512 MB)
BF16_LM_ATOL = 1.0  # a 30-layer decoder's logits (magnitude ~20-30) in bf16 autocast against fp32


def shifted(input_ids, attention_mask):
    """Next-token labels and the mask of positions that predict a real token: position t predicts t + 1."""
    labels = input_ids[:, 1:]
    mask = attention_mask[:, 1:].bool() & attention_mask[:, :-1].bool()
    return labels, mask


def lm_cross_entropy(model, batch):
    """``fit``'s loss_fn for the teacher and the student-ce baseline: next-token CE, masked on padding."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels, mask = shifted(batch["input_ids"], batch["attention_mask"])
    loss = cross_entropy(logits[:, :-1], labels, mask=mask)
    return loss, {"ce": loss.item()}


class TokenKD(torch.nn.Module):
    """The student and its token-level KD loss; ``forward`` returns the loss so that Accelerate's autocast wraps
    the student's forward. ``shared``: compare only the first ``shared`` vocabulary rows (the preflight's
    sliced case); None = all."""

    def __init__(self, student, dcfg, shared: int | None = None):
        super().__init__()
        self.student, self.dcfg, self.shared = student, dcfg, shared
        # FSDP's TRANSFORMER_BASED_WRAP shards the blocks the model names here (the student's)
        self._no_split_modules = getattr(student, "_no_split_modules", None)

    def forward(self, input_ids, attention_mask, teacher_logits=None, teacher_topk=None):
        d = self.dcfg
        logits = self.student(input_ids=input_ids, attention_mask=attention_mask).logits
        labels, mask = shifted(input_ids, attention_mask)
        if teacher_topk is not None:  # (probs, rest mass, indices) of the cached top-k, per position
            probs, rest, idx = (t[:, :-1] for t in teacher_topk)
            ce = cross_entropy(logits[:, :-1], labels, mask=mask)
            kd = topk_forward_kl(logits[:, :-1], probs, rest, idx, d.temperature, mask=mask)
            return d.alpha * ce + (1 - d.alpha) * kd, {"ce": ce.item(), "kd": kd.item(), "kl": kd.item()}
        s, t = logits[:, :-1], teacher_logits[:, :-1]
        if self.shared is not None:
            s, t = s[..., : self.shared], t[..., : self.shared]
        return kd_loss(s, t, labels, d.temperature, d.alpha, divergence=d.divergence, mask=mask, beta=d.beta)


def cached_teacher(cfg, ctx, teacher, teacher_dir, data, pad_id: int, precision: str, rows: int):
    """(outputs, info): the teacher's next-token distributions on ``data`` from the run's cache (computed once on a
    miss; compress.distill.cache.for_run): whole for a vocabulary of up to CACHE_FULL_ROWS ``rows``, else the
    top ``distill.cache.top_k`` and the remaining mass; checked against the live teacher."""
    top_k = None if rows <= CACHE_FULL_ROWS else cfg.distill.cache.top_k
    return teacher_cache.for_run(cfg, ctx, cfg.distill, teacher, teacher_dir, data, pad_id, precision, top_k=top_k,
                                 what="rows", batch_size=max(1, CACHE_BATCH_TOKENS // (cfg.data.max_length * max(rows, 1))),
                                 bf16_atol=BF16_LM_ATOL)


def kd_loss_fn(teacher, accelerator, cached=None):
    """``fit``'s loss_fn for distillation: the teacher's outputs from ``cached`` (compress.distill.cache: full
    logits for a small vocabulary, else the top-k with the remaining mass), or the live, frozen teacher's
    logits computed under the same autocast as the student."""

    def loss_fn(model, batch):
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if cached is not None:
            rows, width, device = batch["index"].cpu(), batch["input_ids"].shape[1], batch["input_ids"].device
            if cached.format == "full":
                return model(**inputs, teacher_logits=cached.soft_targets(rows)[:, :width].to(device))
            topk = cached.topk_distribution(rows)
            return model(**inputs, teacher_topk=tuple(t[:, :width].to(device) for t in topk))
        with torch.no_grad(), accelerator.autocast():
            teacher_logits = teacher(**inputs).logits
        return model(**inputs, teacher_logits=teacher_logits)

    return loss_fn


@torch.no_grad()
def teacher_completions(teacher, tokenizer, train_ids: list[int], scfg, seed: int, console) -> list[str]:
    """Sequence-level KD (Kim and Rush 2016): the teacher continues ``scfg.prompts`` prompts of
    ``scfg.prompt_tokens`` tokens cut from the training stream at seeded positions, sampling at
    ``scfg.temperature`` (greedy at 0) for ``scfg.max_new_tokens``; returns prompt + completion as text, so a
    student with another tokenizer can read it."""
    import random

    need = scfg.prompt_tokens + 1
    if len(train_ids) <= need:
        raise ValueError(f"the training text has {len(train_ids)} tokens, fewer than a prompt")
    rng = random.Random(seed)
    starts = [rng.randrange(0, len(train_ids) - need) for _ in range(scfg.prompts)]
    torch.manual_seed(seed)
    teacher.eval()
    texts = []
    with console.status(f"sequence-level KD: the teacher writes {scfg.prompts} completions of {scfg.max_new_tokens} tokens"):
        for b in range(0, len(starts), scfg.batch_size):
            ids = torch.tensor([train_ids[s : s + scfg.prompt_tokens] for s in starts[b : b + scfg.batch_size]])
            sample = scfg.temperature > 0
            out = teacher.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=scfg.max_new_tokens,
                                   do_sample=sample, temperature=scfg.temperature if sample else None,
                                   top_k=scfg.top_k if sample else None, top_p=None,
                                   pad_token_id=tokenizer.pad_token_id)
            texts += tokenizer.batch_decode(out, skip_special_tokens=True)
    return texts
