"""Adam (Kingma & Ba 2015) from ``torch.optim`` with lrbench's validation."""

from __future__ import annotations

import torch

from lrbench.optimizers import _directions, _validate as v
from lrbench.optimizers._constant import constant_step
from lrbench.optimizers._core import TorchBacked
from lrbench.registry import register_optimizer


@register_optimizer("adam")
class Adam(TorchBacked, torch.optim.Adam):
    """Adam exactly as ``torch.optim.Adam`` (Kingma & Ba 2015, Algorithm 1).

    Oracle cost per step: 1 forward, 1 backward. ``group["lr"]`` holds the base step size
    α; the per-coordinate scaling by 1/(√v̂ + ε) is not folded into it.

    Args:
        params: parameters or parameter groups.
        lr: step size α (default 0.001, the paper's).
        beta1, beta2: decay rates of the moment estimates in [0, 1) (defaults 0.9, 0.999).
        eps: denominator term > 0 (default 1e-8).
        weight_decay: L2 coefficient >= 0 (default 0).
    """

    def __init__(self, params, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0):
        v.positive("lr", lr)
        v.in_range("beta1", beta1, 0.0, 1.0, hi_open=True)
        v.in_range("beta2", beta2, 0.0, 1.0, hi_open=True)
        v.positive("eps", eps)
        v.nonneg("weight_decay", weight_decay)
        super().__init__(params, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)

    param_keys = _directions.ADAM_KEYS

    step_counts = True

    @staticmethod
    def update(ops, h, t, params, grads, state, loss, oracle):
        """torch.optim.Adam's step (:func:`~lrbench.optimizers._directions.adam`, constant α)."""
        d, _, state, _ = _directions.adam(ops, t, params, grads, state, beta1=h["betas"][0], beta2=h["betas"][1],
                                          eps=h["eps"], weight_decay=h["weight_decay"])
        return constant_step(ops, params, d, h["lr"]), state, h["lr"]
