"""Tests of hypergradient descent: sgd_hd and adam_hd (Baydin et al. 2018; seed 001 eqs. 5-6)."""

from __future__ import annotations


import pytest
import torch

from lrbench.optimizers.adam_hd import AdamHD
from lrbench.optimizers.sgd_hd import SGDHD
from toys import logreg, quadratic


def _lr(opt):
    return float(opt.param_groups[0]["lr"])


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_hd_first_lr_updates_by_hand(momentum, nesterov):
    # f = 0.5 * (x1^2 + 0.5 x2^2), gradient (x1, 0.5 x2), from (1, -1).
    x, closure, _, _ = quadratic(diag=(1.0, 0.5), x0=(1.0, -1.0))
    lr0, beta, mu = 0.1, 0.01, momentum
    opt = SGDHD([x], lr=lr0, hypergrad_lr=beta, momentum=mu, nesterov=nesterov)
    opt.step(closure)
    # step 1: d_0 = 0, so the learning rate is unchanged; buffer b_1 = g_1
    g1 = [1.0, -0.5]
    d1 = [(1 + mu) * g for g in g1] if nesterov else g1
    assert _lr(opt) == lr0
    x1 = [1.0 - lr0 * d1[0], -1.0 - lr0 * d1[1]]
    assert x.tolist() == pytest.approx(x1, rel=1e-14)
    opt.step(closure)
    g2 = [x1[0], 0.5 * x1[1]]
    lr2 = lr0 + beta * (g2[0] * d1[0] + g2[1] * d1[1])
    assert _lr(opt) == pytest.approx(lr2, rel=1e-14)
    b2 = [mu * g1[i] + g2[i] for i in range(2)]
    d2 = [g2[i] + mu * b2[i] for i in range(2)] if nesterov else (b2 if mu else g2)
    assert x.tolist() == pytest.approx([x1[i] - lr2 * d2[i] for i in range(2)], rel=1e-14)


def test_adam_hd_first_lr_updates_by_hand():
    x, closure, _, _ = quadratic(diag=(1.0, 0.5), x0=(1.0, -1.0))
    lr0, beta, b1, b2, eps = 0.1, 0.01, 0.9, 0.999, 1e-8
    opt = AdamHD([x], lr=lr0, hypergrad_lr=beta)
    opt.step(closure)
    g1 = [1.0, -0.5]
    # step 1: m̂ = g, v̂ = g², d_1 = g / (|g| + eps)
    d1 = [g / (abs(g) + eps) for g in g1]
    assert _lr(opt) == lr0
    x1 = [1.0 - lr0 * d1[0], -1.0 - lr0 * d1[1]]
    assert x.tolist() == pytest.approx(x1, rel=1e-14)
    opt.step(closure)
    g2 = [x1[0], 0.5 * x1[1]]
    lr2 = lr0 + beta * (g2[0] * d1[0] + g2[1] * d1[1])
    assert _lr(opt) == pytest.approx(lr2, rel=1e-14)
    m = [0.9 * 0.1 * g1[i] + 0.1 * g2[i] for i in range(2)]
    v = [0.999 * 0.001 * g1[i] ** 2 + 0.001 * g2[i] ** 2 for i in range(2)]
    d2 = [(m[i] / (1 - b1**2)) / ((v[i] / (1 - b2**2)) ** 0.5 + eps) for i in range(2)]
    assert x.tolist() == pytest.approx([x1[i] - lr2 * d2[i] for i in range(2)], rel=1e-12)


def test_hypergradient_is_summed_over_all_tensors():
    # Two tensors, one group: the lr update is beta * (g_a . d_a + g_b . d_b), one lr for both.
    a = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([3.0], dtype=torch.float64, requires_grad=True)

    def closure(grad=True, split="train", create_graph=False):
        a.grad = b.grad = None
        with torch.enable_grad():
            loss = 0.5 * (a * a).sum() + 0.5 * (b * b).sum()
            loss.backward()
        return loss.detach()

    lr0, beta = 0.1, 0.01
    opt = SGDHD([a, b], lr=lr0, hypergrad_lr=beta)
    opt.step(closure)  # gradients (1, 2), (3); new params 0.9 * old
    opt.step(closure)  # gradients 0.9 * old: dot = 0.9 * (1 + 4 + 9)
    assert _lr(opt) == pytest.approx(lr0 + beta * 0.9 * 14.0, rel=1e-14)
    assert a.tolist() == pytest.approx([0.9 * (1 - _lr(opt)), 1.8 * (1 - _lr(opt))], rel=1e-14)
    assert b.tolist() == pytest.approx([2.7 * (1 - _lr(opt))], rel=1e-14)


@pytest.mark.parametrize("kw", [dict(), dict(momentum=0.9), dict(momentum=0.9, nesterov=True),
                                dict(momentum=0.5, dampening=0.3, weight_decay=0.01)])
def test_sgd_hd_with_zero_beta_is_torch_sgd(kw):
    model, closure, _ = logreg(n=64, d=5, dtype=torch.float64)
    ref_model, ref_closure, _ = logreg(n=64, d=5, dtype=torch.float64)
    opt = SGDHD(model.parameters(), lr=0.5, hypergrad_lr=0.0, **kw)
    ref = torch.optim.SGD(ref_model.parameters(), lr=0.5, **kw)
    for _ in range(20):
        assert float(opt.step(closure)) == pytest.approx(float(ref.step(ref_closure)), rel=1e-12)
        assert _lr(opt) == 0.5
    for p, q in zip(model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kw", [dict(), dict(beta1=0.5, beta2=0.9, eps=1e-6, weight_decay=0.01)])
def test_adam_hd_with_zero_beta_is_torch_adam(kw):
    model, closure, _ = logreg(n=64, d=5, dtype=torch.float64)
    ref_model, ref_closure, _ = logreg(n=64, d=5, dtype=torch.float64)
    opt = AdamHD(model.parameters(), lr=0.05, hypergrad_lr=0.0, **kw)
    betas = (kw.pop("beta1", 0.9), kw.pop("beta2", 0.999))
    ref = torch.optim.Adam(ref_model.parameters(), lr=0.05, betas=betas, **kw)
    for _ in range(20):
        assert float(opt.step(closure)) == pytest.approx(float(ref.step(ref_closure)), rel=1e-12)
        assert _lr(opt) == 0.05
    for p, q in zip(model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


def test_adam_hd_with_zero_beta_tracks_torch_adam_in_float32():
    """One Adam direction for every Adam-based key, computed as torch computes it (bias
    corrections as Python floats): after 50 float32 steps Adam-HD with β = 0 is within a few
    float32 rounding units of ``torch.optim.Adam`` (the separate rewrite it replaced was 2.1e-6
    away)."""
    model, closure, _ = logreg(n=64, d=5, dtype=torch.float32)
    ref_model, ref_closure, _ = logreg(n=64, d=5, dtype=torch.float32)
    opt = AdamHD(model.parameters(), lr=0.05, hypergrad_lr=0.0)
    ref = torch.optim.Adam(ref_model.parameters(), lr=0.05)
    for _ in range(50):
        opt.step(closure)
        ref.step(ref_closure)
    worst = max((p - q).abs().max().item() for p, q in zip(model.parameters(), ref_model.parameters()))
    assert worst <= 6e-7, worst


@pytest.mark.parametrize("cls", [SGDHD, AdamHD])
def test_clamp_keeps_lr_nonnegative(cls):
    # lr0 = 1.9 overshoots on the x1 axis (x1 -> -0.9 x1 for SGD), so g_t . d_{t-1} < 0 and
    # a large beta would drive the lr below zero without the clamp.
    lrs = {}
    for clamp in (True, False):
        x, closure, _, _ = quadratic(diag=(1.0,), x0=(1.0,))
        opt = cls([x], lr=1.9, hypergrad_lr=100.0, clamp_lr=clamp)
        opt.step(closure)
        opt.step(closure)
        lrs[clamp] = _lr(opt)
    assert lrs[False] < 0.0
    assert lrs[True] == 0.0


def test_group_lr_is_fresh_tensor_and_state_round_trips():
    x, closure, _, _ = quadratic()
    opt = SGDHD([x], momentum=0.9)
    opt.step(closure)
    lr_obj = opt.param_groups[0]["lr"]
    opt.step(closure)
    assert isinstance(opt.param_groups[0]["lr"], torch.Tensor)
    assert opt.param_groups[0]["lr"] is not lr_obj
    assert float(lr_obj) == 1e-3  # the tensor handed out after step 1 was not mutated
    assert opt.state[x]["step"] == 2


@pytest.mark.parametrize("cls", [SGDHD, AdamHD])
def test_oracle_cost_is_one_forward_one_backward(cls):
    x, closure, counter, _ = quadratic()
    opt = cls([x])
    for _ in range(5):
        opt.step(closure)
    assert (counter.forward, counter.backward) == (5, 5)


@pytest.mark.parametrize("cls, kw", [(SGDHD, dict(nesterov=True)), (SGDHD, dict(clamp_lr=1)),
                                     (AdamHD, dict(clamp_lr="yes")), (SGDHD, dict(lr=-1.0))])
def test_rejects_bad_options(cls, kw):
    x = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="invalid"):
        cls([x], **kw)


@pytest.mark.parametrize("cls", [SGDHD, AdamHD])
def test_hd_raises_a_too_small_initial_lr(cls):
    # On a quadratic, consecutive gradients agree while the lr is too small, so HD raises it
    # (the direction of Baydin et al.'s Fig. 2 and of the README's "lr=0 works").
    x, closure, _, _ = quadratic()
    opt = cls([x], lr=0.0, hypergrad_lr=1e-2)
    for _ in range(10):
        opt.step(closure)
    assert _lr(opt) > 0.0


def test_kept_gradient_changed_in_place_after_step_is_refused():
    """Without momentum d_{t-1} is the previous gradient; with lrbench's closure (which sets
    p.grad to None before each backward) SGD-HD keeps that tensor instead of copying it, and a
    change made to it in place after step() is caught rather than silently used."""
    x, closure, _, _ = quadratic()
    opt = SGDHD([x], lr=0.1, hypergrad_lr=0.01)
    opt.step(closure)
    opt.step(closure)  # the kept tensor is intact: fine
    x.grad.zero_()  # zero_grad(set_to_none=False) would do this
    with pytest.raises(ValueError, match="changed in place"):
        opt.step(closure)
    y, closure2, _, _ = quadratic()
    ref = SGDHD([y], lr=0.1, hypergrad_lr=0.01)

    def plain():  # a plain torch closure: the gradient is copied, so in-place zeroing is harmless
        ref.zero_grad(set_to_none=False)
        loss = 0.5 * (torch.tensor([1.0, 0.5], dtype=torch.float64) * y * y).sum()
        loss.backward()
        return loss

    for _ in range(3):
        ref.step(plain)
    z, closure3, _, _ = quadratic()
    same = SGDHD([z], lr=0.1, hypergrad_lr=0.01)
    for _ in range(3):
        same.step(closure3)
    assert torch.equal(y.detach(), z.detach())
