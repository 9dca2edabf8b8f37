"""Prodigy (Mishchenko & Defazio 2024) from the ``prodigyopt`` package."""

from __future__ import annotations

from lrbench.optimizers import _validate as v
from lrbench.optimizers._lrfree import DTimesLR, base_class
from lrbench.registry import register_optimizer

_Base = base_class("prodigyopt", "Prodigy", "prodigy")


@register_optimizer("prodigy", adapts_lr=True)
class Prodigy(DTimesLR, _Base):
    """Prodigy: Adam with a D-Adaptation-style distance estimate d that grows faster than
    D-Adaptation's (Mishchenko & Defazio 2024, Algorithm 4), as ``prodigyopt.Prodigy``.

    Oracle cost per step: 1 forward, 1 backward. ``group["effective_lr"]`` = d·lr with d the
    estimate this step used (bias correction off, the package's default).

    Args:
        params: parameters or parameter groups.
        lr: multiplier > 0 (default 1.0). d0: initial estimate > 0 (1e-6).
        beta1, beta2: in [0, 1) (0.9, 0.999). weight_decay: decoupled, >= 0 (default 0).
    """

    def __init__(self, params, lr: float = 1.0, d0: float = 1e-6, beta1: float = 0.9,
                 beta2: float = 0.999, weight_decay: float = 0.0):
        v.positive("lr", lr)
        v.positive("d0", d0)
        v.in_range("beta1", beta1, 0.0, 1.0, hi_open=True)
        v.in_range("beta2", beta2, 0.0, 1.0, hi_open=True)
        v.nonneg("weight_decay", weight_decay)
        super().__init__(params, lr=lr, d0=d0, betas=(beta1, beta2), weight_decay=weight_decay)
