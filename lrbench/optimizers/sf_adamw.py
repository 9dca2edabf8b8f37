"""Schedule-Free AdamW (Defazio et al. 2024) from the ``schedulefree`` package."""

from __future__ import annotations

from lrbench.optimizers import _validate as v
from lrbench.optimizers._lrfree import ScheduledLR, base_class
from lrbench.registry import register_optimizer

_Base = base_class("schedulefree", "AdamWScheduleFree", "sf_adamw")


@register_optimizer("sf_adamw", adapts_lr=True)
class SFAdamW(ScheduledLR, _Base):
    """Schedule-Free AdamW (Defazio et al. 2024, Algorithm 1), as
    ``schedulefree.AdamWScheduleFree``: gradients at an interpolation y of the base iterate z and
    its running average x; no schedule, only an optional linear warm-up.

    The optimizer has a train and an eval mode (the parameters hold y in train mode and x in
    eval mode); the runner calls ``eval()`` before each evaluation and ``train()`` after, and
    ``train()`` before the first step.

    Oracle cost per step: 1 forward, 1 backward. ``group["effective_lr"]`` = the warmed-up lr
    of this step (the package's ``scheduled_lr``).

    Args:
        params: parameters or parameter groups.
        lr: step size > 0 (default 0.0025, the package's). beta1, beta2: in [0, 1) (0.9, 0.999).
        eps: > 0 (1e-8). weight_decay: >= 0 (0). warmup_steps: linear warm-up length (0).
    """

    def __init__(self, params, lr: float = 0.0025, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0, warmup_steps: int = 0):
        v.positive("lr", lr)
        v.in_range("beta1", beta1, 0.0, 1.0, hi_open=True)
        v.in_range("beta2", beta2, 0.0, 1.0, hi_open=True)
        v.positive("eps", eps)
        v.nonneg("weight_decay", weight_decay)
        v.nonneg("warmup_steps", warmup_steps)
        super().__init__(params, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay,
                         warmup_steps=int(warmup_steps))
        self.train()
