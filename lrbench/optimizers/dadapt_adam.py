"""D-Adaptation Adam (Defazio & Mishchenko 2023) from the ``dadaptation`` package."""

from __future__ import annotations

from lrbench.optimizers import _validate as v
from lrbench.optimizers._lrfree import DTimesLR, base_class
from lrbench.registry import register_optimizer

_Base = base_class("dadaptation", "DAdaptAdam", "dadapt_adam")


@register_optimizer("dadapt_adam", adapts_lr=True)
class DAdaptAdam(DTimesLR, _Base):
    """D-Adapt Adam: Adam whose step size d·lr is set by a running lower bound d on the distance
    to the solution (Defazio & Mishchenko 2023, Algorithm 4), as ``dadaptation.DAdaptAdam``.

    Oracle cost per step: 1 forward, 1 backward. ``group["effective_lr"]`` = d·lr, the adapted
    Adam step size (the package multiplies it by Adam's bias correction when
    ``use_bias_correction``, off by default); ``group["lr"]`` stays the user's multiplier.

    Args:
        params: parameters or parameter groups.
        lr: multiplier of the adapted step, > 0 (default 1.0, the package's: "no tuning").
        d0: initial distance estimate > 0 (default 1e-6). beta1, beta2: in [0, 1) (0.9, 0.999).
        weight_decay: >= 0 (default 0).
    """

    def __init__(self, params, lr: float = 1.0, d0: float = 1e-6, beta1: float = 0.9,
                 beta2: float = 0.999, weight_decay: float = 0.0):
        v.positive("lr", lr)
        v.positive("d0", d0)
        v.in_range("beta1", beta1, 0.0, 1.0, hi_open=True)
        v.in_range("beta2", beta2, 0.0, 1.0, hi_open=True)
        v.nonneg("weight_decay", weight_decay)
        super().__init__(params, lr=lr, d0=d0, betas=(beta1, beta2), weight_decay=weight_decay)
