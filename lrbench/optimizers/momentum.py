"""SGD with heavy-ball momentum 0.9 (``torch.optim.SGD``)."""

from __future__ import annotations

from lrbench.optimizers.sgd import SGD
from lrbench.registry import register_optimizer


@register_optimizer("momentum")
class Momentum(SGD):
    """Heavy-ball SGD, ``torch.optim.SGD`` with momentum 0.9 (the value seeds 001 and 002 use for
    their SGD-momentum baselines): b ← μ b + g, w ← w − lr·b.

    Oracle cost per step: 1 forward, 1 backward. ``group["lr"]`` is constant (or follows a
    schedule given in the spec).

    Args: as :class:`lrbench.optimizers.sgd.SGD`, with ``momentum`` defaulting to 0.9.
    """

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.9, dampening: float = 0.0,
                 weight_decay: float = 0.0):
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=False)
