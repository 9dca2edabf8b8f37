"""Stochastic gradient descent (``torch.optim.SGD``) with lrbench's validation."""

from __future__ import annotations

import torch

from lrbench.optimizers import _validate as v
from lrbench.optimizers._functional import Functional, _constant, sgd_update
from lrbench.registry import register_optimizer


@register_optimizer("sgd")
class SGD(torch.optim.SGD):
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
    def functional(cls, **hparams) -> Functional:
        """This optimizer's step as pure functions of one run (:func:`~lrbench.optimizers._functional.sgd_update`);
        ``momentum`` and ``nesterov`` inherit it with their own defaults."""
        h = cls([torch.zeros(1, requires_grad=True)], **hparams).param_groups[0]
        kw = {k: h[k] for k in ("lr", "momentum", "dampening", "weight_decay", "nesterov")}

        def init(params):  # plain SGD keeps no state, as torch.optim.SGD
            if not kw["momentum"]:
                return {}
            return {"t": torch.zeros((), dtype=params[0].dtype, device=params[0].device),
                    "bufs": [torch.zeros_like(p) for p in params]}

        def step(params, grads, loss, state, probe):
            if not kw["momentum"]:
                return sgd_update(params, grads, [], None, **kw)[0], state, _constant(kw["lr"])
            new, bufs = sgd_update(params, grads, state["bufs"], state["t"], **kw)
            return new, {"t": state["t"] + 1, "bufs": bufs}, _constant(kw["lr"])

        return Functional(init, step)
