"""Tests for LQA (seed 004, Zhu et al. 2020): lrbench/optimizers/lqa.py."""

from __future__ import annotations

import io

import pytest
import torch

from lrbench.closure import make_closure
from lrbench.optimizers.lqa import LQA, lqa_step_size
from toys import beale, logreg, quadratic

F64 = torch.float64


def _line_min(g, d, h):
    """Exact minimiser of 0.5 xᵀHx along -d from a point with gradient g (H diagonal h)."""
    return float(g @ d / (d @ (h * d)))


@pytest.mark.parametrize("delta0", [1e-3, 0.01, 1.0, 7.3])
def test_exact_line_minimiser_on_quadratic(delta0):
    h = torch.tensor([2.0, 0.5], dtype=F64)
    x, closure, counter, _ = quadratic(diag=(2.0, 0.5), x0=(1.0, -1.0))
    opt = LQA([x], delta0=delta0)
    # step 1: g = Hx0 = (2, -0.5); eta = g'g / g'Hg = 4.25 / 8.125
    opt.step(closure)
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(4.25 / 8.125, rel=1e-9)
    x1 = torch.tensor([1.0 - 2.0 * 4.25 / 8.125, -1.0 + 0.5 * 4.25 / 8.125], dtype=F64)
    torch.testing.assert_close(x.detach(), x1, rtol=1e-9, atol=1e-12)
    # step 2, probing with the previous eta
    g = h * x1
    opt.step(closure)
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(_line_min(g, g, h), rel=1e-8)
    torch.testing.assert_close(x.detach(), x1 - _line_min(g, g, h) * g, rtol=1e-8, atol=1e-12)
    assert (counter.forward, counter.backward) == (6, 2)  # 3 forward + 1 backward per step


def test_momentum_direction_on_quadratic():
    h = torch.tensor([2.0, 0.5], dtype=F64)
    x, closure, _, _ = quadratic(diag=(2.0, 0.5), x0=(1.0, -1.0))
    opt = LQA([x], momentum=0.5)
    x0 = torch.tensor([1.0, -1.0], dtype=F64)
    d1 = h * x0  # first direction is the gradient
    x1 = x0 - _line_min(d1, d1, h) * d1
    g2 = h * x1
    d2 = 0.5 * d1 + 0.5 * g2
    x2 = x1 - _line_min(g2, d2, h) * d2
    opt.step(closure)
    opt.step(closure)
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(_line_min(g2, d2, h), rel=1e-8)
    torch.testing.assert_close(x.detach(), x2, rtol=1e-8, atol=1e-12)


def test_parameter_groups_share_one_line_search():
    h = torch.tensor([2.0, 0.5], dtype=F64)
    a = torch.tensor([1.0], dtype=F64, requires_grad=True)
    b = torch.tensor([-1.0], dtype=F64, requires_grad=True)
    closure = make_closure(lambda: 0.5 * (2.0 * a * a + 0.5 * b * b).sum(), [a, b])
    opt = LQA([{"params": [a]}, {"params": [b]}])
    opt.step(closure)
    g = h * torch.tensor([1.0, -1.0], dtype=F64)
    eta = _line_min(g, g, h)
    assert [float(gr["lr"]) for gr in opt.param_groups] == pytest.approx([eta, eta], rel=1e-9)
    torch.testing.assert_close(torch.cat([a, b]).detach(), torch.tensor([1.0, -1.0], dtype=F64) - eta * g)


def test_concave_fallback_steps_by_previous_delta():
    # f(x) = -x^2/2: b~ = -1/2 <= 0 along d = g = -x and l(x - 0.1 g) < l(x): step delta0 = 0.1
    x = torch.tensor([1.0], dtype=F64, requires_grad=True)
    closure = make_closure(lambda: -0.5 * (x * x).sum(), [x])
    opt = LQA([x], delta0=0.1)
    for expected in (1.1, 1.21):  # x <- x - 0.1 * (-x)
        loss = opt.step(closure)
        assert float(opt.param_groups[0]["lr"]) == 0.1
        assert float(x.detach()) == pytest.approx(expected, rel=1e-12)
        assert float(closure(grad=False)) < float(loss)


def test_step_size_formula_and_fallbacks():
    t = lambda v: torch.tensor(v, dtype=F64)  # noqa: E731

    def check(loss, minus, plus, step, next_delta0):
        out = lqa_step_size(t(loss), t(minus), t(plus), t(0.1))
        assert [float(o) for o in out] == pytest.approx([step, next_delta0], rel=1e-12)

    # b~ = (1.2 + 0.9 - 2) / (2 * 0.01) = 5, a~ = (1.2 - 0.9) / 0.2 = 1.5, delta* = 1.5 / 10
    check(1.0, 0.9, 1.2, 0.15, 0.15)
    # concave: b~ = (0.95 + 0.9 - 2) / 0.02 < 0, a~ > 0, l- < l: step delta0, keep it
    check(1.0, 0.9, 0.95, 0.1, 0.1)
    # a~ = (1.5 - 2) / 0.2 < 0 with b~ > 0, l- > l: no move, halve the probe
    check(1.0, 2.0, 1.5, 0.0, 0.05)
    # flat (b~ = a~ = 0): no move, halve
    check(1.0, 1.0, 1.0, 0.0, 0.05)
    # non-finite probes: step delta0 only if l- was measured lower
    check(1.0, 0.9, float("inf"), 0.1, 0.1)
    check(1.0, float("nan"), 1.2, 0.0, 0.05)
    check(1.0, float("inf"), 1.2, 0.0, 0.05)


def test_uphill_direction_does_not_move():
    # f = x^2/2; after one exact step from x = 1 (d = g = 1, δ* = 1) move x to -0.5, where
    # the momentum direction d = 0.9 * 1 + 0.1 * (-0.5) = 0.85 points uphill:
    # l- = l(-1.35) = 0.91125 > l = 0.125 > l+ = l(0.35) = 0.06125, so a~ < 0 < b~
    x = torch.tensor([1.0], dtype=F64, requires_grad=True)
    closure = make_closure(lambda: 0.5 * (x * x).sum(), [x])
    opt = LQA([x], delta0=0.1, momentum=0.9)
    opt.step(closure)  # exact line search: x = 0 (up to rounding)
    with torch.no_grad():
        x.fill_(-0.5)  # now g = -0.5 but d = 0.9 * 1 + 0.1 * (-0.5) = 0.85 points uphill
    before = x.detach().clone()
    opt.step(closure)
    assert float(opt.param_groups[0]["lr"]) == 0.0
    assert torch.equal(x.detach(), before)
    assert float(opt.state[x]["delta"]) == pytest.approx(0.5, rel=1e-12)  # δ* = 1, halved


def test_probes_leave_parameters_bit_identical():
    # at the minimum g = 0: the probes coincide with x, the update is zero, x must not move
    x, closure, _, _ = quadratic(x0=(0.0, 0.0))
    opt = LQA([x])
    opt.step(closure)
    assert torch.equal(x.detach(), torch.zeros(2, dtype=F64))
    # float32, where x + δ0·g - δ0·g != x: the probes are at x -/+ δ0·g, and the result is
    # exactly x - δ*·g computed from the untouched starting point
    w = torch.tensor([0.1, -0.3, 0.7], dtype=torch.float32, requires_grad=True)
    c = torch.tensor([1.0, 3.0, 0.3], dtype=torch.float32)
    seen = []

    def f():
        seen.append(w.detach().clone())
        return (c * w * w).sum() + torch.cos(w).sum()

    clo = make_closure(f, [w])
    opt = LQA([w], delta0=0.37)
    start = w.detach().clone()
    opt.step(clo)
    # g as the closure's backward computes it (the same kernels, so bit-equal on any CPU),
    # which is the hand formula up to rounding
    w0 = start.clone().requires_grad_(True)
    (g,) = torch.autograd.grad((c * w0 * w0).sum() + torch.cos(w0).sum(), w0)
    torch.testing.assert_close(g, 2 * c * start - torch.sin(start), rtol=1e-6, atol=1e-7)
    assert torch.equal(seen[0], start)
    assert torch.equal(seen[1], start - torch.tensor(0.37) * g)
    assert torch.equal(seen[2], start + torch.tensor(0.37) * g)
    assert float(opt.param_groups[0]["lr"]) > 0
    assert torch.equal(w.detach(), start - opt.param_groups[0]["lr"] * g)


def _run(opt, closure, steps):
    return [float(opt.step(closure)) for _ in range(steps)]


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_reduces_beale(momentum):
    xy, closure, _ = beale()
    opt = LQA([xy], momentum=momentum)
    f0 = float(closure(grad=False))
    _run(opt, closure, 100)
    assert float(closure(grad=False)) < 0.1 * f0


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_reduces_logistic_regression(momentum):
    model, closure, _ = logreg()
    opt = LQA(model.parameters(), momentum=momentum)
    f0 = float(closure(grad=False))
    _run(opt, closure, 30)
    assert float(closure(grad=False)) < 0.5 * f0


def test_state_dict_round_trip_with_momentum():
    model, closure, _ = logreg(dtype=F64)
    opt = LQA(model.parameters(), momentum=0.9)
    _run(opt, closure, 4)
    buf = io.BytesIO()
    torch.save((model.state_dict(), opt.state_dict()), buf)
    ref = _run(opt, closure, 3)
    buf.seek(0)
    model_sd, opt_sd = torch.load(buf, weights_only=False)
    model2, closure2, _ = logreg(dtype=F64)
    model2.load_state_dict(model_sd)
    opt2 = LQA(model2.parameters(), momentum=0.9)
    opt2.load_state_dict(opt_sd)
    assert _run(opt2, closure2, 3) == ref
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), model2.parameters()))
