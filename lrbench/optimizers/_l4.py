"""Shared math of L4 (Rolínek & Martius, NeurIPS 2018, "L4: Practical loss-based stepsize
adaptation for deep learning"): pure update functions and the optimizer base class used by
``l4_mom`` and ``l4_adam``.

Equation numbers refer to the paper:

* eq. 5 (§2.4): when a new loss value L comes, ``L_min <- min(L_min, L)``; ``γ·L_min`` is used
  in the update; then ``L_min <- (1 + 1/τ)·L_min``. On the first step ``L_min <- γ0·L``.
* eq. 6 (§2.4): ``Δθ = -α (L(θ) - γ L_min) / (gᵀv + ε) · v``, i.e. the step size
  ``η = α (L - γ L_min) / (gᵀv + ε)`` multiplies the direction ``v`` (eq. 3 without ε).
* eq. 7 (§2.5): ``v_Mom = <∇L>_τm``, ``v_Adam = <∇L>_τm / sqrt(<(∇L)²>_τs)`` and, for both
  variants, the gradient estimate ``g = v_Mom = <∇L>_τm`` (the bias-corrected average, not the
  raw gradient), which makes ``gᵀv >= 0``.

``<x>_τ`` is an exponential moving average with decay ``β = 1 - 1/τ`` started at zero and
bias-corrected as in Adam: ``a_t = β a_{t-1} + (1-β) x_t``, ``<x>_τ = a_t / (1 - β^t)``.

The pure functions below take lists of tensors and 0-d tensors, never mutate their inputs and
never branch in Python on tensor values, so ``torch.func.vmap`` maps them over seeds.
"""

from __future__ import annotations

import torch

from lrbench.optimizers import _validate as v

__all__ = ["l4_eta", "l4_mom_update", "l4_adam_update", "L4Base", "validate_common"]


def _ema(avgs: list[torch.Tensor], xs: list[torch.Tensor], tau: float) -> list[torch.Tensor]:
    """One step of the (uncorrected) moving average with decay 1 - 1/tau."""
    return [torch.lerp(a, x, 1.0 / tau) for a, x in zip(avgs, xs)]


def _bias_correction(step: torch.Tensor, tau: float) -> torch.Tensor:
    """1 - β^t for β = 1 - 1/tau at step t (t >= 1)."""
    return 1.0 - torch.pow(1.0 - 1.0 / tau, step)


def l4_eta(loss: torch.Tensor, l_min: torch.Tensor, step: torch.Tensor,
           g: list[torch.Tensor], d: list[torch.Tensor], *, alpha: float, gamma: float,
           tau: float, gamma0: float, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The L4 step size of eq. 6 and the L_min bookkeeping of eq. 5.

    Args:
        loss: L(θ), the current batch loss (0-d).
        l_min: the stored L_min (0-d); ignored on the first step.
        step: number of steps taken before this one (0-d); 0 means first step.
        g: gradient estimate (eq. 7: the bias-corrected momentum average).
        d: update direction v (eq. 7).

    Returns:
        ``(eta, new_l_min)``: η = α (L - γ L_min) / (gᵀv + ε) with
        L_min = γ0·L on the first step and min(L_min, L) after it, and the stored value for
        the next step, (1 + 1/τ)·L_min.
    """
    l_min = torch.where(step == 0, gamma0 * loss, torch.minimum(l_min, loss))
    gtv = sum((gi * di).sum() for gi, di in zip(g, d))
    eta = alpha * (loss - gamma * l_min) / (gtv + eps)
    return eta, l_min * (1.0 + 1.0 / tau)


def l4_mom_update(params: list[torch.Tensor], grads: list[torch.Tensor], exp_avgs: list[torch.Tensor],
                  step: torch.Tensor, l_min: torch.Tensor, loss: torch.Tensor, *, alpha: float,
                  gamma: float, tau: float, gamma0: float, eps: float, tau_m: float):
    """One L4Mom update: v = g = <∇L>_τm (eq. 7), Δθ = -η v (eq. 6).

    Returns:
        ``(new_params, new_exp_avgs, new_step, new_l_min, eta)``.
    """
    exp_avgs = _ema(exp_avgs, grads, tau_m)
    bc = _bias_correction(step + 1, tau_m)
    m_hat = [m / bc for m in exp_avgs]
    eta, new_l_min = l4_eta(loss, l_min, step, m_hat, m_hat, alpha=alpha, gamma=gamma, tau=tau,
                            gamma0=gamma0, eps=eps)
    new_params = [p - eta * m for p, m in zip(params, m_hat)]
    return new_params, exp_avgs, step + 1, new_l_min, eta


def l4_adam_update(params: list[torch.Tensor], grads: list[torch.Tensor], exp_avgs: list[torch.Tensor],
                   exp_avg_sqs: list[torch.Tensor], step: torch.Tensor, l_min: torch.Tensor,
                   loss: torch.Tensor, *, alpha: float, gamma: float, tau: float, gamma0: float,
                   eps: float, tau_m: float, tau_s: float, adam_eps: float):
    """One L4Adam update: g = <∇L>_τm, v = g / (sqrt(<(∇L)²>_τs) + adam_eps) (eq. 7),
    Δθ = -η v (eq. 6).

    Returns:
        ``(new_params, new_exp_avgs, new_exp_avg_sqs, new_step, new_l_min, eta)``.
    """
    exp_avgs = _ema(exp_avgs, grads, tau_m)
    exp_avg_sqs = _ema(exp_avg_sqs, [gr * gr for gr in grads], tau_s)
    bc_m = _bias_correction(step + 1, tau_m)
    bc_s = _bias_correction(step + 1, tau_s)
    m_hat = [m / bc_m for m in exp_avgs]
    direction = [m / (torch.sqrt(s / bc_s) + adam_eps) for m, s in zip(m_hat, exp_avg_sqs)]
    eta, new_l_min = l4_eta(loss, l_min, step, m_hat, direction, alpha=alpha, gamma=gamma, tau=tau,
                            gamma0=gamma0, eps=eps)
    new_params = [p - eta * d for p, d in zip(params, direction)]
    return new_params, exp_avgs, exp_avg_sqs, step + 1, new_l_min, eta


class L4Base(torch.optim.Optimizer):
    """Common plumbing of L4Mom and L4Adam (see their docstrings for the method).

    Eq. 6 computes ONE step size η for the whole parameter vector θ from the one loss value,
    so all parameter groups share η, L_min and the hyper-parameters: a group that sets an L4
    hyper-parameter to a value other than the optimizer's raises ``ValueError``. The shared
    scalars (``step``, ``l_min``) live in ``self.state`` of the first parameter of the first
    group; the moving averages live in each parameter's state. Parameters whose ``grad`` is
    ``None`` are left untouched and do not enter gᵀv.

    L4 has no learning rate to sweep (α is a fraction of the linearised step, not a step
    size), so ``lr_param`` is ``None`` and the LR-robustness sweep leaves it out.
    """

    lr_param = None

    def __init__(self, params, defaults: dict):
        # "lr" holds the effective step size η of the last step (0 before the first one).
        super().__init__(params, dict(defaults, lr=0.0))

    def add_param_group(self, param_group: dict) -> None:
        for key, value in param_group.items():
            if key in self.defaults and key != "lr" and value != self.defaults[key]:
                raise ValueError(f"invalid {key}: {value!r} (L4 uses one step size for all parameters, "
                                 "so per-group hyper-parameters are not supported)")
        super().add_param_group(param_group)

    def _gather(self, keys: tuple[str, ...]):
        """Parameters with a gradient, their gradients, their state tensors for ``keys`` (created
        at zero when missing) and the shared scalar state (created when missing)."""
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not params:
            raise ValueError("L4: no parameter has a gradient after closure()")
        for p in params:
            st = self.state[p]
            for k in keys:
                if k not in st:
                    st[k] = torch.zeros_like(p, memory_format=torch.preserve_format)
        p0 = self.param_groups[0]["params"][0]
        shared = self.state[p0]
        if "step" not in shared:
            shared["step"] = torch.zeros((), dtype=p0.dtype, device=p0.device)
            shared["l_min"] = torch.zeros((), dtype=p0.dtype, device=p0.device)
        grads = [p.grad for p in params]
        states = [[self.state[p][k] for p in params] for k in keys]
        return params, grads, states, shared

    def _finish(self, params, new_params, keys, new_states, shared, new_step, new_l_min, eta) -> None:
        for p, q in zip(params, new_params):
            p.copy_(q)
        for k, tensors in zip(keys, new_states):
            for p, t in zip(params, tensors):
                self.state[p][k] = t
        shared["step"], shared["l_min"] = new_step, new_l_min
        for g in self.param_groups:
            g["lr"] = eta.detach().clone()

    @staticmethod
    def _loss(closure) -> torch.Tensor:
        if closure is None:
            raise ValueError("L4 needs the loss value: call step(closure)")
        with torch.enable_grad():
            return closure().detach()


def validate_common(alpha, gamma, tau, gamma0, eps, tau_m) -> None:
    """Validate the hyper-parameters shared by L4Mom and L4Adam."""
    v.positive("alpha", alpha)
    v.in_range("gamma", gamma, 0.0, 1.0)
    v.positive("tau", tau)
    v.in_range("gamma0", gamma0, 0.0, 1.0)
    v.positive("eps", eps)
    v.in_range("tau_m", tau_m, 1.0, float("inf"), hi_open=True)
