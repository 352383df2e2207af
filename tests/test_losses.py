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


# ---------------------------------------------------------------------------------------------
# The complete module: divergences, masking/normalisation, kd_loss, hidden-state and attention losses.

from compress.distill.losses import (  # noqa: E402
    DIVERGENCES,
    HiddenStateLoss,
    attention_loss,
    divergence,
    jsd,
    logit_mse,
    reverse_kl,
    uniform_layer_map,
)

KL_LIKE = ("forward_kl", "reverse_kl", "jsd")
# Uneven padding: lengths 6, 2, 4 (left-padded), 1, 5 out of L = 6.
LENGTHS = (6, 2, 4, 1, 5)
SPLITS = ((0, 2), (2, 3), (3, 5))  # three micro-batches of 2, 1 and 2 sequences


def padded_mask():
    mask = torch.zeros(len(LENGTHS), 6, dtype=torch.bool)
    for b, n in enumerate(LENGTHS):
        if b == 2:
            mask[b, 6 - n:] = True
        else:
            mask[b, :n] = True
    return mask


def random_attentions(layers, batch, heads, length, generator):
    return tuple(torch.randn(batch, heads, length, length, generator=generator).softmax(-1) for _ in range(layers))


@pytest.mark.parametrize("name", KL_LIKE)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(6, 5), (3, 4, 11)])
def test_kl_like_divergences_are_never_negative(name, dtype, shape):
    g = torch.Generator().manual_seed(1)
    for temperature in (0.5, 1.0, 2.0, 7.0):
        for _ in range(5):
            s = (torch.randn(shape, generator=g) * 3).to(dtype)
            t = (torch.randn(shape, generator=g) * 3).to(dtype)
            value = divergence(name, s, t, temperature)
            assert value.dtype == torch.float32
            assert torch.isfinite(value) and value.item() >= -1e-6, (name, temperature, value)


@pytest.mark.parametrize("name", DIVERGENCES)
@pytest.mark.parametrize("shape", [(6, 5), (3, 4, 11)])
def test_identical_inputs_give_zero_for_every_divergence(name, shape):
    logits = torch.randn(shape) * 4
    assert divergence(name, logits, logits.clone(), temperature=3.0).item() == pytest.approx(0.0, abs=1e-6)
    loss, parts = kd_loss(logits, logits.clone(), torch.zeros(shape[:-1], dtype=torch.long), 3.0, alpha=0.0,
                          divergence=name)
    assert loss.item() == pytest.approx(0.0, abs=1e-6) and parts["kd"] == pytest.approx(0.0, abs=1e-6)


def test_identical_inputs_give_zero_hidden_and_attention_losses():
    g = torch.Generator().manual_seed(2)
    hidden = tuple(torch.randn(2, 5, 8, generator=g) for _ in range(3))
    for kind in ("mse", "cosine"):
        loss = HiddenStateLoss([(0, 0), (1, 1), (2, 2)], 8, 8, kind=kind)(hidden, tuple(h.clone() for h in hidden))
        assert loss.item() == pytest.approx(0.0, abs=1e-6), kind
    att = random_attentions(2, 2, 3, 5, g)
    assert attention_loss(att, tuple(a.clone() for a in att), [(0, 0), (1, 1)]).item() == pytest.approx(0.0, abs=1e-7)


# Hand-computed values: teacher logits (2, 0) and student (0, 0) at T = 2, so p_t = softmax(1, 0), p_s = (1/2, 1/2).
E = math.exp(1)
P_T = [E / (E + 1), 1 / (E + 1)]
P_S = [0.5, 0.5]
TEACHER, STUDENT = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 0.0]])


def test_hand_computed_reverse_kl():
    expected = 4.0 * (0.5 * math.log(0.5 / P_T[0]) + 0.5 * math.log(0.5 / P_T[1]))
    assert reverse_kl(STUDENT, TEACHER, temperature=2.0).item() == pytest.approx(expected, rel=1e-6)
    assert divergence("reverse_kl", STUDENT, TEACHER, 2.0).item() == pytest.approx(expected, rel=1e-6)
    forward = 4.0 * (P_T[0] * math.log(P_T[0] / 0.5) + P_T[1] * math.log(P_T[1] / 0.5))
    assert expected != pytest.approx(forward, rel=1e-3)  # the two directions really differ here


@pytest.mark.parametrize("beta", [0.5, 0.25])
def test_hand_computed_jsd(beta):
    m = [beta * P_T[0] + (1 - beta) * P_S[0], beta * P_T[1] + (1 - beta) * P_S[1]]
    kl_t = P_T[0] * math.log(P_T[0] / m[0]) + P_T[1] * math.log(P_T[1] / m[1])
    kl_s = P_S[0] * math.log(P_S[0] / m[0]) + P_S[1] * math.log(P_S[1] / m[1])
    expected = 4.0 * (beta * kl_t + (1 - beta) * kl_s)
    assert jsd(STUDENT, TEACHER, temperature=2.0, beta=beta).item() == pytest.approx(expected, rel=1e-5)
    assert divergence("jsd", STUDENT, TEACHER, 2.0, beta=beta).item() == pytest.approx(expected, rel=1e-5)


def test_hand_computed_logit_mse_ignores_temperature():
    student = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    teacher = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    expected = ((1 + 4 + 9) / 3 + 4 / 3) / 2  # mean over classes, then over the two rows
    assert logit_mse(student, teacher).item() == pytest.approx(expected, rel=1e-6)
    for temperature in (1.0, 5.0):
        assert divergence("mse", student, teacher, temperature).item() == pytest.approx(expected, rel=1e-6)
    # masking the second row leaves only the first one
    mask = torch.tensor([True, False])
    assert divergence("mse", student, teacher, 3.0, mask=mask).item() == pytest.approx(14 / 3, rel=1e-6)


def test_hand_computed_token_level_forward_kl_with_mask():
    # (B=1, L=2, V=2): token 0 is the classic example, token 1 is padding with wild logits.
    student = torch.tensor([[[0.0, 0.0], [50.0, -50.0]]])
    teacher = torch.tensor([[[2.0, 0.0], [-50.0, 50.0]]])
    expected = 4.0 * (P_T[0] * math.log(P_T[0] / 0.5) + P_T[1] * math.log(P_T[1] / 0.5))
    value = divergence("forward_kl", student, teacher, 2.0, mask=torch.tensor([[True, False]]))
    assert value.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name", KL_LIKE)
def test_kl_like_divergences_scale_by_t_squared(name):
    torch.manual_seed(3)
    s, t = torch.randn(4, 5, 9), torch.randn(4, 5, 9)
    for temperature in (0.5, 2.0, 8.0):
        unscaled = divergence(name, s / temperature, t / temperature, 1.0).item()
        assert divergence(name, s, t, temperature).item() == pytest.approx(temperature**2 * unscaled, rel=1e-4)


def test_kd_loss_defaults_match_the_original_hinton_formula_bit_for_bit():
    # The first version of this module, as the distillation loop (tasks/classification/distilling.py) calls it.
    def original(s, t, labels, temperature, alpha):
        ce = F.cross_entropy(s.float(), labels)
        if alpha == 1.0:
            return ce
        kl = F.kl_div(F.log_softmax(s.float() / temperature, -1), F.log_softmax(t.float() / temperature, -1),
                      log_target=True, reduction="batchmean") * (temperature * temperature)
        return alpha * ce + (1.0 - alpha) * kl

    g = torch.Generator().manual_seed(4)
    for dtype in (torch.float32, torch.bfloat16):
        for batch, classes, temperature, alpha in ((16, 3, 4.0, 0.3), (7, 2, 2.0, 0.5), (33, 5, 1.0, 0.0),
                                                   (9, 4, 3.0, 1.0)):
            s = torch.randn(batch, classes, generator=g).to(dtype)
            t = torch.randn(batch, classes, generator=g).to(dtype)
            labels = torch.randint(0, classes, (batch,), generator=g)
            loss, parts = kd_loss(s, t, labels, temperature, alpha)
            assert torch.equal(loss, original(s, t, labels, temperature, alpha)), (dtype, batch, alpha)
            assert parts["kd"] == parts["kl"]
            assert set(parts) == {"ce", "kd", "kl"}


def test_alpha_one_is_token_level_cross_entropy_and_skips_the_divergence():
    torch.manual_seed(5)
    s = torch.randn(3, 4, 6)
    labels = torch.randint(0, 6, (3, 4))
    labels[0, 2:] = -100
    labels[2, 0] = -100
    broken_teacher = torch.full((3, 4, 6), float("nan"))  # would poison any divergence
    loss, parts = kd_loss(s, broken_teacher, labels, 2.0, alpha=1.0, divergence="jsd")
    expected = F.cross_entropy(s.reshape(-1, 6), labels.reshape(-1), ignore_index=-100)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert parts == {"ce": pytest.approx(expected.item(), rel=1e-6), "kd": 0.0, "kl": 0.0}


@pytest.mark.parametrize("name", DIVERGENCES)
def test_masked_positions_do_not_change_the_value(name):
    torch.manual_seed(6)
    mask = padded_mask()
    s, t = torch.randn(5, 6, 7), torch.randn(5, 6, 7)
    labels = torch.randint(0, 7, (5, 6))
    before = divergence(name, s, t, 2.0, mask=mask, beta=0.3).item()
    loss_before, _ = kd_loss(s, t, labels, 2.0, 0.4, divergence=name, mask=mask)
    s2, t2, labels2 = s.clone(), t.clone(), labels.clone()
    s2[~mask] = torch.randn(int((~mask).sum()), 7) * 100
    t2[~mask] = torch.randn(int((~mask).sum()), 7) * 100
    labels2[~mask] = 3
    assert divergence(name, s2, t2, 2.0, mask=mask, beta=0.3).item() == pytest.approx(before, rel=1e-6, abs=1e-7)
    loss_after, _ = kd_loss(s2, t2, labels2, 2.0, 0.4, divergence=name, mask=mask)
    assert loss_after.item() == pytest.approx(loss_before.item(), rel=1e-6, abs=1e-7)
    # and the masked value is the plain value over the valid positions only
    assert before == pytest.approx(divergence(name, s[mask], t[mask], 2.0, beta=0.3).item(), rel=1e-5)


def test_masked_positions_do_not_change_hidden_or_attention_losses():
    g = torch.Generator().manual_seed(7)
    mask = padded_mask()
    hs = tuple(torch.randn(5, 6, 8, generator=g) for _ in range(3))
    ht = tuple(torch.randn(5, 6, 12, generator=g) for _ in range(5))
    module = HiddenStateLoss(uniform_layer_map(2, 4), 8, 12)
    before = module(hs, ht, mask=mask).item()
    hs2 = tuple(h.masked_fill(~mask[..., None], 1e3) for h in hs)
    assert module(hs2, ht, mask=mask).item() == pytest.approx(before, rel=1e-6)

    a_s, a_t = random_attentions(2, 5, 2, 6, g), random_attentions(4, 5, 4, 6, g)
    layer_map = [(0, 1), (1, 3)]
    before = attention_loss(a_s, a_t, layer_map, mask=mask).item()
    pad_query_or_key = ~(mask[:, None, :, None] & mask[:, None, None, :])
    a_s2 = tuple(a.masked_fill(pad_query_or_key, 5.0) for a in a_s)
    assert attention_loss(a_s2, a_t, layer_map, mask=mask).item() == pytest.approx(before, rel=1e-6)


def test_fully_masked_input_gives_zero_not_nan():
    torch.manual_seed(8)
    mask = torch.zeros(2, 3, dtype=torch.bool)
    s = torch.randn(2, 3, 5, requires_grad=True)
    t = torch.randn(2, 3, 5)
    for name in DIVERGENCES:
        value = divergence(name, s, t, 2.0, mask=mask)
        assert value.item() == 0.0, name
        value.backward()
        assert torch.isfinite(s.grad).all() and s.grad.abs().sum() == 0, name
        s.grad = None
    loss, parts = kd_loss(s, t, torch.randint(0, 5, (2, 3)), 2.0, 0.5, mask=mask)
    assert loss.item() == 0.0 and parts["ce"] == 0.0 and parts["kd"] == 0.0
    loss, _ = kd_loss(s, t, torch.full((2, 3), -100), 2.0, 1.0)  # every label ignored
    assert loss.item() == 0.0
    hidden = (torch.randn(2, 3, 4), torch.randn(2, 3, 4))
    assert HiddenStateLoss([(0, 0), (1, 1)], 4, 6)(hidden, (torch.randn(2, 3, 6),) * 2, mask=mask).item() == 0.0
    att = random_attentions(1, 2, 2, 3, torch.Generator().manual_seed(0))
    assert attention_loss(att, random_attentions(1, 2, 2, 3, torch.Generator().manual_seed(1)), [(0, 0)],
                          mask=mask).item() == 0.0


@pytest.mark.parametrize("name", DIVERGENCES)
def test_micro_batches_sum_to_the_full_batch(name):
    torch.manual_seed(9)
    mask = padded_mask()
    total = int(mask.sum())
    s, t = torch.randn(5, 6, 7), torch.randn(5, 6, 7)
    labels = torch.randint(0, 7, (5, 6)).masked_fill(~mask, -100)
    full = divergence(name, s, t, 2.0, mask=mask, beta=0.3).item()
    parts = [divergence(name, s[a:b], t[a:b], 2.0, mask=mask[a:b], num_tokens=total, beta=0.3).item()
             for a, b in SPLITS]
    assert sum(parts) == pytest.approx(full, rel=1e-5)
    assert parts[0] != pytest.approx(full, rel=1e-3)  # each micro-batch is only a share
    # kd_loss: CE and the divergence together (labels are -100 exactly where the mask is False)
    full_loss, full_parts = kd_loss(s, t, labels, 2.0, 0.4, divergence=name, mask=mask, beta=0.3)
    split = [kd_loss(s[a:b], t[a:b], labels[a:b], 2.0, 0.4, divergence=name, mask=mask[a:b], num_tokens=total,
                     beta=0.3) for a, b in SPLITS]
    assert sum(loss.item() for loss, _ in split) == pytest.approx(full_loss.item(), rel=1e-5)
    assert sum(p["ce"] for _, p in split) == pytest.approx(full_parts["ce"], rel=1e-5)
    # CE alone (alpha = 1), the mask coming from the labels only
    full_ce, _ = kd_loss(s, t, labels, 2.0, 1.0)
    split_ce = [kd_loss(s[a:b], t[a:b], labels[a:b], 2.0, 1.0, num_tokens=total)[0].item() for a, b in SPLITS]
    assert sum(split_ce) == pytest.approx(full_ce.item(), rel=1e-5)


@pytest.mark.parametrize("kind", ["mse", "cosine"])
def test_micro_batches_sum_to_the_full_batch_for_hidden_and_attention_losses(kind):
    g = torch.Generator().manual_seed(10)
    mask = padded_mask()
    total = int(mask.sum())
    hs = tuple(torch.randn(5, 6, 8, generator=g) for _ in range(3))
    ht = tuple(torch.randn(5, 6, 12, generator=g) for _ in range(5))
    module = HiddenStateLoss(uniform_layer_map(2, 4), 8, 12, kind=kind)
    full = module(hs, ht, mask=mask).item()
    split = sum(module(tuple(h[a:b] for h in hs), tuple(h[a:b] for h in ht), mask=mask[a:b], num_tokens=total).item()
                for a, b in SPLITS)
    assert split == pytest.approx(full, rel=1e-5)

    a_s, a_t = random_attentions(2, 5, 2, 6, g), random_attentions(4, 5, 4, 6, g)
    full = attention_loss(a_s, a_t, [(0, 1), (1, 3)], mask=mask).item()
    split = sum(attention_loss(tuple(a[a0:b0] for a in a_s), tuple(a[a0:b0] for a in a_t), [(0, 1), (1, 3)],
                               mask=mask[a0:b0], num_tokens=total).item() for a0, b0 in SPLITS)
    assert split == pytest.approx(full, rel=1e-5)


def test_projection_exists_only_when_widths_differ_and_is_trained():
    same = HiddenStateLoss([(0, 0), (1, 2)], 16, 16)
    assert same.proj is None and list(same.parameters()) == []
    module = HiddenStateLoss([(0, 0), (1, 2)], 8, 16, kind="cosine")
    assert isinstance(module.proj, torch.nn.Linear) and module.proj.weight.shape == (16, 8)
    assert sum(p.numel() for p in module.parameters()) == 16 * 8 + 16
    hs = tuple(torch.randn(2, 3, 8, requires_grad=True) for _ in range(2))
    ht = tuple(torch.randn(2, 3, 16) for _ in range(3))
    module(hs, ht, mask=torch.tensor([[1, 1, 0], [1, 1, 1]])).backward()
    assert module.proj.weight.grad is not None and module.proj.weight.grad.abs().sum() > 0
    assert hs[1].grad is not None and hs[1].grad.abs().sum() > 0


def test_hand_computed_hidden_and_attention_losses():
    hs = (torch.tensor([[[1.0, 2.0]]]),)
    ht = (torch.tensor([[[2.0, 4.0]]]),)
    assert HiddenStateLoss([(0, 0)], 2, 2, "mse")(hs, ht).item() == pytest.approx((1 + 4) / 2)
    assert HiddenStateLoss([(0, 0)], 2, 2, "cosine")(hs, ht).item() == pytest.approx(0.0, abs=1e-6)  # parallel
    assert HiddenStateLoss([(0, 0)], 2, 2, "cosine")(hs, (-ht[0],)).item() == pytest.approx(2.0)  # opposite
    a_s = (torch.tensor([[[[1.0, 0.0], [0.5, 0.5]]]]),)  # (B=1, H=1, L=2, L=2)
    a_t = (torch.tensor([[[[0.5, 0.5], [0.5, 0.5]]]]),)
    # query 0: mean(0.25, 0.25) = 0.25; query 1: 0; mean over queries 0.125
    assert attention_loss(a_s, a_t, [(0, 0)]).item() == pytest.approx(0.125)
    # position 1 padded: only query 0 against key 0 is left, (1 - 0.5)^2
    assert attention_loss(a_s, a_t, [(0, 0)], mask=torch.tensor([[1, 0]])).item() == pytest.approx(0.25)


def test_attention_head_counts_differ_then_maps_are_head_averaged():
    g = torch.Generator().manual_seed(11)
    teacher = random_attentions(1, 2, 4, 5, g)
    # a 2-head student whose heads are pairwise means of the teacher's: same head-average, different heads
    student = (torch.stack([teacher[0][:, :2].mean(1), teacher[0][:, 2:].mean(1)], dim=1),)
    assert attention_loss(student, teacher, [(0, 0)]).item() == pytest.approx(0.0, abs=1e-7)
    other = random_attentions(1, 2, 2, 5, g)
    mean_s, mean_t = other[0].mean(1), teacher[0].mean(1)
    assert attention_loss(other, teacher, [(0, 0)]).item() == pytest.approx((mean_s - mean_t).pow(2).mean().item(),
                                                                          rel=1e-5)


def test_uniform_layer_map():
    assert uniform_layer_map(4, 12) == [(0, 0), (1, 3), (2, 6), (3, 9), (4, 12)]
    assert uniform_layer_map(6, 12) == [(0, 0)] + [(i, 2 * i) for i in range(1, 7)]
    assert uniform_layer_map(4, 10) == [(0, 0), (1, 3), (2, 5), (3, 8), (4, 10)]  # 2.5 -> 3, 7.5 -> 8
    assert uniform_layer_map(3, 3) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    with pytest.raises(ValueError):
        uniform_layer_map(0, 4)


def test_jsd_is_bounded_by_the_entropy_of_beta():
    torch.manual_seed(12)
    for temperature in (1.0, 2.0):
        s, t = torch.randn(64, 6) * 30, torch.randn(64, 6) * 30
        assert jsd(s, t, temperature, beta=0.5).item() <= temperature**2 * math.log(2) + 1e-5
        for beta in (0.1, 0.3, 0.9):
            bound = -beta * math.log(beta) - (1 - beta) * math.log(1 - beta)
            assert 0 <= jsd(s, t, temperature, beta=beta).item() <= temperature**2 * bound + 1e-5
    # disjoint supports reach the bound; beta = 0.5 is symmetric
    s, t = torch.tensor([[100.0, -100.0]]), torch.tensor([[-100.0, 100.0]])
    assert jsd(s, t, 1.0, beta=0.5).item() == pytest.approx(math.log(2), rel=1e-5)
    s, t = torch.randn(8, 5), torch.randn(8, 5)
    assert jsd(s, t, 2.0).item() == pytest.approx(jsd(t, s, 2.0).item(), rel=1e-5)
    assert jsd(s, t, 2.0, beta=0.2).item() != pytest.approx(jsd(t, s, 2.0, beta=0.2).item(), rel=1e-4)
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="beta"):
            jsd(s, t, 2.0, beta=bad)


@pytest.mark.parametrize("name", DIVERGENCES)
def test_huge_logits_stay_finite(name):
    torch.manual_seed(13)
    s, t = torch.randn(4, 9) * 1e4, torch.randn(4, 9) * 1e4
    assert torch.isfinite(divergence(name, s, t, 1.0))


def test_unknown_divergence_name_lists_the_valid_ones():
    s, t = torch.randn(2, 3), torch.randn(2, 3)
    with pytest.raises(ValueError) as err:
        divergence("kl", s, t, 2.0)
    with pytest.raises(ValueError) as err2:
        kd_loss(s, t, torch.tensor([0, 1]), 2.0, 1.0, divergence="tvd")
    for e in (err, err2):
        assert all(name in str(e.value) for name in DIVERGENCES)
    assert DIVERGENCES == ("forward_kl", "reverse_kl", "jsd", "mse")


def test_with_real_transformers_outputs():
    from transformers import BertConfig, BertModel

    def tiny(width, layers, heads):
        config = BertConfig(vocab_size=40, hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
                            intermediate_size=2 * width, max_position_embeddings=16)
        config._attn_implementation = "eager"  # sdpa returns no attention maps
        return BertModel(config, add_pooling_layer=False)

    torch.manual_seed(14)
    student, teacher = tiny(16, 2, 2), tiny(24, 4, 4).eval()
    ids = torch.randint(0, 40, (3, 7))
    attention_mask = torch.ones(3, 7, dtype=torch.long)
    attention_mask[1, 4:] = 0
    s_out = student(input_ids=ids, attention_mask=attention_mask, output_hidden_states=True, output_attentions=True)
    with torch.no_grad():
        t_out = teacher(input_ids=ids, attention_mask=attention_mask, output_hidden_states=True, output_attentions=True)
    hidden = HiddenStateLoss(uniform_layer_map(2, 4), 16, 24)
    assert len(s_out.hidden_states) == 3 and len(t_out.hidden_states) == 5  # embeddings + one per layer
    loss = hidden(s_out.hidden_states, t_out.hidden_states, mask=attention_mask)
    loss = loss + attention_loss(s_out.attentions, t_out.attentions, [(0, 1), (1, 3)], mask=attention_mask)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert hidden.proj.weight.grad.abs().sum() > 0
    assert student.embeddings.word_embeddings.weight.grad.abs().sum() > 0
