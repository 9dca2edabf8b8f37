"""Tests of SLS (Vaswani et al. 2019) and SPS (Loizou et al. 2021) against hand computations:
lrbench/optimizers/sls.py, lrbench/optimizers/sps.py, lrbench/optimizers/_polyak_armijo.py."""

from __future__ import annotations

import io
import math

import pytest
import torch

import lrbench.optimizers.sls  # noqa: F401  (registers "sls")
import lrbench.optimizers.sps  # noqa: F401  (registers "sps")
from lrbench.closure import OracleCounter, make_closure
from lrbench.optimizers._core import PURE
from lrbench.optimizers._polyak_armijo import armijo_gap, sgd_step, sls_reset, sps_rule
from lrbench.optimizers.sls import SLS
from lrbench.optimizers.sps import SPS
from lrbench.registry import optimizer_class
from toys import beale, logreg

F64 = torch.float64
CLASSES = [SLS, SPS]


def _recording_quadratic(h=(2.0, 0.5), x0=(1.0, -1.0), dtype=F64):
    """f(w) = 0.5 * sum(h_i w_i²); every closure call records the point it was evaluated at."""
    hh = torch.tensor(h, dtype=dtype)
    x = torch.tensor(x0, dtype=dtype, requires_grad=True)
    seen = []

    def f():
        seen.append(x.detach().clone())
        return 0.5 * (hh * x * x).sum()

    counter = OracleCounter()
    return x, make_closure(f, [x], counter), counter, seen


def _f_hand(w, h=(2.0, 0.5)):
    return 0.5 * sum(hi * wi * wi for hi, wi in zip(h, w))


# ----------------------------------------------------------------------------- SLS


def test_sls_backtracking_on_quadratic_by_hand():
    # f = 0.5 (2 w1² + 0.5 w2²) at w0 = (1, -1): f0 = 1.25, g = (2, -0.5), ‖g‖² = 4.25.
    # Start: min(lr γ^{1/1}, 10) = 2. Backtrack by 0.9 until
    # f(w0 - η g) <= f0 - 0.1 η ‖g‖², evaluated here with the explicit formula of f.
    x, closure, counter, seen = _recording_quadratic()
    opt = SLS([x])
    w0, g, f0, gsq = (1.0, -1.0), (2.0, -0.5), 1.25, 4.25
    trial = lambda eta: (w0[0] - eta * g[0], w0[1] - eta * g[1])  # noqa: E731
    etas = [2.0]
    while _f_hand(trial(etas[-1])) > f0 - 0.1 * etas[-1] * gsq:
        etas.append(etas[-1] * 0.9)
    eta = etas[-1]
    # the line search needs 8 reductions: η = 2·0.9⁸ ≈ 0.861 <= 2 (1 - c) ‖g‖² / Σh³w² ≈ 0.9415 < 2·0.9⁷
    assert len(etas) == 9 and eta == pytest.approx(2 * 0.9**8, rel=1e-14)
    assert _f_hand(trial(eta)) <= f0 - 0.1 * eta * gsq
    assert _f_hand(trial(eta / 0.9)) > f0 - 0.1 * (eta / 0.9) * gsq

    loss = opt.step(closure)
    assert float(loss) == f0
    assert float(opt.param_groups[0]["lr"]) == eta
    # 1 forward + 1 backward for the gradient, then one forward per trial step
    assert (counter.forward, counter.backward) == (1 + len(etas), 1)
    start = torch.tensor(w0, dtype=F64)
    gt = torch.tensor(g, dtype=F64)
    assert torch.equal(seen[0], start)
    for point, e in zip(seen[1:], etas):
        assert torch.equal(point, start - torch.tensor(e, dtype=F64) * gt)
    # eight failed probes left no trace: the result is exactly w0 - η g
    assert torch.equal(x.detach(), start - torch.tensor(eta, dtype=F64) * gt)


def test_sls_probes_leave_float32_parameters_bit_identical():
    # float32, where w - a + a != w in general: the result must be exactly w0 - η g with w0
    # the untouched start and η the accepted step.
    w = torch.tensor([0.1, -0.3, 0.7], dtype=torch.float32, requires_grad=True)
    c = torch.tensor([1.0, 3.0, 0.3], dtype=torch.float32)
    counter = OracleCounter()
    clo = make_closure(lambda: (c * w * w).sum() + torch.cos(w).sum(), [w], counter)
    start = w.detach().clone()
    opt = SLS([w])
    opt.step(clo)
    assert counter.forward > 2  # at least one probe failed (curvature 6 > 2 / η = 1 at η = 2)
    # g as the closure's backward computes it (the same kernels, so bit-equal on any CPU),
    # which is the hand formula up to rounding
    w0 = start.clone().requires_grad_(True)
    (g,) = torch.autograd.grad((c * w0 * w0).sum() + torch.cos(w0).sum(), w0)
    torch.testing.assert_close(g, 2 * c * start - torch.sin(start), rtol=1e-6, atol=1e-7)
    eta = opt.param_groups[0]["lr"]
    assert 0 < float(eta) < 2.0
    assert torch.equal(w.detach(), start - eta * g)


def _linear(a=(0.6, -0.8)):
    """f(w) = a·w: the Armijo condition holds at every η (f(w - ηa) = f - η‖a‖²)."""
    aa = torch.tensor(a, dtype=F64)
    x = torch.zeros(2, dtype=F64, requires_grad=True)
    counter = OracleCounter()
    return x, make_closure(lambda: (aa * x).sum(), [x], counter), counter, aa


@pytest.mark.parametrize("n, lr, eta_max", [(None, 1.0, 10.0), (1, 1.0, 10.0), (4, 1.0, 10.0), (3, 3.0, 5.0)])
def test_sls_reset_starts_from_grown_previous_step(n, lr, eta_max):
    # The first trial is always accepted, so each accepted η is the reset value
    # min(η_prev · 2^{1/n}, η_max) with η_prev = lr at the first step.
    x, closure, counter, a = _linear()
    opt = SLS([x], lr=lr, eta_max=eta_max, steps_per_epoch=n)
    factor = 2.0 ** (1.0 / (1 if n is None else n))
    eta, total = lr, 0.0
    for t in range(6):
        eta = min(eta * factor, eta_max)
        total += eta
        opt.step(closure)
        assert float(opt.param_groups[0]["lr"]) == pytest.approx(eta, rel=1e-14)
        assert counter.forward == 2 * (t + 1)  # one probe per step
    if n is None or n == 1:
        assert [eta] == [eta_max]  # 2, 4, 8, then the cap
    torch.testing.assert_close(x.detach(), -total * a, rtol=1e-13, atol=0)


def test_sls_second_step_starts_from_reset_of_accepted_step():
    x, closure, _, seen = _recording_quadratic()
    opt = SLS([x], steps_per_epoch=4)
    opt.step(closure)
    eta1 = float(opt.param_groups[0]["lr"])
    x1 = x.detach().clone()
    n_seen = len(seen)
    opt.step(closure)
    start2 = min(eta1 * 2.0**0.25, 10.0)
    g1 = torch.tensor([2.0, 0.5], dtype=F64) * x1
    # the first probe of the second step is at x1 - start2 · g1
    torch.testing.assert_close(seen[n_seen + 1], x1 - start2 * g1, rtol=1e-15, atol=0)


def test_sls_gives_up_after_max_backtracks():
    # f(w) = 1000 ‖w - w0‖₁ + a·w: g = a at w0 (|·|' = 0 at 0) and every trial violates Armijo:
    # f(w0 - ηa) - f(w0) = 1000 η ‖a‖₁ - η ‖a‖² > -0.1 η ‖a‖².
    a = torch.tensor([0.6, -0.8], dtype=F64)
    w0 = torch.tensor([1.0, 2.0], dtype=F64)
    x = w0.clone().requires_grad_(True)
    counter = OracleCounter()
    closure = make_closure(lambda: 1000.0 * (x - w0).abs().sum() + (a * x).sum(), [x], counter)
    opt = SLS([x], max_backtracks=3)
    opt.step(closure)
    eta = 2.0 * 0.9 * 0.9 * 0.9  # the smallest trial is applied
    assert counter.forward == 1 + 4
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(eta, rel=1e-15)
    assert torch.equal(x.detach(), w0 - opt.param_groups[0]["lr"] * a)
    assert float(opt.state[x]["eta"]) == pytest.approx(eta, rel=1e-15)


# ----------------------------------------------------------------------------- SPS


def test_sps_step_on_quadratic_by_hand():
    # f = 0.5 (2 w1² + 0.5 w2²), f* = 0, c = 0.5: η = f / (c ‖g‖²) when below the bound.
    x, closure, counter, _ = _recording_quadratic()
    opt = SPS([x])
    # step 1 at (1, -1): f = 1.25, ‖g‖² = 4.25, η = 1.25 / 2.125 < bound 2 · 1
    eta1 = 1.25 / (0.5 * 4.25)
    x1 = (1.0 - eta1 * 2.0, -1.0 + eta1 * 0.5)
    assert float(opt.step(closure)) == 1.25
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(eta1, rel=1e-14)
    torch.testing.assert_close(x.detach(), torch.tensor(x1, dtype=F64), rtol=1e-14, atol=1e-15)
    # step 2: g = (2 x1, 0.5 x2), bound 2 η1
    g = (2.0 * x1[0], 0.5 * x1[1])
    eta2 = min(_f_hand(x1) / (0.5 * (g[0] ** 2 + g[1] ** 2)), 2.0 * eta1)
    opt.step(closure)
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(eta2, rel=1e-13)
    torch.testing.assert_close(x.detach(), torch.tensor([x1[0] - eta2 * g[0], x1[1] - eta2 * g[1]], dtype=F64),
                               rtol=1e-13, atol=1e-15)
    assert (counter.forward, counter.backward) == (2, 2)


def test_sps_c_is_the_denominator_constant():
    x, closure, _, _ = _recording_quadratic()
    opt = SPS([x], c=0.2)
    opt.step(closure)
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(1.25 / (0.2 * 4.25), rel=1e-14)


def test_sps_smoothed_bound_binds():
    # lr = 0.1, 4 steps per epoch: bound_t = 0.1 · 2^{t/4} is below the Polyak ratio
    x, closure, _, _ = _recording_quadratic()
    opt = SPS([x], lr=0.1, steps_per_epoch=4)
    w = [1.0, -1.0]
    eta = 0.1
    for _ in range(3):
        g = (2.0 * w[0], 0.5 * w[1])
        ratio = _f_hand(w) / (0.5 * (g[0] ** 2 + g[1] ** 2))
        bound = eta * 2.0**0.25
        assert bound < ratio  # the cap binds
        eta = bound
        opt.step(closure)
        assert float(opt.param_groups[0]["lr"]) == pytest.approx(eta, rel=1e-14)
        w = [w[0] - eta * g[0], w[1] - eta * g[1]]
    torch.testing.assert_close(x.detach(), torch.tensor(w, dtype=F64), rtol=1e-14, atol=1e-15)


def _shifted_bowl(w0):
    """f(w) = 0.5 ‖w - t‖² + 1 with a movable target t (a stand-in for a changing batch)."""
    x = torch.tensor(w0, dtype=F64, requires_grad=True)
    t = torch.tensor(w0, dtype=F64)
    return x, t, make_closure(lambda: 0.5 * ((x - t) ** 2).sum() + 1.0, [x])


def test_sps_zero_gradient_keeps_step_size_positive():
    x, t, closure = _shifted_bowl((1.0, -1.0))
    opt = SPS([x])
    # step 1: t = w -> loss 1, g = 0: η = the bound 2 · 1 (finite, > 0), no move
    opt.step(closure)
    eta = opt.param_groups[0]["lr"]
    assert math.isfinite(float(eta)) and float(eta) == 2.0
    assert torch.equal(x.detach(), torch.tensor([1.0, -1.0], dtype=F64))
    # step 2: t = w + (1, 0) -> loss 1.5, g = (-1, 0), ‖g‖² = 1: η = min(1.5 / 0.5, 2 · 2) = 3
    t.copy_(torch.tensor([2.0, -1.0], dtype=F64))
    opt.step(closure)
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(3.0, rel=1e-15)
    torch.testing.assert_close(x.detach(), torch.tensor([4.0, -1.0], dtype=F64), rtol=0, atol=1e-15)


def test_sps_loss_below_f_star_does_not_move_nor_freeze():
    x, t, closure = _shifted_bowl((1.0, -1.0))
    opt = SPS([x], f_star=2.0)
    # loss 1.5 < f* = 2: η = 0, no move; the next bound still starts from η_prev = 1
    t.copy_(torch.tensor([2.0, -1.0], dtype=F64))
    opt.step(closure)
    assert float(opt.param_groups[0]["lr"]) == 0.0
    assert torch.equal(x.detach(), torch.tensor([1.0, -1.0], dtype=F64))
    # t = w + (3, 0): loss 5.5, g = (-3, 0): η = min((5.5 - 2) / (0.5 · 9), 2 · 1) = 7/9
    t.copy_(torch.tensor([4.0, -1.0], dtype=F64))
    opt.step(closure)
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(7.0 / 9.0, rel=1e-14)
    torch.testing.assert_close(x.detach(), torch.tensor([1.0 + 3.0 * 7.0 / 9.0, -1.0], dtype=F64),
                               rtol=1e-15, atol=0)


# ----------------------------------------------------------------------------- both


@pytest.mark.parametrize("cls", CLASSES)
def test_reduces_beale(cls):
    xy, closure, _ = beale()
    opt = cls([xy])
    f0 = float(closure(grad=False))
    for _ in range(100):
        opt.step(closure)
    f1 = float(closure(grad=False))
    assert math.isfinite(f1) and f1 < 0.01 * f0, (f0, f1)  # measured: 14.2 -> 1.1e-3 (sls), 9.3e-4 (sps)


@pytest.mark.parametrize("cls", CLASSES)
def test_reduces_logistic_regression(cls):
    model, closure, _ = logreg()
    opt = cls(model.parameters())
    f0 = float(closure(grad=False))
    for _ in range(30):
        opt.step(closure)
    f1 = float(closure(grad=False))
    assert math.isfinite(f1) and f1 < 0.2 * f0, (f0, f1)  # measured: 1.099 -> 0.074 (sls), 0.061 (sps)


@pytest.mark.parametrize("cls", CLASSES)
def test_one_step_size_shared_by_all_groups(cls):
    model, closure, _ = logreg(dtype=F64)
    ref_model, ref_closure, _ = logreg(dtype=F64)
    opt = cls([{"params": [model.weight]}, {"params": [model.bias]}])
    ref = cls(ref_model.parameters())
    for _ in range(3):
        opt.step(closure)
        ref.step(ref_closure)
    assert float(opt.param_groups[0]["lr"]) == float(opt.param_groups[1]["lr"]) == float(ref.param_groups[0]["lr"])
    assert torch.equal(model.weight, ref_model.weight) and torch.equal(model.bias, ref_model.bias)
    with pytest.raises(ValueError, match="invalid gamma"):
        cls([{"params": [model.weight]}, {"params": [model.bias], "gamma": 3.0}])


@pytest.mark.parametrize("cls", CLASSES)
def test_parameters_without_grad_are_skipped(cls):
    a = torch.tensor([1.0], dtype=F64, requires_grad=True)
    unused = torch.tensor([5.0], dtype=F64, requires_grad=True)
    opt = cls([unused, a])  # the shared state lives on `unused`, which never gets a gradient
    closure = make_closure(lambda: 0.5 * (a * a).sum(), [a, unused])
    for _ in range(3):
        opt.step(closure)
    assert float(unused.detach()) == 5.0 and abs(float(a.detach())) < 1.0


@pytest.mark.parametrize("cls", CLASSES)
def test_state_dict_round_trip_on_logreg(cls):
    model, closure, _ = logreg(dtype=F64)
    opt = cls(model.parameters(), steps_per_epoch=3)
    run = lambda o, c: [float(o.step(c)) for _ in range(3)]  # noqa: E731
    run(opt, closure)
    buf = io.BytesIO()
    torch.save((model.state_dict(), opt.state_dict()), buf)
    ref = run(opt, closure)
    buf.seek(0)
    model_sd, opt_sd = torch.load(buf, weights_only=False)
    model2, closure2, _ = logreg(dtype=F64)
    model2.load_state_dict(model_sd)
    opt2 = cls(model2.parameters(), steps_per_epoch=3)
    opt2.load_state_dict(opt_sd)
    assert run(opt2, closure2) == ref
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), model2.parameters()))


@pytest.mark.parametrize("key, kwargs", [("sls", {"c": 1.0}), ("sls", {"beta_b": 0.0}), ("sls", {"gamma": 0.5}),
                                         ("sls", {"max_backtracks": 0}), ("sls", {"steps_per_epoch": 0}),
                                         ("sps", {"f_star": float("inf")}), ("sps", {"c": 0.0}),
                                         ("sps", {"steps_per_epoch": 2.5})])
def test_rejects_out_of_range(key, kwargs):
    (name,) = kwargs
    with pytest.raises(ValueError, match=f"invalid {name}"):
        optimizer_class(key)([torch.zeros(2, requires_grad=True)], **kwargs)


# ----------------------------------------------------------------------------- vmap


def _seed(s):
    g = torch.Generator().manual_seed(s)
    r = lambda *shape: torch.randn(shape, generator=g, dtype=F64)  # noqa: E731
    return g, r


def _tree_stack(per_seed):
    return torch.utils._pytree.tree_map(lambda *xs: torch.stack(xs), *per_seed)


def _check_vmap(fn, per_seed):
    batched = torch.func.vmap(fn)(*_tree_stack(per_seed))
    for s, inputs in enumerate(per_seed):
        copies = torch.utils._pytree.tree_map(torch.clone, inputs)
        single = fn(*inputs)
        for b, o in zip(torch.utils._pytree.tree_leaves(batched), torch.utils._pytree.tree_leaves(single)):
            torch.testing.assert_close(b[s], o, rtol=1e-13, atol=1e-15)
        for a, b in zip(torch.utils._pytree.tree_leaves(inputs), torch.utils._pytree.tree_leaves(copies)):
            assert torch.equal(a, b)  # inputs not mutated
    return batched


def test_vmap_sls_pieces_over_seeds_equal_separate_calls():
    def one(params, grads, eta_prev, loss, trial_loss, grad_sq):
        eta = sls_reset(eta_prev, gamma=2.0, n_batches=3, eta_max=10.0)
        return sgd_step(params, grads, eta), eta, armijo_gap(loss, trial_loss, eta, grad_sq, 0.1)

    per_seed = []
    for s in range(4):
        _, r = _seed(s)
        eta_prev = torch.tensor([0.5, 9.5, 3.0, 1e-3][s], dtype=F64)  # seed 1 hits the cap
        loss = r().abs() + 1.0
        trial_loss = loss + [-50.0, 5.0, -50.0, 5.0][s]  # Armijo holds for seeds 0 and 2 only
        per_seed.append(([r(3, 2), r(2)], [r(3, 2), r(2)], eta_prev, loss, trial_loss, r().abs()))
    _, etas, gaps = _check_vmap(one, per_seed)
    assert float(etas[1]) == 10.0 and float(etas[0]) == pytest.approx(0.5 * 2 ** (1 / 3), rel=1e-15)
    assert (gaps <= 0).tolist() == [True, False, True, False]


def test_vmap_sps_update_over_seeds_equals_separate_calls():
    def one(params, grads, loss, eta_prev):  # the rule SPS's step() and functional() run, pure
        h = {"c": 0.5, "f_star": 0.1, "gamma": 2.0, "steps_per_epoch": 2}
        new, state, eta = sps_rule(PURE, h, 0, params, grads, {"eta": eta_prev}, loss, None)
        return new, eta, state["eta"]

    per_seed = []
    for s in range(4):
        _, r = _seed(s)
        grads = [r(3, 2), r(2)]
        if s == 2:
            grads = [torch.zeros_like(gr) for gr in grads]  # zero gradient: η = bound
        loss = torch.tensor(0.05, dtype=F64) if s == 3 else r().abs() + 1.0  # seed 3: loss < f*
        eta_prev = torch.tensor([1.0, 1e-4, 0.7, 0.3][s], dtype=F64)  # seed 1: the bound binds
        per_seed.append(([r(3, 2), r(2)], grads, loss, eta_prev))
    _, etas, nexts = _check_vmap(one, per_seed)
    assert float(etas[1]) == pytest.approx(1e-4 * 2**0.5, rel=1e-14)
    assert float(etas[2]) == pytest.approx(0.7 * 2**0.5, rel=1e-14) and float(nexts[2]) == float(etas[2])
    assert float(etas[3]) == 0.0 and float(nexts[3]) == 0.3
    assert torch.isfinite(etas).all()
