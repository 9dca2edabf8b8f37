"""DoG, "Distance over Gradients" (Ivgi et al. 2023) from the ``dog-optimizer`` package."""

from __future__ import annotations

from lrbench.optimizers import _validate as v
from lrbench.optimizers._lrfree import SOLO, base_class
from lrbench.registry import register_optimizer

_Base = base_class("dog", "DoG", "dog")


@register_optimizer("dog", adapts_lr=True)
class DoG(_Base):
    """DoG: SGD with η_t = lr·r̄_t / √(Σ_{i≤t} ‖g_i‖² + ε), r̄_t the largest distance from the
    initial point so far (at least reps_rel·(1 + ‖x₀‖)) (Ivgi et al. 2023, eq. 1), as
    ``dog.DoG``. The paper pairs it with iterate averaging; this key is the plain iterate.

    Oracle cost per step: 1 forward, 1 backward. ``group["effective_lr"]`` = η_t, the step
    size applied.

    The package keeps "first step done" outside the optimizer state; loading a state dict
    that already holds DoG's running quantities marks it done, so checkpoints resume exactly.

    Args:
        params: parameters or parameter groups.
        lr: multiplier > 0 (default 1.0). reps_rel: initial movement r_ε relative to
            1 + ‖x₀‖, > 0 (default 1e-6). eps: > 0 (1e-8). weight_decay: >= 0 (0).
    """

    facts = SOLO

    def __init__(self, params, lr: float = 1.0, reps_rel: float = 1e-6, eps: float = 1e-8,
                 weight_decay: float = 0.0):
        v.positive("lr", lr)
        v.positive("reps_rel", reps_rel)
        v.positive("eps", eps)
        v.nonneg("weight_decay", weight_decay)
        super().__init__(params, lr=lr, reps_rel=reps_rel, eps=eps, weight_decay=weight_decay)

    def step(self, closure=None):
        loss = super().step(closure)
        for group in self.param_groups:
            group["effective_lr"] = float(group["eta"][0])
        return loss

    def load_state_dict(self, state_dict) -> None:
        super().load_state_dict(state_dict)
        if all("G" in group for group in self.param_groups):
            self._first_step = False
