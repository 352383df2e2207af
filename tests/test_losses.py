import math

import pytest
import torch
import torch.nn.functional as F

from compress.distill.losses import kd_loss, soft_target_kl


def test_identical_logits_give_zero_kl():
    logits = torch.randn(8, 5)
    assert soft_target_kl(logits, logits.clone(), temperature=4.0).item() == pytest.approx(0.0, abs=1e-6)
    loss, parts = kd_loss(logits, logits.clone(), torch.zeros(8, dtype=torch.long), temperature=2.0, alpha=0.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert parts["kl"] == pytest.approx(0.0, abs=1e-6)


def test_hand_computed_value():
    # One example, two classes, T = 2: teacher logits (2, 0) -> softmax(1, 0); student (0, 0) -> (0.5, 0.5).
    teacher = torch.tensor([[2.0, 0.0]])
    student = torch.tensor([[0.0, 0.0]])
    p = [math.exp(1) / (math.exp(1) + 1), 1 / (math.exp(1) + 1)]
    kl = sum(pi * math.log(pi / 0.5) for pi in p)
    expected = 4.0 * kl  # T^2 = 4
    assert soft_target_kl(student, teacher, temperature=2.0).item() == pytest.approx(expected, rel=1e-6)
    labels = torch.tensor([1])
    ce = math.log(2.0)  # uniform student over 2 classes
    loss, _ = kd_loss(student, teacher, labels, temperature=2.0, alpha=0.25)
    assert loss.item() == pytest.approx(0.25 * ce + 0.75 * expected, rel=1e-6)


def test_t_squared_scaling():
    s, t = torch.randn(16, 3), torch.randn(16, 3)
    for temp in (1.0, 2.0, 8.0):
        raw = F.kl_div(F.log_softmax(s / temp, -1), F.softmax(t / temp, -1), reduction="batchmean")
        assert soft_target_kl(s, t, temp).item() == pytest.approx(temp**2 * raw.item(), rel=1e-5)


def test_alpha_one_is_plain_cross_entropy():
    s, t = torch.randn(16, 4), torch.randn(16, 4)
    labels = torch.randint(0, 4, (16,))
    loss, parts = kd_loss(s, t, labels, temperature=3.0, alpha=1.0)
    assert loss.item() == pytest.approx(F.cross_entropy(s, labels).item(), rel=1e-7)
    assert parts["kl"] == 0.0


def test_kl_is_never_negative_and_low_precision_inputs_are_upcast():
    torch.manual_seed(0)
    for _ in range(20):
        s, t = torch.randn(4, 7).bfloat16(), torch.randn(4, 7).bfloat16()
        value = soft_target_kl(s, t, temperature=float(torch.rand(1) * 5 + 0.5))
        assert value.dtype == torch.float32
        assert value.item() >= -1e-7


def test_gradient_flows_to_student_only():
    s = torch.randn(4, 3, requires_grad=True)
    t = torch.randn(4, 3, requires_grad=True)
    loss, _ = kd_loss(s, t.detach(), torch.tensor([0, 1, 2, 0]), temperature=4.0, alpha=0.5)
    loss.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None
