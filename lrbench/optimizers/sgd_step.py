"""SGD with step decay: ×0.1 at 50 % and 75 % of the budget (seed 002), or every K epochs (seed 001)."""

from __future__ import annotations

from lrbench.optimizers import _validate as v
from lrbench.optimizers._scheduled import ScheduledSGD
from lrbench.registry import register_optimizer
from lrbench.schedules import multistep, staircase


@register_optimizer("sgd_step", adapts_lr=True)
class SGDStep(ScheduledSGD):
    """SGD-momentum with a step-decay schedule.

    * ``every_epochs = 0`` (default): ×gamma at 50 % and 75 % of the budget
      (:func:`lrbench.schedules.multistep`; seed 002's ``sgd_mstep``).
    * ``every_epochs = K > 0``: ×gamma every K epochs (:func:`lrbench.schedules.staircase`;
      seed 001 §6's staircase, K = 60).

    Outside the runner pass ``total_steps`` (the budget): without it the budget-relative
    milestones never arrive and the LR stays η₀.

    Oracle cost per step: 1 forward, 1 backward. ``group["lr"]`` is the step size applied.

    Args:
        params: parameters or parameter groups.
        lr: η₀ > 0 (default 0.1). momentum: in [0, 1) (0.9). weight_decay: >= 0 (0).
        gamma: decay factor in (0, 1] (default 0.1).
        every_epochs: 0 for the budget milestones, else the staircase period in epochs (0).
        steps_per_epoch: steps in one epoch (the runner passes the problem's; None = 1).
        total_steps: the budget (the runner passes it).
    """

    schedule_name = "multistep"
    options = ("gamma", "every_epochs")

    def __init__(self, params, lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 0.0,
                 gamma: float = 0.1, every_epochs: float = 0.0, steps_per_epoch: int | None = None,
                 total_steps: int | None = None):
        v.in_range("gamma", gamma, 0.0, 1.0, lo_open=True)
        v.nonneg("every_epochs", every_epochs)
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                         steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                         options=dict(gamma=gamma, every_epochs=every_epochs))

    @classmethod
    def multiplier(cls, group: dict, step: int) -> float:
        spe = group["steps_per_epoch"] or 1
        if group["every_epochs"] > 0:
            return staircase(step, steps_per_epoch=spe, total_steps=0, every_epochs=group["every_epochs"],
                             gamma=group["gamma"])
        return multistep(step, steps_per_epoch=spe, total_steps=group["total_steps"] or 2**62,
                         gamma=group["gamma"])
