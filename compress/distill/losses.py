"""Knowledge-distillation losses.

Hinton, Vinyals and Dean (2015), "Distilling the Knowledge in a Neural Network":

    L = alpha * CE(student_logits, y) + (1 - alpha) * T^2 * KL( softmax(t / T) || softmax(s / T) )

The T^2 factor keeps the soft-target gradients at the same scale as the hard-label ones
when T changes. Softmaxes are taken in float32 whatever precision the models ran in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_target_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher/T) || softmax(student/T)), averaged over the batch. Shapes (B, C)."""
    t = temperature
    log_p_student = F.log_softmax(student_logits.float() / t, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / t, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="batchmean")
    return kl * (t * t)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
            temperature: float, alpha: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The Hinton et al. mixture; returns the loss and its two parts for logging."""
    ce = F.cross_entropy(student_logits.float(), labels)
    if alpha == 1.0:  # plain CE: the KL term is not even computed
        return ce, {"ce": ce.item(), "kl": 0.0}
    kl = soft_target_kl(student_logits, teacher_logits, temperature)
    return alpha * ce + (1.0 - alpha) * kl, {"ce": ce.item(), "kl": kl.item()}
