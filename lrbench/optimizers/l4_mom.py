"""L4Mom (Rolínek & Martius 2018): L4 step sizes on top of momentum SGD."""

from __future__ import annotations

from functools import partial

from lrbench.optimizers import _directions
from lrbench.optimizers._core import Facts
from lrbench.optimizers._l4 import FACTS, L4Base, l4_step, validate_common
from lrbench.registry import register_optimizer


@register_optimizer("l4_mom", adapts_lr=True)
class L4Mom(L4Base):
    """L4Mom: momentum direction with the loss-based L4 step size (Rolínek & Martius 2018).

    Update (one step, L = the batch loss at the current θ)::

        m̂ = <∇L>_τm                                  (eq. 7, bias-corrected EMA, decay 1 - 1/τm)
        v = g = m̂                                     (eq. 7: L4Mom direction and gradient estimate)
        L_min <- γ0·L on the first step, else min(L_min, L)                      (eq. 5, §2.4)
        η = α (L - γ L_min) / (gᵀv + ε) = α (L - γ L_min) / (‖m̂‖² + ε)              (eq. 6)
        θ <- θ - η v                                                             (eq. 6)
        L_min <- (1 + 1/τ) L_min   ("forgetting", after the update)               (eq. 5)

    ``group["lr"]`` holds η of the last step (the paper's "effective learning rate", §3.2).

    The rule is :func:`~lrbench.optimizers._l4.l4_step` with the direction
    :func:`~lrbench.optimizers._directions.ema` (β = 1 - 1/τm), run in place by ``step()``
    and out of place by ``functional()``.

    Oracle cost per step: 1 forward + 1 backward (``closure()``); no probes.
    State: m (``exp_avg``) per parameter; the stored L_min (``l_min``) and the step count in
    the state of the first parameter (with a gradient).

    Defaults (all from the paper): α = 0.15 (§2.2), γ = 0.9, τ = 1000, γ0 = 0.75 (§2.4),
    ε = 1e-12 (§2.4), τm = 10 (§2.5).

    Choices where the paper is not explicit:
        * g in gᵀv is the bias-corrected momentum average, not the raw gradient: §2.5 says
          "the choice of g = G(L, θ) = V_Mom(L, θ)" for both variants. So gᵀv = ‖m̂‖².
        * Order of the L_min bookkeeping: first min with the new loss, then use γ·L_min in
          eq. 6, then multiply by (1 + 1/τ) for the next step — the order of §2.4 ("we set
          L_min <- min(L_min, L), then we use γL_min for the gradient update and apply the
          forgetting"). On the first step L_min = γ0·L (min(γ0 L, L) = γ0 L, so it does not
          matter whether the min is also applied there).
        * The EMA ``<·>_τ`` has decay β = 1 - 1/τ and zero start with Adam's bias correction
          1 - β^t (§2.5 "using bias correction just as in [9]"); τm = 10 is β = 0.9.
        * One η, one L_min for all parameters (eq. 6 is over the whole θ): per-group
          hyper-parameters are rejected.
        * No weight decay option: the paper has none (regularisation belongs in the loss, where
          L4 sees it).

    Args:
        params: parameters or parameter groups (groups may not override hyper-parameters).
        alpha: fraction α of the linearised "optimal" step, > 0 (default 0.15).
        gamma: fraction γ of the lowest seen loss believed achievable, in [0, 1] (default 0.9).
        tau: timescale τ > 0 of the L_min increase (default 1000).
        gamma0: L_min = γ0 × the first loss, in [0, 1] (default 0.75).
        eps: ε > 0 added to gᵀv (default 1e-12).
        tau_m: momentum timescale τm >= 1 (default 10, i.e. β = 0.9).
    """

    param_keys = _directions.EMA_KEYS

    # the floor: SGD-momentum, whose buffer update costs what L4Mom's moving average does
    facts = Facts(FACTS.cost, needs_loss=True, lr_scope="global",
                  floor=lambda h: ("sgd", {"momentum": 1 - 1 / h["tau_m"], "dampening": 1 - 1 / h["tau_m"]}))

    def __init__(self, params, alpha: float = 0.15, gamma: float = 0.9, tau: float = 1000.0,
                 gamma0: float = 0.75, eps: float = 1e-12, tau_m: float = 10.0):
        validate_common(alpha, gamma, tau, gamma0, eps, tau_m)
        super().__init__(params, alpha=alpha, gamma=gamma, tau=tau, gamma0=gamma0, eps=eps, tau_m=tau_m)

    @staticmethod
    def update(ops, h, t, params, grads, state, loss, oracle):
        direction = partial(_directions.ema, beta=1.0 - 1.0 / h["tau_m"])
        return l4_step(ops, h, t, params, grads, state, loss, direction=direction, g_is_d=True)
