"""The constant (or scheduled) step-size rule: w ← w − η d, η = ``group["lr"]``.

The functional form of the ``torch.optim``-backed keys (:class:`~lrbench.optimizers._core.TorchBacked`)
and of the built-in schedules; no oracle calls beyond the gradient.
"""

from __future__ import annotations

from lrbench.optimizers._core import Ops


def constant_step(ops: Ops, params, d, lr: float, decoupled_decay: float = 0.0):
    """w ← (1 − ηλ) w − η d: decoupled weight decay λ (AdamW, Loshchilov & Hutter 2019,
    Algorithm 2) before the step, as ``torch.optim.AdamW`` applies it."""
    if decoupled_decay:
        params = ops.mul_(params, 1.0 - lr * decoupled_decay)
    return ops.sub_scaled_(params, d, lr)
