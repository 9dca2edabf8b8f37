"""RMSProp (Tieleman & Hinton 2012) from ``torch.optim`` with lrbench's validation."""

from __future__ import annotations

import torch

from lrbench.optimizers import _validate as v
from lrbench.registry import register_optimizer


@register_optimizer("rmsprop")
class RMSprop(torch.optim.RMSprop):
    """RMSProp exactly as ``torch.optim.RMSprop``: s ← ρ s + (1 − ρ) g², w ← w − lr·g / (√s + ε).

    Oracle cost per step: 1 forward, 1 backward. ``group["lr"]`` holds the base step size.

    Args:
        params: parameters or parameter groups.
        lr: step size (default 0.01, torch's).
        alpha: smoothing constant ρ in [0, 1) (default 0.99).
        eps: denominator term > 0 (default 1e-8).
        momentum: momentum in [0, 1) (default 0).
        weight_decay: L2 coefficient >= 0 (default 0).
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, weight_decay: float = 0.0):
        v.positive("lr", lr)
        v.in_range("alpha", alpha, 0.0, 1.0, hi_open=True)
        v.positive("eps", eps)
        v.in_range("momentum", momentum, 0.0, 1.0, hi_open=True)
        v.nonneg("weight_decay", weight_decay)
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, momentum=momentum, weight_decay=weight_decay)
