"""Update directions, each written once for both drivers (:mod:`lrbench.optimizers._core`).

A direction maps the gradient (and its own buffers) to the vector ``d`` a step-size rule
scales: ``w ← w − η d``. Each function takes ``(ops, t, params, grads, state, **coefficients)``
with ``t`` the steps taken before this one, and returns ``(d, g, state, fresh)``: the
direction, the (regularised) gradient it was built from, the updated state and whether ``d``
is a new tensor list the rule may keep (False when it aliases ``grads`` or a buffer).
"""

from __future__ import annotations

import math

import torch

from lrbench.optimizers._core import Ops

__all__ = ["sgd", "adam", "ema", "ema_bias", "adagrad", "rmsprop", "SGD_KEYS", "ADAM_KEYS", "EMA_KEYS", "ADAGRAD_KEYS",
           "RMSPROP_KEYS"]

SGD_KEYS = ("momentum_buffer",)
ADAM_KEYS = ("exp_avg", "exp_avg_sq")
EMA_KEYS = ("exp_avg",)
ADAGRAD_KEYS = ("sum",)
RMSPROP_KEYS = ("square_avg", "momentum_buffer")


def _regularised(ops: Ops, params, grads, weight_decay: float):
    """g + λw (a new list) or ``grads`` itself."""
    return ops.add(grads, params, weight_decay) if weight_decay else grads


def sgd(ops: Ops, t, params, grads, state, *, momentum: float = 0.0, dampening: float = 0.0,
        nesterov: bool = False, weight_decay: float = 0.0):
    """``torch.optim.SGD``'s direction (Sutskever et al. 2013 for the momentum forms):
    g ← g + λw; b ← g at the first step, else μb + (1 − τ)g; d = g + μb (Nesterov),
    b (heavy ball, μ > 0) or g (μ = 0). State ``momentum_buffer`` (only when μ > 0)."""
    g = _regularised(ops, params, grads, weight_decay)
    if not momentum:
        return g, g, state, bool(weight_decay)
    bufs = ops.select(t == 0, lambda: ops.set_(state["momentum_buffer"], g),
                      lambda: ops.scale_add_(state["momentum_buffer"], momentum, g, 1.0 - dampening))
    state = {**state, "momentum_buffer": bufs}
    if nesterov:
        return ops.add(g, bufs, momentum), g, state, True
    return bufs, g, state, False


def adam(ops: Ops, t, params, grads, state, *, beta1: float, beta2: float, eps: float,
         weight_decay: float = 0.0):
    """Adam's direction as ``torch.optim.Adam`` computes it (Kingma & Ba 2015, Algorithm 1,
    ε added to √v̂): with k = t + 1, g ← g + λw, m ← m + (1 − β₁)(g − m),
    v ← β₂v + (1 − β₂)g², d = (m / (1 − β₁ᵏ)) / (√v / √(1 − β₂ᵏ) + ε).
    The bias corrections are Python floats, as torch computes them. State ``exp_avg``, ``exp_avg_sq``."""
    g = _regularised(ops, params, grads, weight_decay)
    m = ops.lerp_(state["exp_avg"], g, 1.0 - beta1)
    v = ops.scale_addcmul_(state["exp_avg_sq"], beta2, g, g, 1.0 - beta2)
    bc1, bc2_sqrt = _bias(beta1, t), _bias_sqrt(beta2, t)
    d = _adam_div(ops, m, v, bc1, bc2_sqrt, eps)
    return d, g, {**state, "exp_avg": m, "exp_avg_sq": v}, True


def ema(ops: Ops, t, params, grads, state, *, beta: float):
    """The moving average of the gradient, m ← m + (1 − β)(g − m) (Adam's first moment;
    L4Mom's direction is its bias-corrected m̂ = m / (1 − βᵏ), k = t + 1). Returns m itself,
    the buffer, not m̂: a rule scales its step size by 1 / :func:`ema_bias` instead of
    dividing every element (a pass over the parameters and a new tensor per step). State
    ``exp_avg``."""
    m = ops.lerp_(state["exp_avg"], grads, 1.0 - beta)
    return m, grads, {**state, "exp_avg": m}, False


def ema_bias(beta: float, t: int) -> float:
    """1 − βᵏ, k = t + 1: the bias correction of :func:`ema` (m̂ = m / ema_bias)."""
    return _bias(beta, t)


def adagrad(ops: Ops, t, params, grads, state, *, eps: float, initial_accumulator_value: float = 0.0,
            weight_decay: float = 0.0):
    """AdaGrad's direction (Duchi et al. 2011) as ``torch.optim.Adagrad``: g ← g + λw,
    s ← s + g², d = g / (√(s₀ + s) + ε), with ``sum`` = s − s₀ kept from zero."""
    g = _regularised(ops, params, grads, weight_decay)
    s = ops.scale_addcmul_(state["sum"], 1.0, g, g, 1.0)
    std = [(x + initial_accumulator_value).sqrt() + eps for x in s] if initial_accumulator_value else \
        [x.sqrt() + eps for x in s]
    return [gi / si for gi, si in zip(g, std)], g, {**state, "sum": s}, True


def rmsprop(ops: Ops, t, params, grads, state, *, alpha: float, eps: float, momentum: float = 0.0,
            weight_decay: float = 0.0):
    """RMSProp's direction (Tieleman & Hinton 2012) as ``torch.optim.RMSprop``: g ← g + λw,
    v ← αv + (1 − α)g², u = g / (√v + ε); d = u, or with momentum b ← μb + u, d = b."""
    g = _regularised(ops, params, grads, weight_decay)
    v = ops.scale_addcmul_(state["square_avg"], alpha, g, g, 1.0 - alpha)
    u = [gi / (vi.sqrt() + eps) for gi, vi in zip(g, v)]
    state = {**state, "square_avg": v}
    if not momentum:
        return u, g, state, True
    b = ops.scale_add_(state["momentum_buffer"], momentum, u)
    return b, g, {**state, "momentum_buffer": b}, False


def _bias(beta: float, t: int) -> float:
    """1 − βᵏ, k = t + 1 (a Python float, as ``torch.optim.Adam`` computes it)."""
    return 1.0 - beta ** (t + 1)


def _bias_sqrt(beta: float, t: int) -> float:
    return math.sqrt(_bias(beta, t))


def _adam_div(ops: Ops, m, v, bc1, bc2_sqrt, eps: float):
    """(m / bc1) / (√v / √bc2 + ε), in place as m / (√v · (bc1/√bc2) + ε·bc1): the same
    quantity with the bias correction folded into the denominator (one pass fewer)."""
    if ops.inplace:
        denom = torch._foreach_sqrt(v)
        torch._foreach_mul_(denom, bc1 / bc2_sqrt)
        torch._foreach_add_(denom, eps * bc1)
        return torch._foreach_div(m, denom)
    return [mi / (vi.sqrt() * (bc1 / bc2_sqrt) + eps * bc1) for mi, vi in zip(m, v)]
