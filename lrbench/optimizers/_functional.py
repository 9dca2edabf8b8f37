"""The functional form of an optimizer, for the vectorised runner (:mod:`lrbench.vectorized`).

An optimizer class that offers one defines ``functional(**hparams) -> Functional``: the same
update as its ``step()``, as pure functions of one run's tensors, which ``torch.func.vmap``
maps over the stacked seeds of a sweep. Also here: the pure updates of ``torch.optim.SGD``
and ``torch.optim.Adam`` (torch's own are written in place, over optimizer state), checked
against them in ``tests/test_vectorized.py``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor

__all__ = ["Functional", "sgd_update", "adam_update"]

Probe = Callable[[list[Tensor]], Tensor]


class Functional(NamedTuple):
    """``init(params) -> state`` and ``step(params, grads, loss, state, probe) -> (params,
    state, lr)``: ``state`` is a dict of tensors (or lists of tensors), ``loss`` the batch loss
    at ``params``, ``probe(ps)`` the batch loss at other parameters ``ps`` (one forward pass,
    for methods that probe; the runner counts it), ``lr`` the step size applied (0-d)."""

    init: Callable[[list[Tensor]], dict[str, Any]]
    step: Callable[[list[Tensor], list[Tensor], Tensor, dict[str, Any], Probe],
                   tuple[list[Tensor], dict[str, Any], Tensor]]


def _constant(lr: float) -> Tensor:
    """A constant step size as the 0-d float64 tensor ``step`` returns (float64 so that the
    runner logs the same number as ``group["lr"]`` of the optimizer itself)."""
    return torch.tensor(lr, dtype=torch.float64)


def sgd_update(params: list[Tensor], grads: list[Tensor], bufs: list[Tensor], t: Tensor | None, *, lr: float,
               momentum: float, dampening: float, weight_decay: float, nesterov: bool
               ) -> tuple[list[Tensor], list[Tensor]]:
    """``torch.optim.SGD``'s step: g ← g + λw; b ← g at the first step, else μb + (1 − τ)g;
    d = g + μb (Nesterov) or b (μ > 0) or g; w ← w − ηd. Returns ``(params, bufs)``."""
    gs = [g + weight_decay * p for p, g in zip(params, grads)] if weight_decay else list(grads)
    if momentum:
        bufs = [torch.where(t == 0, g, momentum * b + (1.0 - dampening) * g) for g, b in zip(gs, bufs)]
        dirs = [g + momentum * b for g, b in zip(gs, bufs)] if nesterov else bufs
    else:
        dirs = gs
    return [p - lr * d for p, d in zip(params, dirs)], bufs


def adam_update(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor],
                t: Tensor, *, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float
                ) -> tuple[list[Tensor], list[Tensor], list[Tensor], Tensor]:
    """``torch.optim.Adam``'s step (Kingma & Ba 2015, Algorithm 1, with torch's placement of
    ε): t ← t + 1; m ← β₁m + (1 − β₁)g; v ← β₂v + (1 − β₂)g²;
    w ← w − (η / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε). Returns ``(params, m, v, t)``."""
    t = t + 1
    gs = [g + weight_decay * p for p, g in zip(params, grads)] if weight_decay else list(grads)
    ms = [m + (1.0 - beta1) * (g - m) for m, g in zip(exp_avgs, gs)]
    vs = [beta2 * v + (1.0 - beta2) * g * g for v, g in zip(exp_avg_sqs, gs)]
    # bias corrections in float64, as torch computes them (Python floats): in float32,
    # 1 − 0.999¹ already loses five digits
    t64 = t.double()
    step_size = (lr / (1.0 - torch.pow(beta1, t64))).to(t.dtype)
    bc2_sqrt = (1.0 - torch.pow(beta2, t64)).sqrt().to(t.dtype)
    new = [p - step_size * (m / (v.sqrt() / bc2_sqrt + eps)) for p, m, v in zip(params, ms, vs)]
    return new, ms, vs, t
