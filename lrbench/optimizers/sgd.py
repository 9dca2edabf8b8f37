"""Stochastic gradient descent (``torch.optim.SGD``) with lrbench's validation."""

from __future__ import annotations

import torch

from lrbench.optimizers import _directions, _validate as v
from lrbench.optimizers._constant import constant_step
from lrbench.optimizers._core import TorchBacked
from lrbench.registry import register_optimizer


@register_optimizer("sgd")
class SGD(TorchBacked, torch.optim.SGD):
    """Plain SGD: ``w <- w - lr * (g + weight_decay * w)``, optionally with heavy-ball
    or Nesterov momentum, exactly as ``torch.optim.SGD``.

    Oracle cost per step: 1 forward, 1 backward. ``group["lr"]`` is constant.

    Args:
        params: parameters or parameter groups.
        lr: step size (default 0.01).
        momentum: heavy-ball coefficient in [0, 1) (default 0).
        dampening: momentum dampening in [0, 1] (default 0).
        weight_decay: L2 coefficient >= 0 (default 0).
        nesterov: Nesterov momentum (default False).
    """

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        v.positive("lr", lr)
        v.in_range("momentum", momentum, 0.0, 1.0, hi_open=True)
        v.in_range("dampening", dampening, 0.0, 1.0)
        v.nonneg("weight_decay", weight_decay)
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov)

    @classmethod
    def keys_for(cls, h: dict) -> tuple[str, ...]:
        return _directions.SGD_KEYS if h["momentum"] else ()

    @staticmethod
    def update(ops, h, t, params, grads, state, loss, oracle):
        """torch.optim.SGD's step (:func:`~lrbench.optimizers._directions.sgd`, constant η)."""
        d, _, state, _ = _directions.sgd(ops, t, params, grads, state, momentum=h["momentum"],
                                         dampening=h["dampening"], nesterov=h["nesterov"],
                                         weight_decay=h["weight_decay"])
        return constant_step(ops, params, d, h["lr"]), state, h["lr"]
