"""SGDR: SGD with warm restarts (Loshchilov & Hutter 2017)."""

from __future__ import annotations

from lrbench.optimizers import _validate as v
from lrbench.optimizers._scheduled import ScheduledSGD
from lrbench.registry import register_optimizer


@register_optimizer("sgdr", adapts_lr=True)
class SGDR(ScheduledSGD):
    """SGD-momentum whose LR follows cosine annealing with warm restarts
    (Loshchilov & Hutter 2017, eq. 5; :func:`lrbench.schedules.sgdr`):
    η = η_min + ½(η₀ − η_min)(1 + cos(π T_cur/T_i)), T_cur in fractional epochs updated every
    step, T_i = t0·t_mult^i. Defaults t0 = 10, t_mult = 2 (seed 001 §6), momentum 0.9 (seed 001's
    SGDM), lr 0.1 (seed 001's η₀ for SGDM).

    Oracle cost per step: 1 forward, 1 backward. ``group["lr"]`` is the scheduled step size
    applied in the step; ``group["initial_lr"]`` is η₀.

    Args:
        params: parameters or parameter groups.
        lr: η₀ > 0 (default 0.1). momentum: in [0, 1) (default 0.9). weight_decay: >= 0 (0).
        t0: first cycle length in epochs > 0 (default 10). t_mult: cycle growth factor >= 1 (2).
        min_factor: η_min/η₀ in [0, 1] (default 0).
        steps_per_epoch: steps in one epoch (the runner passes the problem's; None = 1).
        total_steps: the budget (unused by SGDR; accepted for a uniform interface).
    """

    schedule_name = "sgdr"
    options = ("t0", "t_mult", "min_factor")

    def __init__(self, params, lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 0.0,
                 t0: float = 10.0, t_mult: float = 2.0, min_factor: float = 0.0,
                 steps_per_epoch: int | None = None, total_steps: int | None = None):
        v.positive("t0", t0)
        v.in_range("t_mult", t_mult, 1.0, 1e6)
        v.in_range("min_factor", min_factor, 0.0, 1.0)
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                         steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                         options=dict(t0=t0, t_mult=t_mult, min_factor=min_factor))
