"""First-order learning of the learning rate: gradient descent on η (seed 000, §3.1)."""

from __future__ import annotations

import torch

from lrbench.optimizers import _directions, _validate as v
from lrbench.optimizers._core import Cost, Facts, Method
from lrbench.optimizers._hd import hd_step, lr_state
from lrbench.registry import register_optimizer


def _cost(h: dict, t: int) -> Cost:
    """1 forward + 1 backward; the §5.3 variant adds the validation gradient."""
    return Cost(2, 2) if h["validation"] else Cost(1, 1)


@register_optimizer("fd_first_order", adapts_lr=True)
class FDFirstOrder(Method):
    """SGD whose learning rate is learned by gradient descent on f(η) (seed 000, §3.1).

    With f(η) = L(w(t) − η g(t)) (eq. 1–2), the paper's first-order method is
    w(t+1) = w(t) − η(t) g(t), η(t+1) = η(t) − α f'(η(t)), f'(η(t)) = −g(t)·g(t+1) (eq. 3–4),
    with η(t+1) = max(η(t+1), δ) (eq. 13). g(t+1) is the gradient the next step computes
    anyway, so step t (one ``closure()``) does:

    1. g(t) = ∇L(w(t)) (``closure()``);
    2. η(t) = max(η(t−1) + α g(t−1)·g(t), δ)  — the LR update that belongs to step t−1;
    3. w(t+1) = w(t) − η(t) g(t).

    In full batch this is exactly the paper's sequence. With mini-batches g(t) is on the batch
    of step t, not on the batch of step t−1 that f'(η(t−1)) is defined with; taking the latter
    would cost an extra backward per step. At t = 0, g(−1) = 0 and η is unchanged. This is
    hypergradient descent for plain SGD (Baydin et al. 2018) with a clamp at δ, and it runs as
    the HD rule of :mod:`lrbench.optimizers._hd` (``hd_step``) on ``torch.optim.SGD``'s
    direction without momentum.

    Options: ``lr_momentum = β`` adds momentum on the LR update as §5.2 does for the second-order
    method (b = β b − α f'(η), η ← max(η + b, δ); default 0 = off). ``validation=True`` is the
    §5.3 variant: f is the validation-batch loss, so "g(t+1)" in eq. 4 is the validation gradient
    at w(t) (``closure(split="val")``, asked before the training gradient), while the weights
    still step along the training gradient.

    Oracle cost per step: 1 forward + 1 backward (``validation=True``: 2 forward + 2 backward).

    State: η (``lr``), the LR momentum buffer (``lr_buf``, 0 when β = 0) and the step count per
    group, in the state of the group's first parameter; g(t−1) (``dir``) per parameter (and,
    during a step with ``validation=True``, the validation gradient ``val_grad``).
    ``group["lr"]`` after a step holds η(t), the step size applied in that step (a 0-d tensor).

    Args:
        params: parameters or parameter groups.
        lr: initial learning rate η(0) > 0 (default 0.01: the initial LR the paper uses most
            often, §4.2.3; the first-order values of §4.2.1–4.2.2 are unreadable in our copy).
        alpha: meta learning rate α >= 0 (default 1e-3: the paper's values are unreadable in our
            copy; 1e-3 is Baydin et al.'s hyper-LR for SGD-HD, the same update). α = 0 is plain SGD.
        delta: δ > 0, the lower bound on η of eq. 13 (default 1e-6, §4.1).
        lr_momentum: β in [0, 1) of the LR momentum (default 0 = off; §5.2 tried 0.9).
        validation: use the validation-batch loss for f (§5.3, default False).

    Choices where the paper is ambiguous:

    * The order above (η updated one step late, at the next step's gradient): no extra backward.
    * One η per parameter group, moved by the partial derivative ∂f/∂η_g = −g_g(t−1)·g_g(t) over
      the group's own tensors; with one group (the paper's setting) this is eq. 4. With
      ``validation=True`` one validation gradient at w(t) serves every group (the core's
      oracle takes it once per step, before any group moves).
    * Parameters whose ``grad`` is None after the closure are skipped, as ``torch.optim`` does.
    * The clamp of eq. 13 does not reset the momentum buffer.
    """

    facts = Facts(cost=_cost)

    def __init__(self, params, lr: float = 0.01, alpha: float = 1e-3, delta: float = 1e-6,
                 lr_momentum: float = 0.0, validation: bool = False):
        v.positive("lr", lr)
        v.nonneg("alpha", alpha)
        v.positive("delta", delta)
        v.in_range("lr_momentum", lr_momentum, 0.0, 1.0, hi_open=True)
        super().__init__(params, lr=lr, alpha=alpha, delta=delta, lr_momentum=lr_momentum,
                         validation=bool(validation))

    @property
    def uses_validation(self) -> bool:
        """Whether a step calls ``closure(split="val")`` (the §5.3 variant)."""
        return any(g["validation"] for g in self.param_groups)

    @classmethod
    def keys_for(cls, h: dict) -> tuple[str, ...]:
        return ("dir",)

    @staticmethod
    def scalars(h: dict, like: torch.Tensor) -> dict[str, torch.Tensor]:
        return {**lr_state(h, like), "lr_buf": torch.zeros((), dtype=like.dtype, device=like.device)}

    @staticmethod
    def update(ops, h, t, params, grads, state, loss, oracle):
        return hd_step(ops, h, t, params, grads, state, oracle, direction=_directions.sgd,
                       hyper_lr=h["alpha"], floor=h["delta"], lr_momentum=h["lr_momentum"],
                       validation=h["validation"], prev="dir")
