"""D-Adaptation SGD (Defazio & Mishchenko 2023) from the ``dadaptation`` package."""

from __future__ import annotations

from lrbench.optimizers import _validate as v
from lrbench.optimizers._lrfree import SOLO, base_class
from lrbench.registry import register_optimizer

_Base = base_class("dadaptation", "DAdaptSGD", "dadapt_sgd")


@register_optimizer("dadapt_sgd", adapts_lr=True)
class DAdaptSGD(_Base):
    """D-Adapt SGD (Defazio & Mishchenko 2023, Algorithm 1 with the package's momentum), as
    ``dadaptation.DAdaptSGD``: step size d·lr/‖g₀‖ with d a running lower bound on the distance
    to the solution.

    Oracle cost per step: 1 forward, 1 backward. ``group["effective_lr"]`` = d·lr/‖g₀‖, the
    step size applied to the gradient (g₀ the first gradient, d the estimate before this step's
    update, as the package applies it).

    Args:
        params: parameters or parameter groups.
        lr: multiplier > 0 (default 1.0). d0: initial distance estimate > 0 (1e-6).
        momentum: in [0, 1) (default 0, the package's). weight_decay: >= 0 (default 0).
    """

    facts = SOLO

    def __init__(self, params, lr: float = 1.0, d0: float = 1e-6, momentum: float = 0.0,
                 weight_decay: float = 0.0):
        v.positive("lr", lr)
        v.positive("d0", d0)
        v.in_range("momentum", momentum, 0.0, 1.0, hi_open=True)
        v.nonneg("weight_decay", weight_decay)
        super().__init__(params, lr=lr, d0=d0, momentum=momentum, weight_decay=weight_decay)

    def step(self, closure=None):
        d_used = [float(group["d"]) for group in self.param_groups]  # the step uses d before its update
        loss = super().step(closure)
        for group, d in zip(self.param_groups, d_used):
            group["effective_lr"] = d * float(group["lr"]) / max(float(group["g0_norm"]), 1e-300)
        return loss
