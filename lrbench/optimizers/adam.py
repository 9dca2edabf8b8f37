"""Adam (Kingma & Ba 2015) from ``torch.optim`` with lrbench's validation."""

from __future__ import annotations

import torch

from lrbench.optimizers import _validate as v
from lrbench.optimizers._functional import Functional, _constant, adam_update
from lrbench.registry import register_optimizer


@register_optimizer("adam")
class Adam(torch.optim.Adam):
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

    @classmethod
    def functional(cls, **hparams) -> Functional:
        """This optimizer's step as pure functions of one run (:func:`~lrbench.optimizers._functional.adam_update`)."""
        h = cls([torch.zeros(1, requires_grad=True)], **hparams).param_groups[0]
        kw = {"lr": h["lr"], "beta1": h["betas"][0], "beta2": h["betas"][1], "eps": h["eps"],
              "weight_decay": h["weight_decay"]}

        def init(params):  # a step count per parameter, as torch.optim.Adam keeps (same state bytes)
            return {"t": [torch.zeros((), dtype=p.dtype, device=p.device) for p in params],
                    "m": [torch.zeros_like(p) for p in params], "v": [torch.zeros_like(p) for p in params]}

        def step(params, grads, loss, state, probe):
            new, m, v_, t = adam_update(params, grads, state["m"], state["v"], state["t"][0], **kw)
            return new, {"t": [t] * len(params), "m": m, "v": v_}, _constant(kw["lr"])

        return Functional(init, step)
