"""First-order learning of the learning rate: gradient descent on η (seed 000, §3.1)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from lrbench.optimizers import _validate as v
from lrbench.optimizers._fd import lr_update, sgd_step
from lrbench.registry import register_optimizer


def fd_first_order_update(params: Sequence[Tensor], grads: Sequence[Tensor],
                          prev_grads: Sequence[Tensor], next_grads: Sequence[Tensor], lr: Tensor,
                          lr_buf: Tensor, *, alpha: float, beta: float,
                          delta: float) -> tuple[list[Tensor], Tensor, Tensor, Tensor]:
    """One step of the first-order method, the LR update of the previous step done first.

    Args:
        params, grads: the weights w(t) and the training gradient g(t).
        prev_grads: g(t−1), the training gradient of the previous step (zeros at t = 0).
        next_grads: the gradient at w(t) that plays "g(t+1)" for the previous step in eq. 4:
            ``grads`` itself, or the validation gradient in the §5.3 variant.
        lr: η(t−1) (0-d).
        lr_buf: the LR momentum buffer (0-d).
        alpha: the meta learning rate α.
        beta: LR momentum β (§5.2).
        delta: the lower bound δ of eq. 13.

    Returns:
        ``(new_params, new_lr, new_lr_buf, applied_lr)`` with f'(η(t−1)) = −g(t−1)·next_grad
        (eq. 3–4), η(t) = max(η(t−1) + b, δ) where b = β b_prev − α f'(η(t−1)) (eq. 13, §5.2),
        w(t+1) = w(t) − η(t) g(t), and the applied step size η(t) (= ``new_lr``).
    """
    f_prime = -torch.stack([(gp * gn).sum() for gp, gn in zip(prev_grads, next_grads)]).sum()
    new_lr, new_buf = lr_update(lr, lr_buf, -alpha * f_prime, beta=beta, delta=delta)
    return sgd_step(params, grads, new_lr), new_lr, new_buf, new_lr


@register_optimizer("fd_first_order", adapts_lr=True)
class FDFirstOrder(torch.optim.Optimizer):
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
    would cost an extra backward per step. At t = 0, g(−1) = 0 and η is unchanged. (This is the
    same update as hypergradient descent for plain SGD, Baydin et al. 2018, with a clamp at δ.)

    Options: ``lr_momentum = β`` adds momentum on the LR update as §5.2 does for the second-order
    method (b = β b − α f'(η), η ← η + b; default 0 = off). ``validation=True`` is the §5.3
    variant: f is the validation-batch loss, so "g(t+1)" in eq. 4 is the validation gradient at
    w(t) (``closure(split="val")``), while the weights still step along the training gradient.

    Oracle cost per step: 1 forward + 1 backward (``validation=True``: 2 forward + 2 backward).

    ``group["lr"]`` after a step holds η(t), the step size applied in that step (also
    ``state["lr"]`` of the group's first parameter).

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
      the group's own tensors; with one group (the paper's setting) this is eq. 4.
    * Parameters whose ``grad`` is None after the closure are skipped, as ``torch.optim`` does.
    * The clamp of eq. 13 does not reset the momentum buffer.
    """

    def __init__(self, params, lr: float = 0.01, alpha: float = 1e-3, delta: float = 1e-6,
                 lr_momentum: float = 0.0, validation: bool = False):
        v.positive("lr", lr)
        v.nonneg("alpha", alpha)
        v.positive("delta", delta)
        v.in_range("lr_momentum", lr_momentum, 0.0, 1.0, hi_open=True)
        super().__init__(params, dict(lr=lr, alpha=alpha, delta=delta, lr_momentum=lr_momentum,
                                      validation=bool(validation)))

    @property
    def uses_validation(self) -> bool:
        """Whether a step calls ``closure(split="val")`` (the §5.3 variant)."""
        return any(g["validation"] for g in self.param_groups)

    @torch.no_grad()
    def step(self, closure):
        """One step (1 forward + 1 backward); returns the training loss at w(t)."""
        val_grads = {}
        if any(group["validation"] for group in self.param_groups):
            with torch.enable_grad():
                closure(split="val")
            val_grads = {p: p.grad.detach().clone() for group in self.param_groups
                         for p in group["params"] if p.grad is not None}
        with torch.enable_grad():
            loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            state = self.state[group["params"][0]]
            if "lr" not in state:
                q = group["params"][0]
                state["lr"] = torch.as_tensor(group["lr"], dtype=q.dtype, device=q.device).clone()
                state["lr_buf"] = torch.zeros((), dtype=q.dtype, device=q.device)
            for p in params:
                if "prev_grad" not in self.state[p]:
                    self.state[p]["prev_grad"] = torch.zeros_like(p)
            grads = [p.grad.detach().clone() for p in params]
            next_grads = ([val_grads.get(p, torch.zeros_like(p)) for p in params]
                          if group["validation"] else grads)
            new_w, state["lr"], state["lr_buf"], group["lr"] = fd_first_order_update(
                params, grads, [self.state[p]["prev_grad"] for p in params], next_grads,
                state["lr"], state["lr_buf"], alpha=group["alpha"], beta=group["lr_momentum"],
                delta=group["delta"])
            for p, q, g in zip(params, new_w, grads):
                p.copy_(q)
                self.state[p]["prev_grad"] = g
        return loss
