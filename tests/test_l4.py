"""Tests of L4Mom / L4Adam (seed 003, Rolínek & Martius 2018) against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from lrbench.closure import make_closure
from lrbench.optimizers.l4_adam import L4Adam
from lrbench.optimizers.l4_mom import L4Mom
from toys import beale, logreg, quadratic

CLASSES = [L4Mom, L4Adam]


def test_first_step_with_gamma_zero_is_alpha_loss_over_grad_norm_squared():
    # f = 0.5 (x1² + 0.5 x2²) at (1, -1): L = 0.75, g = (1, -0.5), ‖g‖² = 1.25.
    # At the first step the bias-corrected momentum equals g, so with γ = 0 (eq. 6):
    # η = α L / ‖g‖² = 0.15 * 0.75 / 1.25 = 0.09 and x1 = x0 - 0.09 g = (0.91, -0.955).
    x, closure, counter, _ = quadratic()
    opt = L4Mom([x], gamma=0.0)
    loss = opt.step(closure)
    assert float(loss) == 0.75
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(0.09, rel=1e-12)
    torch.testing.assert_close(x.detach(), torch.tensor([0.91, -0.955], dtype=torch.float64),
                               rtol=1e-12, atol=1e-12)
    assert (counter.forward, counter.backward) == (1, 1)  # no probes

    # Second step, by hand: g1 = (0.91, -0.4775), m2 = 0.9 * 0.1 g0 + 0.1 g1,
    # m̂ = m2 / (1 - 0.9²); L1 = 0.5 (0.91² + 0.5 * 0.955²); η = 0.15 L1 / ‖m̂‖².
    m2 = (0.09 * 1.0 + 0.1 * 0.91, 0.09 * -0.5 + 0.1 * -0.4775)
    m_hat = (m2[0] / 0.19, m2[1] / 0.19)
    l1 = 0.5 * (0.91**2 + 0.5 * 0.955**2)
    eta = 0.15 * l1 / (m_hat[0] ** 2 + m_hat[1] ** 2)
    assert float(opt.step(closure)) == pytest.approx(l1, rel=1e-14)
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(eta, rel=1e-12)
    torch.testing.assert_close(
        x.detach(), torch.tensor([0.91 - eta * m_hat[0], -0.955 - eta * m_hat[1]], dtype=torch.float64),
        rtol=1e-12, atol=1e-12)


def test_first_step_defaults_use_gamma0_times_first_loss():
    # L_min = γ0 L = 0.5625; η = α (L - γ L_min) / ‖g‖² = 0.15 (0.75 - 0.50625) / 1.25.
    x, closure, _, _ = quadratic()
    opt = L4Mom([x])
    opt.step(closure)
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(0.15 * 0.24375 / 1.25, rel=1e-12)
    # stored for the next step: (1 + 1/τ) γ0 L
    assert float(opt.state[x]["l_min"]) == pytest.approx(1.001 * 0.5625, rel=1e-14)


def test_adam_two_steps_by_hand():
    # Step 1: m̂ = g0, ŝ = g0², v = g0 / (|g0| + 1e-4); with γ = 0: η = α L / (m̂ᵀv).
    x, closure, _, _ = quadratic()
    opt = L4Adam([x], gamma=0.0)
    opt.step(closure)
    g0 = (1.0, -0.5)
    v = (1.0 / 1.0001, -0.5 / 0.5001)
    eta = 0.15 * 0.75 / (g0[0] * v[0] + g0[1] * v[1])
    x1 = (1.0 - eta * v[0], -1.0 - eta * v[1])
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(eta, rel=1e-12)
    torch.testing.assert_close(x.detach(), torch.tensor(x1, dtype=torch.float64), rtol=1e-12, atol=1e-12)

    # Step 2: m̂ = (0.09 g0 + 0.1 g1) / 0.19, ŝ = (0.000999 g0² + 0.001 g1²) / (1 - 0.999²),
    # v = m̂ / (sqrt(ŝ) + 1e-4) and g = m̂ (not the raw g1) in η = α L1 / (gᵀv).
    g1 = (x1[0], 0.5 * x1[1])
    l1 = 0.5 * (x1[0] ** 2 + 0.5 * x1[1] ** 2)
    m_hat = [(0.09 * a + 0.1 * b) / 0.19 for a, b in zip(g0, g1)]
    s_hat = [(0.999 * 0.001 * a * a + 0.001 * b * b) / (1 - 0.999**2) for a, b in zip(g0, g1)]
    v = [m / (math.sqrt(s) + 1e-4) for m, s in zip(m_hat, s_hat)]
    eta = 0.15 * l1 / (m_hat[0] * v[0] + m_hat[1] * v[1])
    opt.step(closure)
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(eta, rel=1e-12)
    torch.testing.assert_close(x.detach(), torch.tensor([x1[0] - eta * v[0], x1[1] - eta * v[1]],
                                                        dtype=torch.float64), rtol=1e-12, atol=1e-12)


def _scripted_closure(losses, w):
    """Loss value losses[t] at call t, constant gradient w (so m̂ = w every step)."""
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    calls = iter(losses)

    def f():
        return next(calls) + (w * (x - x.detach())).sum()

    return x, make_closure(f, [x])


def test_l_min_bookkeeping_by_hand():
    # α = 0.15, γ = 0.9, γ0 = 0.75, τ = 10; ‖w‖² = 1 so η = 0.15 (L - 0.9 L_min_used).
    # step 1: L=4, L_min = 0.75*4 = 3    -> η = 0.15 (4 - 2.7)   = 0.195,   stored 3 * 1.1 = 3.3
    # step 2: L=5, min(3.3, 5) = 3.3     -> η = 0.15 (5 - 2.97)  = 0.3045,  stored 3.63
    # step 3: L=1, min(3.63, 1) = 1      -> η = 0.15 (1 - 0.9)   = 0.015,   stored 1.1
    # step 4: L=2, min(1.1, 2) = 1.1     -> η = 0.15 (2 - 0.99)  = 0.1515,  stored 1.21
    # step 5: L=3, min(1.21, 3) = 1.21   -> η = 0.15 (3 - 1.089) = 0.28665, stored 1.331
    losses = [4.0, 5.0, 1.0, 2.0, 3.0]
    etas = [0.195, 0.3045, 0.015, 0.1515, 0.28665]
    stored = [3.3, 3.63, 1.1, 1.21, 1.331]
    w = torch.tensor([0.6, 0.8], dtype=torch.float64)
    x, closure = _scripted_closure(losses, w)
    opt = L4Mom([x], tau=10.0)
    total = 0.0
    for loss, eta, l_min in zip(losses, etas, stored):
        assert float(opt.step(closure)) == loss
        assert float(opt.param_groups[0]["lr"]) == pytest.approx(eta, rel=1e-12)
        assert float(opt.state[x]["l_min"]) == pytest.approx(l_min, rel=1e-12)
        total += eta
    torch.testing.assert_close(x.detach(), -total * w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", CLASSES)
def test_reduces_beale(cls):
    xy, closure, _ = beale()
    opt = cls([xy])
    f0 = float(closure(grad=False))
    for _ in range(200):
        opt.step(closure)
    f1 = float(closure(grad=False))
    assert math.isfinite(f1) and f1 < 0.1 * f0, (f0, f1)  # measured: 14.2 -> 0.83 / 0.73


@pytest.mark.parametrize("cls", CLASSES)
def test_reduces_logistic_regression(cls):
    model, closure, _ = logreg()
    opt = cls(model.parameters())
    f0 = float(closure(grad=False))
    for _ in range(50):
        opt.step(closure)
    f1 = float(closure(grad=False))
    assert math.isfinite(f1) and f1 < 0.6 * f0, (f0, f1)  # measured: 1.099 -> 0.50 (both)


@pytest.mark.parametrize("cls", CLASSES)
def test_one_step_size_shared_by_all_groups(cls):
    # Splitting the parameters into two groups must not change the run (eq. 6 has one η).
    model, closure, _ = logreg(dtype=torch.float64)
    ref_model, ref_closure, _ = logreg(dtype=torch.float64)
    opt = cls([{"params": [model.weight]}, {"params": [model.bias]}])
    ref = cls(ref_model.parameters())
    for _ in range(3):
        opt.step(closure)
        ref.step(ref_closure)
    assert float(opt.param_groups[0]["lr"]) == float(opt.param_groups[1]["lr"]) == float(ref.param_groups[0]["lr"])
    assert torch.equal(model.weight, ref_model.weight) and torch.equal(model.bias, ref_model.bias)
    with pytest.raises(ValueError, match="invalid alpha"):
        cls([{"params": [model.weight]}, {"params": [model.bias], "alpha": 0.3}])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cls", CLASSES)
def test_cuda_matches_cpu(cls):
    runs = []
    for device in ("cpu", "cuda"):
        x = torch.tensor([1.0, 1.0], dtype=torch.float64, device=device, requires_grad=True)
        closure = make_closure(lambda: ((1.5 - x[0] + x[0] * x[1]) ** 2 + (2.25 - x[0] + x[0] * x[1] ** 2) ** 2
                                        + (2.625 - x[0] + x[0] * x[1] ** 3) ** 2), [x])
        opt = cls([x])
        for _ in range(20):
            opt.step(closure)
        runs.append(x.detach().cpu())
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-10, atol=1e-12)
