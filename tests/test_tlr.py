"""Tests of the Trainable Learning Rate optimizers (seed 002): tlr, tlr_pl, tlr_naive."""

from __future__ import annotations

import io
import math
from typing import NamedTuple, Sequence

import pytest
import torch
from torch import Tensor

from lrbench.optimizers._core import INPLACE, Oracle
from lrbench.optimizers._tlr import newton_factor, tlr_naive_step, tlr_pl_step, tlr_step, window_length
from lrbench.optimizers.tlr import TLR
from lrbench.optimizers.tlr_naive import TLRNaive
from lrbench.optimizers.tlr_pl import TLRPerLayer
from toys import logreg, quadratic

# ---- the rules on given tensors (the in-place driver's arithmetic), for hand-computed values

Tensors = Sequence[Tensor]

class TLRResult(NamedTuple):
    """Output of :func:`tlr_update` / :func:`tlr_pl_update` (new parameters and state)."""

    params: list[Tensor]
    momentum_buffers: list[Tensor]
    grad_acc: list[Tensor]  # sum of directions in the current (unfinished) window
    grad_prev: list[Tensor]  # mean direction of the last finished window, G_{t-1}
    alpha: Tensor | list[Tensor]  # 0-d (tlr) or one 0-d tensor per parameter tensor (tlr_pl)
    step: Tensor  # steps taken so far
    lr: Tensor  # step size applied in this step (tlr_pl: mean of the per-tensor alphas)


class TLRNaiveResult(NamedTuple):
    """Output of :func:`tlr_naive_update`."""

    params: list[Tensor]
    momentum_buffers: list[Tensor]
    grad_acc: list[Tensor]
    alpha: Tensor
    step: Tensor
    lr: Tensor


def _copies(xs: Tensors) -> list[Tensor]:
    return [x.detach().clone() for x in xs]


def _given(h: dict, momentum_buffers, grad_acc, **more) -> dict:
    state = {"grad_acc": _copies(grad_acc), **more}
    if h["momentum"]:
        state["momentum_buffer"] = _copies(momentum_buffers)
    return state


class _GivenGradient(Oracle):
    """An in-place oracle whose probe gradient is given (it moves the parameters as a real one)."""

    def __init__(self, params, grads):
        self.params, self.grads = params, grads

    def grad_at(self, base, dirs, s, split="train"):
        INPLACE.add_(INPLACE.set_(self.params, base), dirs, s)
        return None, _copies(self.grads)


def tlr_update(params: Tensors, grads: Tensors, momentum_buffers: Tensors, grad_acc: Tensors,
               grad_prev: Tensors, alpha: Tensor, step, *, momentum: float, weight_decay: float,
               c: float, window: int) -> TLRResult:
    """:func:`tlr_step` on copies of the given tensors (``step`` = steps taken before; the
    momentum buffer is ``d_{t-1}``, not used at step 0), with the in-place driver's arithmetic."""
    h = dict(momentum=momentum, weight_decay=weight_decay, c=c)
    state = _given(h, momentum_buffers, grad_acc, grad_prev=_copies(grad_prev), alpha=alpha.clone())
    ps, st, lr = tlr_step(INPLACE, h, int(step), _copies(params), list(grads), state, window=window)
    return TLRResult(ps, st.get("momentum_buffer", list(momentum_buffers)), st["grad_acc"], st["grad_prev"],
                     st["alpha"], torch.as_tensor(step) + 1, lr)


def tlr_pl_update(params: Tensors, grads: Tensors, momentum_buffers: Tensors, grad_acc: Tensors,
                  grad_prev: Tensors, alphas: Tensors, step, *, momentum: float, weight_decay: float,
                  c: float, window: int) -> TLRResult:
    """:func:`tlr_pl_step` on copies of the given tensors (as :func:`tlr_update`)."""
    h = dict(momentum=momentum, weight_decay=weight_decay, c=c, lr=None)
    state = _given(h, momentum_buffers, grad_acc, grad_prev=_copies(grad_prev), alpha=_copies(alphas))
    ps, st, lr = tlr_pl_step(INPLACE, h, int(step), _copies(params), list(grads), state, window=window,
                             fresh=False)
    return TLRResult(ps, st.get("momentum_buffer", list(momentum_buffers)), st["grad_acc"], st["grad_prev"],
                     st["alpha"], torch.as_tensor(step) + 1, lr)


def tlr_naive_update(params: Tensors, grads: Tensors, momentum_buffers: Tensors, grad_acc: Tensors,
                     alpha: Tensor, step, probe_grads: Tensors | None, *, eta: float, momentum: float,
                     weight_decay: float, window: int) -> TLRNaiveResult:
    """:func:`tlr_naive_step` on copies of the given tensors (as :func:`tlr_update`), with
    ``probe_grads`` the loss gradient at the lookahead point (None on steps that close no window)."""
    h = dict(momentum=momentum, weight_decay=weight_decay, eta=eta)
    ps = _copies(params)
    state = _given(h, momentum_buffers, grad_acc, alpha=alpha.clone())
    oracle = _GivenGradient(ps, probe_grads)
    ps, st, lr = tlr_naive_step(INPLACE, h, int(step), ps, list(grads), state, oracle, window=window)
    return TLRNaiveResult(ps, st.get("momentum_buffer", list(momentum_buffers)), st["grad_acc"], st["alpha"],
                          torch.as_tensor(step) + 1, lr)


D = torch.float64
GD = dict(momentum=0.0, weight_decay=0.0)  # plain GD, so the direction is the gradient


def t(*xs):
    return torch.tensor(xs, dtype=D)


def zeros_like(xs):
    return [torch.zeros_like(x) for x in xs]


def run_tlr(grads_seq, alpha0=0.1, c=0.25, window=1):
    """Feed constructed gradients to the pure tlr_update; return alpha after each step."""
    w = [t(0.0, 0.0)]
    bufs, acc, prev = zeros_like(w), zeros_like(w), zeros_like(w)
    alpha, step, alphas = torch.tensor(alpha0, dtype=D), torch.tensor(0), []
    for g in grads_seq:
        out = tlr_update(w, [g], bufs, acc, prev, alpha, step, c=c, window=window, **GD)
        w, bufs, acc, prev, alpha, step = out.params, out.momentum_buffers, out.grad_acc, out.grad_prev, out.alpha, out.step
        alphas.append(alpha.item())
    return alphas


# ---------------------------------------------------------------- the alpha rule (eqs. 7-9)

@pytest.mark.parametrize("g, g_prev, factor", [
    # aligned, non-positive curvature <g, g - g'> <= 0: the c bound, 1 + 1/4
    ((1.0, 0.0), (1.0, 0.0), 1.25),
    ((1.0, 0.0), (2.0, 0.0), 1.25),
    # aligned, ip = 0.25, sq = 2: 1 + 0.25 / max(4 * 1.75, 4 * 0.25) = 1 + 1/28
    ((1.0, 1.0), (0.5, -0.25), 1.0 + 1.0 / 28.0),
    # opposed, ip = -1, sq = 1: 1 - 1 / (4 * 2)
    ((1.0, 0.0), (-1.0, 0.0), 0.875),
    # strongly opposed, ip = -1000, sq = 1: 1 - 1000 / (4 * 1001), still above 3/4
    ((1.0, 0.0), (-1000.0, 0.0), 1.0 - 1000.0 / 4004.0),
    # orthogonal (line-search optimum, Section 3): no change
    ((0.0, 1.0), (1.0, 0.0), 1.0),
    # zero current gradient: denominator 0, must give no change, not NaN
    ((0.0, 0.0), (1.0, 0.0), 1.0),
    # zero previous gradient (first update, g_{-1} = 0)
    ((1.0, 2.0), (0.0, 0.0), 1.0),
])
def test_tlr_update_hand_values(g, g_prev, factor):
    w, g, q = t(3.0, -2.0), t(*g), t(*g_prev)
    alpha = torch.tensor(0.1, dtype=D)
    out = tlr_update([w], [g], [torch.zeros_like(w)], [torch.zeros_like(w)], [q], alpha, torch.tensor(0),
                     c=0.25, window=1, **GD)
    assert out.alpha.item() == pytest.approx(0.1 * factor, rel=1e-14)
    assert torch.allclose(out.params[0], w - 0.1 * factor * g, rtol=0, atol=1e-15)
    assert torch.equal(out.grad_prev[0], g)
    assert out.lr.item() == out.alpha.item() and out.step.item() == 1


def test_newton_factor_bounds_and_c():
    gen = torch.Generator().manual_seed(0)
    g, q = torch.randn(2000, 5, generator=gen, dtype=D), torch.randn(2000, 5, generator=gen, dtype=D)
    q = q * torch.logspace(-4, 4, 2000, dtype=D)[:, None]  # previous gradient of any relative size
    f = newton_factor((g * q).sum(1), (g * g).sum(1), 0.25)
    assert torch.isfinite(f).all()
    assert (f <= 1.25).all() and (f > 0.75).all()
    assert (f > 1).any() and (f < 1).any() and (f == 1.25).any()
    # sign of the change = sign of <g_t, g_{t-1}> (eq. 7)
    assert torch.equal(torch.sign(f - 1), torch.sign((g * q).sum(1)))
    # the bound follows c: alpha_{t+1} <= (1 + c) alpha_t
    assert newton_factor(t(1.0), t(1.0), 0.5).item() == 1.5
    assert newton_factor(t(0.0), t(0.0), 0.25).item() == 1.0  # g_t = 0


def test_alpha_grows_then_shrinks_over_steps():
    g, h = t(1.0, 0.0), t(-1.0, 0.0)
    # aligned: unchanged at the first step (g_{-1} = 0), then x1.25 per step
    assert run_tlr([g] * 4) == pytest.approx([0.1, 0.125, 0.15625, 0.1953125], rel=1e-14)
    # alternating: x0.875 per step after the first
    assert run_tlr([g, h, g, h]) == pytest.approx([0.1, 0.0875, 0.0765625, 0.066992187_5], rel=1e-14)
    # zero gradients throughout: alpha stays, nothing becomes NaN
    assert run_tlr([t(0.0, 0.0)] * 3) == [0.1, 0.1, 0.1]


def test_per_layer_pure_update_one_alpha_per_tensor():
    ws = [t(1.0, 2.0), t(0.5)]
    gs = [t(1.0, 0.0), t(2.0)]
    prev = [t(1.0, 0.0), t(-2.0)]  # tensor 0 aligned (x1.25), tensor 1 opposed: 1 - 4/(4*8)
    alphas = [torch.tensor(0.1, dtype=D), torch.tensor(0.2, dtype=D)]
    out = tlr_pl_update(ws, gs, zeros_like(ws), zeros_like(ws), prev, alphas, torch.tensor(0),
                        c=0.25, window=1, **GD)
    a0, a1 = 0.1 * 1.25, 0.2 * (1 - 4 / 32)
    assert [a.item() for a in out.alpha] == pytest.approx([a0, a1], rel=1e-14)
    assert out.lr.item() == pytest.approx((a0 + a1) / 2, rel=1e-14)
    assert torch.allclose(out.params[0], t(1.0 - a0, 2.0), rtol=0, atol=1e-15)
    assert torch.allclose(out.params[1], t(0.5 - 2 * a1), rtol=0, atol=1e-15)


def test_per_layer_optimizer_keeps_one_alpha_per_tensor():
    model, closure, _ = logreg(n=64, d=5, dtype=D)
    opt = TLRPerLayer(model.parameters())
    for _ in range(25):  # both alphas sit at the x1.25 bound for the first 20 steps
        opt.step(closure)
    alphas = [opt.state[p]["alpha"] for p in model.parameters()]
    assert len(alphas) == 2 and all(a.dim() == 0 for a in alphas)
    assert alphas[0].item() != alphas[1].item()
    assert float(opt.param_groups[0]["lr"]) == pytest.approx((alphas[0] + alphas[1]).item() / 2, rel=1e-14)
    # the global variant keeps a single alpha
    model, closure, _ = logreg(n=64, d=5, dtype=D)
    opt = TLR(model.parameters())
    opt.step(closure)
    assert [("alpha" in opt.state[p]) for p in model.parameters()] == [True, False]


# ---------------------------------------------------------------- SGD extension (Section 4)

def test_window_length():
    assert window_length(1 / 3, None) == 1
    assert window_length(1 / 3, 9) == 3
    assert window_length(1 / 3, 10) == 3
    assert window_length(0.5, 8) == 4
    assert window_length(1 / 3, 2) == 1


@pytest.mark.parametrize("cls", [TLR, TLRPerLayer, TLRNaive])
@pytest.mark.parametrize("n, p, window", [(9, 1 / 3, 3), (8, 0.5, 4), (None, 1 / 3, 1)])
def test_alpha_updated_every_pN_steps(cls, n, p, window):
    x, closure, counter, _ = quadratic(diag=(1.0, 0.5), x0=(1.0, -1.0))
    kw = dict(eta=0.05) if cls is TLRNaive else {}
    opt = cls([x], p=p, steps_per_epoch=n, **kw)
    steps, changed = 24, []
    for k in range(1, steps + 1):
        before = float(opt.param_groups[0]["lr"])
        opt.step(closure)
        if float(opt.param_groups[0]["lr"]) != before:
            changed.append(k)
    expected = list(range(window, steps + 1, window))
    if cls is not TLRNaive:
        expected = expected[1:]  # the first update sees g_{-1} = 0 and keeps alpha
    assert changed == expected
    if cls is TLRNaive:  # one extra forward-backward per alpha update
        assert (counter.forward, counter.backward) == (steps + steps // window,) * 2
    else:
        assert (counter.forward, counter.backward) == (steps, steps)


def test_window_gradient_is_weight_difference_over_alpha():
    """Eq. 10: the accumulated gradient equals (w_{t-pN} - w_t) / alpha (here divided by pN)."""
    model, closure, _ = logreg(n=64, d=5, dtype=D)
    opt = TLR(model.parameters(), steps_per_epoch=12, p=0.25)  # window 3, momentum and decay on
    w0 = [p.detach().clone() for p in model.parameters()]
    for _ in range(3):  # first window: alpha stays 0.1 (g_{-1} = 0)
        opt.step(closure)
    for p, a in zip(model.parameters(), w0):
        assert torch.allclose(opt.state[p]["grad_prev"], (a - p.detach()) / (3 * 0.1), rtol=1e-12, atol=1e-14)
        assert torch.equal(opt.state[p]["grad_acc"], torch.zeros_like(p))


# ---------------------------------------------------------------- naive variant (Algorithm 1)

def test_naive_hand_computed_step():
    # f = 0.5 (x1^2 + 0.5 x2^2) at (1, -1): g = (1, -0.5); u = x - 0.1 g = (0.9, -0.95);
    # grad f(u) = (0.9, -0.475); <grad f(u), g> = 1.1375; alpha' = 0.1 + 0.01 * 1.1375
    x, closure, counter, _ = quadratic(diag=(1.0, 0.5), x0=(1.0, -1.0))
    opt = TLRNaive([x], lr=0.1, eta=0.01, **GD)
    opt.step(closure)
    a = 0.1 + 0.01 * 1.1375
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(a, rel=1e-14)
    assert torch.allclose(x.detach(), t(1 - a, -1 + 0.5 * a), rtol=0, atol=1e-15)
    assert (counter.forward, counter.backward) == (2, 2)


def test_naive_alpha_clipped_at_zero():
    w, g = [t(1.0)], [t(1.0)]
    out = tlr_naive_update(w, g, zeros_like(w), zeros_like(w), torch.tensor(0.1, dtype=D), torch.tensor(0),
                           [t(-100.0)], eta=1.0, window=1, **GD)  # hypergradient +100
    assert out.alpha.item() == 0.0 and torch.equal(out.params[0], w[0])


def test_naive_probe_restores_parameters_and_grads_bit_exactly():
    model, base, _ = logreg(n=64, d=5, dtype=torch.float32)
    params = list(model.parameters())
    seen = []

    def closure(grad=True, **kw):
        seen.append([p.detach().clone() for p in params])
        return base(grad, **kw)

    opt = TLRNaive(params, weight_decay=1e-2)
    for _ in range(3):
        opt.step(closure)
    # next step: redo by hand from copies, with the probe gradient recorded by the closure
    w0 = [p.detach().clone() for p in params]
    st = [opt.state[p] for p in params]
    alpha, step = st[0]["alpha"], st[0]["step"]
    bufs = [s["momentum_buffer"].clone() for s in st]  # the step updates the buffers in place
    probe_grads = []

    def closure2(grad=True, **kw):
        loss = closure(grad, **kw)
        probe_grads.append([p.grad.clone() for p in params])
        return loss

    opt.step(closure2)
    assert all(torch.equal(a, b) for a, b in zip(seen[-2], w0))  # first call at w_t
    look = [w - alpha * b for w, b in zip(w0, [0.8 * b + g + 1e-2 * w
                                                for w, b, g in zip(w0, bufs, probe_grads[0])])]
    assert all(torch.allclose(a, b, rtol=0, atol=1e-7) for a, b in zip(seen[-1], look))  # probe at u
    assert not torch.equal(seen[-1][0], w0[0])
    assert all(torch.equal(p.grad, g) for p, g in zip(params, probe_grads[0]))  # .grad restored
    ref = tlr_naive_update(w0, probe_grads[0], bufs, [torch.zeros_like(w) for w in w0], alpha, step,
                           probe_grads[1], eta=1e-4, momentum=0.8, weight_decay=1e-2, window=1)
    assert all(torch.equal(p.detach(), r) for p, r in zip(params, ref.params))


# ---------------------------------------------------------------- contract

@pytest.mark.parametrize("cls", [TLR, TLRPerLayer, TLRNaive])
def test_defaults_halve_the_conformance_quadratic(cls):
    x, closure, _, _ = quadratic(diag=(1.0, 0.5), x0=(1.0, -1.0))
    opt = cls([x])
    f0 = float(closure(grad=False))
    for _ in range(100):
        opt.step(closure)
    f1 = float(closure(grad=False))
    assert math.isfinite(f1) and f1 < 0.5 * f0


@pytest.mark.parametrize("cls", [TLR, TLRPerLayer, TLRNaive])
def test_state_dict_round_trip_mid_window(cls):
    def make(x0):
        model, closure, _ = logreg(n=64, d=5, dtype=D)
        if x0 is not None:
            with torch.no_grad():
                for p, a in zip(model.parameters(), x0):
                    p.copy_(a)
        return model, closure, cls(model.parameters(), steps_per_epoch=9)  # window 3

    model, closure, opt = make(None)
    for _ in range(4):
        opt.step(closure)
    saved_x = [p.detach().clone() for p in model.parameters()]
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    for _ in range(5):
        opt.step(closure)
    model2, closure2, opt2 = make(saved_x)
    buf.seek(0)
    opt2.load_state_dict(torch.load(buf, weights_only=False))
    for _ in range(5):
        opt2.step(closure2)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), model2.parameters()))


@pytest.mark.parametrize("cls", [TLR, TLRPerLayer, TLRNaive])
@pytest.mark.parametrize("bad", [0, 2.5, float("nan")])
def test_rejects_bad_steps_per_epoch(cls, bad):
    with pytest.raises(ValueError, match="invalid steps_per_epoch"):
        cls([torch.zeros(2, requires_grad=True)], steps_per_epoch=bad)
