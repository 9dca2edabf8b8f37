"""The L4 step-size rule (Rolínek & Martius, NeurIPS 2018, "L4: Practical loss-based stepsize
adaptation for deep learning") of ``l4_mom`` and ``l4_adam``, written once for both drivers of
:mod:`lrbench.optimizers._core`.

Equation numbers refer to the paper:

* eq. 5 (§2.4): when a new loss value L comes, ``L_min <- min(L_min, L)``; ``γ·L_min`` is used
  in the update; then ``L_min <- (1 + 1/τ)·L_min``. On the first step ``L_min <- γ0·L``.
* eq. 6 (§2.4): ``Δθ = -α (L(θ) - γ L_min) / (gᵀv + ε) · v``, i.e. the step size
  ``η = α (L - γ L_min) / (gᵀv + ε)`` multiplies the direction ``v`` (eq. 3 without ε).
* eq. 7 (§2.5): ``v_Mom = <∇L>_τm``, ``v_Adam = <∇L>_τm / sqrt(<(∇L)²>_τs)`` and, for both
  variants, the gradient estimate ``g = v_Mom = <∇L>_τm`` (the bias-corrected average, not the
  raw gradient), which makes ``gᵀv >= 0``.

``<x>_τ`` is an exponential moving average with decay ``β = 1 - 1/τ`` started at zero and
bias-corrected as in Adam: ``a_t = β a_{t-1} + (1-β) x_t``, ``<x>_τ = a_t / (1 - β^t)``. The
directions are :func:`lrbench.optimizers._directions.ema` (L4Mom) and
:func:`lrbench.optimizers._directions.adam` (L4Adam).

Eq. 6 computes ONE step size η for the whole parameter vector θ from the one loss value, so
the methods declare ``lr_scope="global"``: all parameter groups share η, L_min and the
hyper-parameters. The state is the direction's moving averages per parameter and ``l_min``
(the stored, already "forgotten" L_min, a 0-d tensor) for the unit.

Oracle cost per step: 1 forward + 1 backward (the closure); no probes.
"""

from __future__ import annotations

import torch

from lrbench.optimizers import _validate as v
from lrbench.optimizers._core import Facts, Method, Ops, cast, const, one_pass
from lrbench.optimizers._directions import ema_bias

__all__ = ["l4_eta", "l4_step", "l4_scalars", "L4Base", "validate_common", "FACTS"]

#: L4's declared facts: the loss value is needed, one step size for all parameters, 1F1B.
FACTS = Facts(cost=one_pass, needs_loss=True, lr_scope="global")


def l4_eta(loss: torch.Tensor, l_min: torch.Tensor, first: bool, gtv: torch.Tensor, *, alpha: float,
           gamma: float, tau: float, gamma0: float, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The L4 step size of eq. 6 and the L_min bookkeeping of eq. 5 (0-d tensors).

    Args:
        loss: L(θ), the current batch loss.
        l_min: the stored L_min; ignored on the first step.
        first: this is the first step (a Python bool: the step count is known).
        gtv: gᵀv, g the gradient estimate (eq. 7: the bias-corrected momentum average) and v
            the update direction.

    Returns:
        ``(eta, new_l_min)``: η = α (L - γ L_min) / (gᵀv + ε) with L_min = γ0·L on the first
        step and min(L_min, L) after it, and the stored value for the next step,
        (1 + 1/τ)·L_min.
    """
    l_min = const(gamma0, loss) * loss if first else torch.minimum(l_min, loss)
    eta = const(alpha, loss) * (loss - const(gamma, loss) * l_min) / (gtv + const(eps, gtv))
    return eta, l_min * const(1.0 + 1.0 / tau, l_min)


def l4_scalars(h: dict, like: torch.Tensor) -> dict[str, torch.Tensor]:
    """The unit's 0-d state: the stored L_min (0 before the first step, which ignores it)."""
    return {"l_min": torch.zeros((), dtype=like.dtype, device=like.device)}


def l4_step(ops: Ops, h: dict, t: int, params, grads, state: dict, loss: torch.Tensor, *, direction,
            g_is_d: bool):
    """One L4 step: v from ``direction``, η from eq. 6, θ ← θ − η v.

    Args:
        direction: ``direction(ops, t, params, grads, state) -> (d, g, state, fresh)`` of
            :mod:`lrbench.optimizers._directions` whose state ``exp_avg`` is the uncorrected
            first moment m, with m̂ = m / b, b = 1 − (1 − 1/τm)^(t+1).
        g_is_d: the direction is m̂ (L4Mom), given as m itself (:func:`~lrbench.optimizers.
            _directions.ema`): gᵀv = ‖m‖² / b², and θ ← θ − (η / b) m, so m̂ is never formed;
            otherwise (L4Adam) gᵀv = m·v / b, again without forming m̂.

    Returns:
        ``(params, state, η)``.
    """
    d, _, new, _ = direction(ops, t, params, grads, state)
    b = ema_bias(1.0 - 1.0 / h["tau_m"], t)
    like = new["exp_avg"][0]
    gtv = ops.dot(d, d) / const(b * b, like) if g_is_d else ops.dot(new["exp_avg"], d) / const(b, like)
    eta, new["l_min"] = l4_eta(loss, state["l_min"], t == 0, cast(gtv, loss.dtype), alpha=h["alpha"],
                               gamma=h["gamma"], tau=h["tau"], gamma0=h["gamma0"], eps=h["eps"])
    params = ops.sub_scaled_(params, d, eta / const(b, eta) if g_is_d else eta)
    return params, new, eta


class L4Base(Method):
    """Common plumbing of L4Mom and L4Adam (see their docstrings for the method).

    ``lr_scope="global"`` (one η for all parameters): a group that sets an L4 hyper-parameter
    to a value other than the optimizer's raises ``ValueError``. Parameters whose ``grad`` is
    ``None`` are left untouched and do not enter gᵀv.

    L4 has no learning rate to sweep (α is a fraction of the linearised step, not a step
    size), so ``lr_param`` is ``None`` and the LR-robustness sweep leaves it out.
    ``group["lr"]`` is η of the last step (a 0-d tensor), 0.0 before the first one.
    """

    lr_param = None
    facts = FACTS
    scalars = staticmethod(l4_scalars)

    def __init__(self, params, **hparams):
        # "lr" holds the effective step size η of the last step (0 before the first one).
        super().__init__(params, **hparams, lr=0.0)

    def add_param_group(self, param_group: dict) -> None:
        # "lr" is an output (η), not a hyper-parameter: a group may carry any value, as before.
        group = dict(param_group)
        lr = group.pop("lr", None)
        super().add_param_group(group)
        if lr is not None:
            self.param_groups[-1]["lr"] = lr


def validate_common(alpha, gamma, tau, gamma0, eps, tau_m) -> None:
    """Validate the hyper-parameters shared by L4Mom and L4Adam."""
    v.positive("alpha", alpha)
    v.in_range("gamma", gamma, 0.0, 1.0)
    v.positive("tau", tau)
    v.in_range("gamma0", gamma0, 0.0, 1.0)
    v.positive("eps", eps)
    v.in_range("tau_m", tau_m, 1.0, float("inf"), hi_open=True)

