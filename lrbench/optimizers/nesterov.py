"""SGD with Nesterov momentum 0.9 (``torch.optim.SGD(nesterov=True)``)."""

from __future__ import annotations

from lrbench.optimizers.sgd import SGD
from lrbench.registry import register_optimizer


@register_optimizer("nesterov")
class Nesterov(SGD):
    """Nesterov-momentum SGD in torch's form (Sutskever et al. 2013): b ← μ b + g,
    w ← w − lr·(g + μ b), with μ = 0.9 by default.

    Oracle cost per step: 1 forward, 1 backward. ``group["lr"]`` is constant (or follows a
    schedule given in the spec).

    Args: as :class:`lrbench.optimizers.sgd.SGD`, with ``momentum`` defaulting to 0.9 and no
        dampening (Nesterov momentum requires none).
    """

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0):
        super().__init__(params, lr=lr, momentum=momentum, dampening=0.0, weight_decay=weight_decay,
                         nesterov=True)
