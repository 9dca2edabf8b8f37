"""RMSProp (Tieleman & Hinton 2012) from ``torch.optim`` with lrbench's validation."""

from __future__ import annotations

import torch

from lrbench.optimizers import _directions, _validate as v
from lrbench.optimizers._constant import constant_step
from lrbench.optimizers._core import TorchBacked
from lrbench.registry import register_optimizer


@register_optimizer("rmsprop")
class RMSprop(TorchBacked, torch.optim.RMSprop):
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

    @classmethod
    def keys_for(cls, h: dict) -> tuple[str, ...]:
        return _directions.RMSPROP_KEYS if h["momentum"] else _directions.RMSPROP_KEYS[:1]

    step_counts = True

    @staticmethod
    def update(ops, h, t, params, grads, state, loss, oracle):
        """torch.optim.RMSprop's step (not centred: the key does not expose it)."""
        d, _, state, _ = _directions.rmsprop(ops, t, params, grads, state, alpha=h["alpha"], eps=h["eps"],
                                             momentum=h["momentum"], weight_decay=h["weight_decay"])
        return constant_step(ops, params, d, h["lr"]), state, h["lr"]
