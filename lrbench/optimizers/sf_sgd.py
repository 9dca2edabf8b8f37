"""Schedule-Free SGD (Defazio et al. 2024) from the ``schedulefree`` package."""

from __future__ import annotations

from lrbench.optimizers import _validate as v
from lrbench.optimizers._lrfree import ScheduledLR, base_class
from lrbench.registry import register_optimizer

_Base = base_class("schedulefree", "SGDScheduleFree", "sf_sgd")


@register_optimizer("sf_sgd", adapts_lr=True)
class SFSGD(ScheduledLR, _Base):
    """Schedule-Free SGD (Defazio et al. 2024, eq. 1–3), as ``schedulefree.SGDScheduleFree``:
    z ← z − γ g(y), x ← running average of z, y = (1 − β) z + β x, no schedule.

    Train and eval modes as :class:`lrbench.optimizers.sf_adamw.SFAdamW` (the runner switches).

    Oracle cost per step: 1 forward, 1 backward. ``group["effective_lr"]`` = the warmed-up lr
    of this step.

    Args:
        params: parameters or parameter groups.
        lr: step size γ > 0 (default 1.0, the package's). momentum: interpolation β in (0, 1)
            (0.9). weight_decay: >= 0 (0). warmup_steps: linear warm-up length (0).
    """

    def __init__(self, params, lr: float = 1.0, momentum: float = 0.9, weight_decay: float = 0.0,
                 warmup_steps: int = 0):
        v.positive("lr", lr)
        v.in_range("momentum", momentum, 0.0, 1.0, lo_open=True, hi_open=True)
        v.nonneg("weight_decay", weight_decay)
        v.nonneg("warmup_steps", warmup_steps)
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                         warmup_steps=int(warmup_steps))
        self.train()
