"""SGD with exponential LR decay per epoch (seed 001's exponential-decay baseline)."""

from __future__ import annotations

from lrbench.optimizers import _validate as v
from lrbench.optimizers._scheduled import ScheduledSGD
from lrbench.registry import register_optimizer


@register_optimizer("sgd_exp", adapts_lr=True)
class SGDExp(ScheduledSGD):
    """SGD-momentum with η_t = η₀·γ^⌊epoch⌋ (:func:`lrbench.schedules.exponential`; seed 001 §6:
    "a decay factor of 0.99 per epoch", momentum 0.9, η₀ = 0.1).

    Oracle cost per step: 1 forward, 1 backward. ``group["lr"]`` is the step size applied.

    Args:
        params: parameters or parameter groups.
        lr: η₀ > 0 (default 0.1). momentum: in [0, 1) (0.9). weight_decay: >= 0 (0).
        gamma: decay per epoch in (0, 1] (default 0.99).
        steps_per_epoch: steps in one epoch (the runner passes the problem's; None = 1).
        total_steps: the budget (unused; accepted for a uniform interface).
    """

    schedule_name = "exponential"
    options = ("gamma",)

    def __init__(self, params, lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 0.0,
                 gamma: float = 0.99, steps_per_epoch: int | None = None, total_steps: int | None = None):
        v.in_range("gamma", gamma, 0.0, 1.0, lo_open=True)
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                         steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                         options=dict(gamma=gamma))
