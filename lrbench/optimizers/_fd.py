"""Shared math of seed 000, "learning the learning rate" by finite differences.

Both methods of the paper run SGD, ``w(t+1) = w(t) - η(t) g(t)``, and adapt the scalar η
through the one-step loss along the gradient, ``f(η) = L(w(t) - η g(t))`` (eq. 1–2). The
first-order method (``fd_first_order``) is the hypergradient rule of
:mod:`lrbench.optimizers._hd`; the second-order method (``fd_newton``) uses the pure scalar
functions below, which ``torch.func.vmap`` can run over stacked seeds (no in-place mutation,
no Python branching on tensor values).
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Offsets, in units of ε, of the five probes f(η−2ε), f(η−ε), f(η), f(η+ε), f(η+2ε) (§4.1).
PROBE_OFFSETS = (-2, -1, 0, 1, 2)


def lr_update(lr: Tensor, lr_buf: Tensor, lr_step: Tensor, *, beta: float,
              delta: float) -> tuple[Tensor, Tensor]:
    """Apply one LR increment with momentum (§5.2) and the positivity clamp (eq. 13).

    ``b(t+1) = β b(t) + lr_step`` and ``η(t+1) = max(η(t) + b(t+1), δ)``. With ``β = 0`` this
    is exactly ``η(t+1) = max(η(t) + lr_step, δ)``. The buffer is not touched by the clamp
    (the paper clamps η "after each update" and says nothing about the buffer).

    Returns:
        ``(new_lr, new_lr_buf)``.
    """
    buf = beta * lr_buf + lr_step
    return torch.clamp(lr + buf, min=delta), buf


def newton_lr_step(losses: Tensor, eps: Tensor | float, delta: float) -> Tensor:
    """The Newton–Raphson increment of η from five loss values (eq. 6–12).

    Args:
        losses: ``[f(η−2ε), f(η−ε), f(η), f(η+ε), f(η+2ε)]`` (last dimension of size 5).
        eps: the finite-difference step ε.
        delta: δ, added to the denominator when it is exactly 0 (eq. 11–12).

    Returns:
        ``-2ε (f(η+ε) - f(η-ε)) / (f(η+2ε) + f(η-2ε) - 2 f(η))`` (eq. 10), i.e. ``-f'(η)/f''(η)``
        with ``f' ≈ (f(η+ε) - f(η-ε)) / 2ε`` and ``f'' ≈ (f(η+2ε) + f(η-2ε) - 2f(η)) / 4ε²``.
    """
    f_m2, f_m1, f_0, f_p1, f_p2 = losses.unbind(-1)
    den = f_p2 + f_m2 - 2 * f_0
    den = torch.where(den == 0, den + delta, den)
    return -2 * eps * (f_p1 - f_m1) / den
