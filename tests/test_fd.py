"""Tests of seed 000: fd_first_order and fd_newton (learning the LR by finite differences)."""

from __future__ import annotations

import math

import pytest
import torch

from lrbench.closure import OracleCounter, make_closure
from lrbench.optimizers._fd import lr_update, newton_lr_step
from lrbench.optimizers.fd_first_order import FDFirstOrder
from lrbench.optimizers.fd_newton import FDNewton
from toys import beale, logreg, quadratic

F64 = torch.float64
H = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=F64)


def full_quadratic(x0=(1.0, -1.0), dtype=F64):
    """f(x) = ½ xᵀHx with the non-diagonal H above (validation loss = the same)."""
    x = torch.tensor(x0, dtype=dtype, requires_grad=True)
    h = H.to(dtype)
    f = lambda: 0.5 * x @ h @ x  # noqa: E731
    counter = OracleCounter()
    return x, make_closure(f, [x], counter, compute_val_loss=f), counter


def line_minimiser(x):
    """η* = gᵀg / gᵀHg along −g at x, for f = ½ xᵀHx."""
    g = H @ x
    return float(g @ g / (g @ H @ g))


def run(opt, closure, steps):
    return [float(opt.step(closure)) for _ in range(steps)]


# ---------------------------------------------------------------- fd_newton


def test_newton_recovers_line_minimising_step():
    # by hand: g = Hx0 = (1.5, -0.5), gᵀg = 2.5, Hg = (2.75, 0.25), gᵀHg = 4, η* = 0.625
    x, closure, _ = full_quadratic()
    opt = FDNewton([x], lr=0.01)
    loss = opt.step(closure)
    assert float(loss) == pytest.approx(1.0)  # ½ x0ᵀHx0 = ½ (2 - 1 + 1), at the starting point
    assert float(opt.state[x]["lr"]) == pytest.approx(0.625, rel=1e-5)
    # the weights moved with the learning rate of the step (§4.1 order), and group lr says so
    assert torch.allclose(x.detach(), torch.tensor([1 - 0.01 * 1.5, -1 + 0.01 * 0.5], dtype=F64))
    assert float(opt.param_groups[0]["lr"]) == 0.01
    # the next step applies η*(x0) and learns the line minimiser at x1
    x1 = x.detach().clone()
    opt.step(closure)
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(0.625, rel=1e-5)
    assert torch.allclose(x.detach(), x1 - 0.625 * (H @ x1), rtol=0, atol=1e-5)
    assert float(opt.state[x]["lr"]) == pytest.approx(line_minimiser(x1), rel=1e-5)


def test_newton_lr_momentum():
    # b1 = η*(x0) - η0, η1 = η*(x0); b2 = β b1 + (η*(x1) - η1), η2 = η1 + b2 = η*(x1) + β b1
    x, closure, _ = full_quadratic()
    opt = FDNewton([x], lr=0.01, lr_momentum=0.9)
    opt.step(closure)
    x1 = x.detach().clone()
    opt.step(closure)
    expected = line_minimiser(x1) + 0.9 * (0.625 - 0.01)
    assert float(opt.state[x]["lr"]) == pytest.approx(expected, rel=1e-5)


def test_newton_step_zero_denominator_uses_delta():
    eps, delta = 1e-5, 1e-6
    flat = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0], dtype=F64)
    assert float(newton_lr_step(flat, eps, delta)) == 0.0
    # f(η+2ε) + f(η-2ε) - 2f(η) = 0 and f(η+ε) - f(η-ε) = 1: step = -2ε·1/δ = -20
    kink = torch.tensor([1.0, 1.0, 1.0, 2.0, 1.0], dtype=F64)
    assert float(newton_lr_step(kink, eps, delta)) == pytest.approx(-20.0)
    # eq. 10 on the losses of f(s) = (s - 3)² around η = 1 lands on 3
    s = 1.0 + eps * torch.arange(-2, 3, dtype=F64)
    assert float(1.0 + newton_lr_step((s - 3) ** 2, eps, delta)) == pytest.approx(3.0, rel=1e-6)


def test_newton_clamps_lr_at_delta():
    # losses of f(s) = (s + 1)² around η = 0.1: Newton's target -1 < 0 is clamped to δ (eq. 13)
    eps = 1e-5
    s = 0.1 + eps * torch.arange(-2, 3, dtype=F64)
    lr = torch.tensor(0.1, dtype=F64)
    new_lr, _ = lr_update(lr, torch.tensor(0.0, dtype=F64), newton_lr_step((s + 1) ** 2, eps, 1e-6),
                          beta=0.0, delta=1e-6)
    assert float(new_lr) == 1e-6


def test_newton_oracle_cost_and_probe_splits():
    x, closure, counter = full_quadratic()
    calls = []

    def spy(grad=True, split="train", create_graph=False):
        calls.append((grad, split))
        return closure(grad=grad, split=split)

    opt = FDNewton([x], validation=True)
    opt.step(spy)
    assert (counter.forward, counter.backward) == (6, 1)
    assert calls == [(True, "train")] + [(False, "val")] * 5
    calls.clear()
    FDNewton([x]).step(spy)
    assert calls == [(True, "train")] + [(False, "train")] * 5


def test_newton_probes_and_step_start_from_the_saved_weights():
    # float32, where w - s g + s g != w: the five probes w - (η + jε) g and the step w - η g are
    # all computed from the untouched w(k), so the probes leave no trace in the step
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3).to(torch.float32)
    params = list(model.parameters())
    x = torch.randn(16, 5)
    closure = make_closure(lambda: model(x).square().mean(), params)
    before = [p.detach().clone() for p in params]
    points, losses = [], []

    def spy(grad=True, split="train", create_graph=False):
        out = closure(grad=grad, split=split)
        if not grad:
            points.append([p.detach().clone() for p in params])
            losses.append(float(out))
        return out

    opt = FDNewton(params, lr=0.37, eps=0.013)
    opt.step(spy)
    grads = [p.grad for p in params]
    lr = torch.tensor(0.37)
    assert len(set(losses)) == 5  # the probes did move
    for j, point in zip(range(-2, 3), points):
        assert all(torch.equal(q, b - (lr + j * 0.013) * g) for q, b, g in zip(point, before, grads))
    assert all(torch.equal(p, b - lr * g) for p, b, g in zip(params, before, grads))


def test_newton_middle_probe_is_the_new_loss():
    # L(k+1) = f(η(k)) (§4.1): the j = 0 probe is the loss at the updated weights, bit for bit
    model, closure, _ = logreg(n=64, d=5)
    opt = FDNewton(model.parameters(), lr=0.3)
    seen = []

    def spy(grad=True, split="train", create_graph=False):
        out = closure(grad=grad, split=split)
        seen.append(out.clone())
        return out

    opt.step(spy)
    assert torch.equal(seen[3], closure(grad=False))


def test_newton_relative_eps_fixes_float32():
    # in float32 the paper's ε = 1e-5 cannot resolve f'' (4ε²f'' = 1.6e-9 < ulp(f = 1) = 1.2e-7);
    # ε = 0.1 η = 0.03 recovers η* = 0.625 (the finite differences are exact on a quadratic)
    x, closure, _ = full_quadratic(dtype=torch.float32)
    paper = FDNewton([x], lr=0.3)
    paper.step(closure)
    assert abs(float(paper.state[x]["lr"]) - 0.625) > 0.1
    x, closure, _ = full_quadratic(dtype=torch.float32)
    opt = FDNewton([x], lr=0.3, rel_eps=0.1)
    opt.step(closure)
    assert float(opt.state[x]["lr"]) == pytest.approx(0.625, rel=1e-3)


def test_newton_relative_eps_floor_is_initial_lr():
    # ε(k) = r·max(η(k), η(0)): after η(0) = 0.3 the probes sit at η ± j·0.03 even when η is tiny
    x, closure, _ = full_quadratic()
    opt = FDNewton([x], lr=0.3, rel_eps=0.1)
    opt.step(closure)
    opt.state[x]["lr"] = torch.tensor(1e-6, dtype=F64)
    offsets = []

    def spy(grad=True, split="train", create_graph=False):
        if not grad:
            offsets.append(x.detach().clone())
        return closure(grad=grad, split=split)

    x1 = x.detach().clone()
    opt.step(spy)
    g1 = H @ x1
    for j, xj in zip(range(-2, 3), offsets):
        assert torch.allclose(xj, x1 - (1e-6 + j * 0.03) * g1)


def test_newton_reduces_beale():
    # from (1, 1), f = 14.2: 0.085 after 10 steps; the method (no safeguard) diverges a few
    # steps later, when the line-minimising η of one gradient is applied to the next (§4.1 order)
    xy, closure, _ = beale()
    f0 = float(closure(grad=False))
    run(FDNewton([xy], lr=0.001), closure, 10)
    assert float(closure(grad=False)) < 0.01 * f0


@pytest.mark.parametrize("kw", [dict(), dict(rel_eps=0.1), dict(lr_momentum=0.9),
                                dict(validation=True)])
def test_newton_reduces_logreg(kw):
    # The method has no safeguard, and on this float32 problem its later trajectory hangs on
    # rounding: a 1e-9 change of the start moves the loss after 50 steps by up to 0.1·f0 with
    # lr_momentum (0.40·f0 here, 0.49·f0 at ATEN_CPU_CAPABILITY=default) and, with rel_eps,
    # from 0.005·f0 up to 6·f0 (a late blow-up). So: every loss finite, and the best loss of
    # 100 steps below f0/2. Measured (best/f0; avx512 = avx2, default; in brackets the range
    # over 30 starts perturbed by 1e-9 to 1e-6, all three capabilities): {} 0.323, 0.327
    # [0.318, 0.330]; rel_eps 0.003, 0.003 [0.000, 0.007]; lr_momentum 0.291, 0.403
    # [0.272, 0.403]; validation 0.322, 0.322 [0.318, 0.328].
    model, closure, _ = logreg()
    f0 = float(closure(grad=False))
    losses = run(FDNewton(model.parameters(), lr=0.1, **kw), closure, 100) + [float(closure(grad=False))]
    assert all(math.isfinite(v) for v in losses)
    assert min(losses) < 0.5 * f0, (f0, min(losses))


# ---------------------------------------------------------------- fd_first_order


def test_first_order_lr_change_is_alpha_g_dot_next_g():
    # f = ½(x1² + 0.5 x2²), x0 = (1, -1), η0 = 0.1, α = 0.01, by hand:
    # g0 = (1, -0.5); x1 = x0 - 0.1 g0 = (0.9, -0.95); g1 = (0.9, -0.475); g0·g1 = 1.1375
    x, closure, counter, _ = quadratic(diag=(1.0, 0.5), x0=(1.0, -1.0))
    opt = FDFirstOrder([x], lr=0.1, alpha=0.01)
    opt.step(closure)
    assert float(opt.param_groups[0]["lr"]) == 0.1  # no previous gradient yet
    assert torch.allclose(x.detach(), torch.tensor([0.9, -0.95], dtype=F64))
    opt.step(closure)
    eta1 = 0.1 + 0.01 * 1.1375
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(eta1, rel=1e-12)
    assert torch.allclose(x.detach(), torch.tensor([0.9 - eta1 * 0.9, -0.95 + eta1 * 0.475], dtype=F64))
    assert (counter.forward, counter.backward) == (2, 2)


def test_first_order_momentum():
    x, closure, _, d = quadratic(diag=(1.0, 0.5), x0=(1.0, -1.0))
    opt = FDFirstOrder([x], lr=0.1, alpha=0.01, lr_momentum=0.9)
    xs = [x.detach().clone()]
    for _ in range(3):
        opt.step(closure)
        xs.append(x.detach().clone())
    g = [d * xi for xi in xs]
    b2 = 0.01 * float(g[0] @ g[1])
    b3 = 0.9 * b2 + 0.01 * float(g[1] @ g[2])
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(0.1 + b2 + b3, rel=1e-12)


def test_first_order_validation_uses_val_gradient():
    # train loss ½x², val loss ½(x - 1)²; the LR moves by α g_train(x0)·g_val(x1)
    x = torch.tensor([2.0], dtype=F64, requires_grad=True)
    counter = OracleCounter()
    closure = make_closure(lambda: 0.5 * (x * x).sum(), [x], counter,
                           compute_val_loss=lambda: 0.5 * ((x - 1) ** 2).sum())
    opt = FDFirstOrder([x], lr=0.25, alpha=0.1, validation=True)
    opt.step(closure)  # x1 = 2 - 0.25·2 = 1.5
    assert float(x.detach()) == 1.5
    opt.step(closure)  # η1 = 0.25 + 0.1 · 2 · (1.5 - 1) = 0.35; x2 = 1.5 - 0.35·1.5
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(0.35, rel=1e-12)
    assert float(x.detach()) == pytest.approx(1.5 - 0.35 * 1.5, rel=1e-12)
    assert (counter.forward, counter.backward) == (4, 4)


def test_first_order_validation_with_groups_takes_one_val_gradient_at_w_t():
    # train ½(a² + b²), val ½((a − 1)² + (b − 1)²), one η per group: a0 = 2, b0 = −1, η0 = 0.25,
    # α = 0.1; x1 = (1.5, −0.75); the val gradient at x1, (0.5, −1.75), is taken before either
    # group moves: η_a = 0.25 + 0.1·2·0.5 = 0.35, η_b = 0.25 + 0.1·(−1)(−1.75) = 0.425
    a = torch.tensor([2.0], dtype=F64, requires_grad=True)
    b = torch.tensor([-1.0], dtype=F64, requires_grad=True)
    counter = OracleCounter()
    closure = make_closure(lambda: 0.5 * (a * a + b * b).sum(), [a, b], counter,
                           compute_val_loss=lambda: 0.5 * ((a - 1) ** 2 + (b - 1) ** 2).sum())
    opt = FDFirstOrder([{"params": [a]}, {"params": [b]}], lr=0.25, alpha=0.1, validation=True)
    run(opt, closure, 2)
    assert [float(g["lr"]) for g in opt.param_groups] == pytest.approx([0.35, 0.425], rel=1e-12)
    assert float(a.detach()) == pytest.approx(1.5 - 0.35 * 1.5, rel=1e-12)
    assert float(b.detach()) == pytest.approx(-0.75 + 0.425 * 0.75, rel=1e-12)
    assert (counter.forward, counter.backward) == (4, 4)  # one validation gradient per step
    assert all("val_grad" not in opt.state[p] for p in (a, b))  # kept for the step only


def test_first_order_clamps_lr_at_delta():
    # f = ½x², η0 = 3: x1 = -2 x0, g0·g1 = -2 x0² = -2, η1 = 3 - 10·2 < 0 -> δ
    x, closure, _, _ = quadratic(diag=(1.0,), x0=(1.0,))
    opt = FDFirstOrder([x], lr=3.0, alpha=10.0, delta=1e-6)
    run(opt, closure, 2)
    assert float(opt.param_groups[0]["lr"]) == 1e-6


def test_first_order_reduces_beale():
    xy, closure, _ = beale()
    f0 = float(closure(grad=False))
    run(FDFirstOrder([xy], lr=0.01, alpha=1e-5), closure, 200)
    assert float(closure(grad=False)) < 0.1 * f0


@pytest.mark.parametrize("kw", [dict(), dict(validation=True), dict(lr_momentum=0.9)])
def test_first_order_reduces_logreg(kw):
    model, closure, _ = logreg()
    f0 = float(closure(grad=False))
    opt = FDFirstOrder(model.parameters(), lr=0.1, **kw)
    run(opt, closure, 50)
    assert float(closure(grad=False)) < 0.5 * f0
