"""Knowledge-distillation losses.

Hinton, Vinyals and Dean (2015), "Distilling the Knowledge in a Neural Network":

    L = alpha * CE(student_logits, y) + (1 - alpha) * T^2 * D( softmax(t / T), softmax(s / T) )

with D the forward KL in the paper; reverse KL, a generalised Jensen-Shannon divergence (as in
TRL's GKD, Agarwal et al. 2024) and MSE on raw logits are offered as alternatives. The T^2 factor
keeps the soft-target gradients at the same scale as the hard-label ones when T changes.
TinyBERT-style (Jiao et al. 2019) hidden-state and attention-map losses are below.

Shapes: logits are (B, C) for sequence classification or (B, L, V) for token-level (causal LM)
distillation; the last dimension is the class/vocabulary one. Everything is computed in float32
whatever precision the models ran in.

Masking and normalisation, shared by every loss here: an optional boolean ``mask`` shaped like the
logits without their last dimension ((B,) or (B, L)) marks valid rows/tokens; masked positions
contribute exactly 0. A loss is the sum over valid positions divided by ``num_tokens`` when given,
else by the number of valid positions in this call (at least 1, so a fully-masked input gives 0).
Passing ``num_tokens`` = the valid-token count of the whole batch makes the losses of micro-batches
sum to the loss of the full batch: gradient accumulation and multi-process training stay invariant.
Teacher tensors are used as given: compute them under ``torch.no_grad()``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DIVERGENCES = ("forward_kl", "reverse_kl", "jsd", "mse")


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None, num_tokens=None, trailing: int = 0) -> torch.Tensor:
    """sum(values at valid positions) / (num_tokens or number of valid positions), the normaliser clamped to >= 1.

    ``values`` is per position, or per element with ``trailing`` extra dimensions (e.g. the classes)
    that are summed too: summing everything at once keeps the unmasked forward KL bit-identical to
    kl_div(reduction="batchmean").
    """
    positions = values.shape[:values.dim() - trailing]
    if mask is None:
        total, count = values.sum(), positions.numel()
    else:
        if mask.shape != positions:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match positions {tuple(positions)}")
        mask = mask.to(device=values.device, dtype=torch.bool)
        # where, not multiply: whatever sits at a masked position (even inf/nan) contributes exactly 0
        total = torch.where(mask[(...,) + (None,) * trailing], values, values.new_zeros(())).sum()
        count = mask.sum()
    denom = count if num_tokens is None else num_tokens
    denom = denom.clamp(min=1).to(total.dtype) if torch.is_tensor(denom) else max(denom, 1)
    return total / denom


def _log_probs(student_logits, teacher_logits, temperature: float):
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ in shape")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    log_p_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    return log_p_student, log_p_teacher


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """The terms p_c (log p_c - log q_c) of KL(P || Q), from log-probabilities; summed by _masked_mean."""
    return F.kl_div(log_q, log_p, log_target=True, reduction="none")


def forward_kl(student_logits, teacher_logits, temperature: float = 1.0, mask=None, num_tokens=None):
    """T^2 * KL(p_t || p_s) = T^2 * sum_c p_t,c (log p_t,c - log p_s,c), p = softmax(logits / T).

    Mean-seeking: the student is pushed to cover every class the teacher gives mass to.
    """
    log_s, log_t = _log_probs(student_logits, teacher_logits, temperature)
    return _masked_mean(_kl(log_t, log_s), mask, num_tokens, trailing=1) * (temperature * temperature)


def reverse_kl(student_logits, teacher_logits, temperature: float = 1.0, mask=None, num_tokens=None):
    """T^2 * KL(p_s || p_t) = T^2 * sum_c p_s,c (log p_s,c - log p_t,c), p = softmax(logits / T).

    Mode-seeking: the student is penalised for mass where the teacher has little.
    """
    log_s, log_t = _log_probs(student_logits, teacher_logits, temperature)
    return _masked_mean(_kl(log_s, log_t), mask, num_tokens, trailing=1) * (temperature * temperature)


def jsd(student_logits, teacher_logits, temperature: float = 1.0, beta: float = 0.5, mask=None, num_tokens=None):
    """Generalised Jensen-Shannon divergence (TRL's GKD), times T^2:

        M = beta * p_t + (1 - beta) * p_s
        JSD_beta = beta * KL(p_t || M) + (1 - beta) * KL(p_s || M)

    log M = logsumexp(log beta + log p_t, log(1 - beta) + log p_s): the mixture is formed in log
    space, never as log(sum of probabilities) that could underflow to log 0. 0 <= JSD_beta <= H(beta) = -beta log beta - (1-beta) log(1-beta),
    which is log 2 for the symmetric beta = 0.5. beta must lie strictly in (0, 1).
    """
    if not 0.0 < beta < 1.0:
        raise ValueError(f"jsd: beta must be in (0, 1), got {beta}")
    log_s, log_t = _log_probs(student_logits, teacher_logits, temperature)
    log_m = torch.logsumexp(torch.stack([log_t + math.log(beta), log_s + math.log(1.0 - beta)]), dim=0)
    terms = beta * _kl(log_t, log_m) + (1.0 - beta) * _kl(log_s, log_m)
    return _masked_mean(terms, mask, num_tokens, trailing=1) * (temperature * temperature)


def logit_mse(student_logits, teacher_logits, mask=None, num_tokens=None):
    """mean_c (s_c - t_c)^2 on the raw logits (no temperature, no T^2), per row/token."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ in shape")
    per_position = (student_logits.float() - teacher_logits.float()).pow(2).mean(-1)
    return _masked_mean(per_position, mask, num_tokens)


def divergence(name: str, student_logits, teacher_logits, temperature: float, mask=None, num_tokens=None,
               beta: float = 0.5) -> torch.Tensor:
    """Dispatch on ``name`` in DIVERGENCES; "mse" ignores the temperature, only "jsd" uses beta."""
    if name == "forward_kl":
        return forward_kl(student_logits, teacher_logits, temperature, mask, num_tokens)
    if name == "reverse_kl":
        return reverse_kl(student_logits, teacher_logits, temperature, mask, num_tokens)
    if name == "jsd":
        return jsd(student_logits, teacher_logits, temperature, beta, mask, num_tokens)
    if name == "mse":
        return logit_mse(student_logits, teacher_logits, mask, num_tokens)
    raise ValueError(f"unknown divergence {name!r}; valid: {', '.join(DIVERGENCES)}")


_divergence = divergence  # kd_loss's ``divergence`` argument shadows the function

# The original name of the forward-KL term, kept for callers of the first version of this module.
soft_target_kl = forward_kl


def cross_entropy(logits, labels, mask=None, num_tokens=None, ignore_index: int = -100) -> torch.Tensor:
    """-log softmax(logits)[label], masked where ``mask`` is False or label == ignore_index.

    Labels are aligned with the logits (shape = logits.shape[:-1]); for a causal LM, shift them first.
    """
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"labels {tuple(labels.shape)} do not match logits {tuple(logits.shape)}")
    valid = labels != ignore_index
    if mask is not None:
        if mask.shape != labels.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match labels {tuple(labels.shape)}")
        valid = valid & mask.to(device=labels.device, dtype=torch.bool)
    flat_logits = logits.float().reshape(-1, logits.shape[-1])
    if mask is None and num_tokens is None and bool(valid.all()):  # the unmasked case, exactly as before
        return F.cross_entropy(flat_logits, labels.reshape(-1))
    labels = labels.masked_fill(~valid, ignore_index)  # labels under the mask may be anything
    per_position = F.cross_entropy(flat_logits, labels.reshape(-1), ignore_index=ignore_index, reduction="none")
    return _masked_mean(per_position.view(labels.shape), valid, num_tokens)


def kd_loss(student_logits, teacher_logits, labels, temperature: float, alpha: float, divergence: str = "forward_kl",
            mask=None, num_tokens=None, beta: float = 0.5, ignore_index: int = -100):
    """alpha * CE(student, labels) + (1 - alpha) * D(teacher, student) (Hinton et al. 2015).

    D is ``divergence`` (one of DIVERGENCES) at ``temperature``, masked by ``mask``; the CE is
    also masked where label == ignore_index. ``num_tokens``, when given, normalises both terms.
    alpha == 1 computes no divergence. Returns (loss, {"ce", "kd", "kl"}) with "kl" == "kd",
    the key the first version of this module logged.
    """
    if divergence not in DIVERGENCES:
        raise ValueError(f"unknown divergence {divergence!r}; valid: {', '.join(DIVERGENCES)}")
    ce = cross_entropy(student_logits, labels, mask, num_tokens, ignore_index)
    if alpha == 1.0:  # plain CE: the divergence is not even computed
        return ce, {"ce": ce.item(), "kd": 0.0, "kl": 0.0}
    kd = _divergence(divergence, student_logits, teacher_logits, temperature, mask, num_tokens, beta)
    return alpha * ce + (1.0 - alpha) * kd, {"ce": ce.item(), "kd": kd.item(), "kl": kd.item()}


def topk_forward_kl(student_logits, probs, rest_mass, indices, temperature: float = 1.0, mask=None, num_tokens=None):
    """T^2 * KL(p_t || p_s) against a teacher stored as its top-k (DistillKit's sparse targets): the k classes
    ``indices`` with probabilities ``probs`` (softmax(teacher / T) there) and ``rest_mass``, the teacher's mass on
    every other class, which is compared with the student's mass there as one more class. Exact when the
    teacher puts no mass outside its top-k; a lower bound of the full KL otherwise (the chain rule of KL)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    log_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_s_top = log_s.gather(-1, indices)
    log_s_rest = torch.log1p(-log_s_top.exp().sum(-1).clamp(max=1 - 1e-6))
    tiny = torch.finfo(torch.float32).tiny
    terms = (probs * (probs.clamp_min(tiny).log() - log_s_top)).sum(-1)
    terms = terms + rest_mass * (rest_mass.clamp_min(tiny).log() - log_s_rest)
    return _masked_mean(terms, mask, num_tokens) * (temperature * temperature)


def uniform_layer_map(student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """[(0, 0)] + [(i, round(i * n_t / n_s)) for i in 1..n_s], halves rounded up.

    Indexes ``outputs.hidden_states`` (index 0 = embeddings, i = output of layer i); the last
    student layer always maps to the last teacher layer.
    """
    if student_layers < 1 or teacher_layers < 1:
        raise ValueError(f"layer counts must be >= 1, got {student_layers} and {teacher_layers}")
    return [(0, 0)] + [(i, (2 * i * teacher_layers + student_layers) // (2 * student_layers))
                       for i in range(1, student_layers + 1)]


class HiddenStateLoss(torch.nn.Module):
    """Per-token loss between mapped hidden states (TinyBERT's L_hidn), averaged over the mapped layers.

    ``layer_map`` pairs (student index, teacher index) into ``outputs.hidden_states``. When the
    widths differ, one learned nn.Linear(student_width, teacher_width) projects the student states
    (shared by all layers, TinyBERT's W_h); when they are equal the module has no parameters.
    kind "mse": mean over the hidden dim of (h_s - h_t)^2; kind "cosine": 1 - cos(h_s, h_t).
    """

    def __init__(self, layer_map, student_width: int, teacher_width: int, kind: str = "mse"):
        super().__init__()
        if kind not in ("mse", "cosine"):
            raise ValueError(f"unknown hidden-state loss {kind!r}; valid: mse, cosine")
        self.layer_map = [(int(s), int(t)) for s, t in layer_map]
        if not self.layer_map or any(s < 0 or t < 0 for s, t in self.layer_map):
            raise ValueError(f"layer_map must be non-empty pairs of indices >= 0, got {layer_map}")
        self.kind = kind
        self.proj = torch.nn.Linear(student_width, teacher_width) if student_width != teacher_width else None

    def forward(self, student_hidden_states, teacher_hidden_states, mask=None, num_tokens=None) -> torch.Tensor:
        """Mean over mapped layers of the masked per-token loss; states are (B, L, width) each."""
        losses = []
        for s, t in self.layer_map:
            h_s, h_t = student_hidden_states[s], teacher_hidden_states[t].float()
            if self.proj is not None:
                h_s = self.proj(h_s.to(self.proj.weight.dtype))
            h_s = h_s.float()
            if self.kind == "mse":
                per_token = (h_s - h_t).pow(2).mean(-1)
            else:
                per_token = 1.0 - F.cosine_similarity(h_s, h_t, dim=-1)
            losses.append(_masked_mean(per_token, mask, num_tokens))
        return torch.stack(losses).mean()


def attention_loss(student_attentions, teacher_attentions, layer_map, mask=None, num_tokens=None) -> torch.Tensor:
    """TinyBERT's L_attn (Jiao et al. 2019): MSE between attention probability maps (B, H, L, L).

    For each (student, teacher) pair in ``layer_map`` (0-based into ``outputs.attentions``; HF
    models need attn_implementation="eager" to return them): if head counts differ, both maps are
    first averaged over heads. Per query token: mean over heads and valid keys of (a_s - a_t)^2;
    then masked over valid queries and normalised per token as everywhere here; then mean over layers.
    """
    losses = []
    for s, t in layer_map:
        a_s, a_t = student_attentions[s].float(), teacher_attentions[t].float()
        if a_s.shape[1] != a_t.shape[1]:
            a_s, a_t = a_s.mean(1, keepdim=True), a_t.mean(1, keepdim=True)
        sq = (a_s - a_t).pow(2)  # (B, H, L_query, L_key)
        if mask is None:
            per_query = sq.mean(-1).mean(1)
        else:
            keys = mask.to(device=sq.device, dtype=torch.bool)
            sq = torch.where(keys[:, None, None, :], sq, sq.new_zeros(()))
            per_query = sq.sum(-1).mean(1) / keys.sum(-1, keepdim=True).clamp(min=1)
        losses.append(_masked_mean(per_query, mask, num_tokens))
    return torch.stack(losses).mean()
