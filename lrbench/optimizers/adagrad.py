"""AdaGrad (Duchi et al. 2011) from ``torch.optim`` with lrbench's validation."""

from __future__ import annotations

import torch

from lrbench.optimizers import _directions, _validate as v
from lrbench.optimizers._constant import constant_step
from lrbench.optimizers._core import TorchBacked
from lrbench.registry import register_optimizer


@register_optimizer("adagrad")
class Adagrad(TorchBacked, torch.optim.Adagrad):
    """AdaGrad exactly as ``torch.optim.Adagrad``: s ← s + g², w ← w − lr·g / (√s + ε).

    Oracle cost per step: 1 forward, 1 backward. ``group["lr"]`` holds the base step size;
    the per-coordinate 1/(√s + ε) is not folded into it.

    Args:
        params: parameters or parameter groups.
        lr: step size (default 0.01, torch's).
        initial_accumulator_value: s₀ >= 0 (default 0).
        eps: denominator term > 0 (default 1e-10, torch's).
        weight_decay: L2 coefficient >= 0 (default 0).
    """

    def __init__(self, params, lr: float = 1e-2, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, weight_decay: float = 0.0):
        v.positive("lr", lr)
        v.nonneg("initial_accumulator_value", initial_accumulator_value)
        v.positive("eps", eps)
        v.nonneg("weight_decay", weight_decay)
        super().__init__(params, lr=lr, initial_accumulator_value=initial_accumulator_value, eps=eps,
                         weight_decay=weight_decay)

    param_keys = _directions.ADAGRAD_KEYS

    step_counts = True

    @staticmethod
    def update(ops, h, t, params, grads, state, loss, oracle):
        """torch.optim.Adagrad's step (no ``lr_decay``: the key does not expose it)."""
        d, _, state, _ = _directions.adagrad(ops, t, params, grads, state, eps=h["eps"],
                                             initial_accumulator_value=h["initial_accumulator_value"],
                                             weight_decay=h["weight_decay"])
        return constant_step(ops, params, d, h["lr"]), state, h["lr"]
