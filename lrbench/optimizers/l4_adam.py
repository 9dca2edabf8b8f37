"""L4Adam (Rolínek & Martius 2018): L4 step sizes on top of the Adam direction."""

from __future__ import annotations

from functools import partial

from lrbench.optimizers import _directions, _validate as v
from lrbench.optimizers._core import Facts
from lrbench.optimizers._l4 import FACTS, L4Base, l4_step, validate_common
from lrbench.registry import register_optimizer


@register_optimizer("l4_adam", adapts_lr=True)
class L4Adam(L4Base):
    """L4Adam: Adam direction with the loss-based L4 step size (Rolínek & Martius 2018).

    Update (one step, L = the batch loss at the current θ)::

        m̂ = <∇L>_τm,  ŝ = <(∇L)²>_τs              (eq. 7, bias-corrected EMAs, decays 1 - 1/τ)
        g = m̂,  v = m̂ / (sqrt(ŝ) + adam_eps)                                    (eq. 7)
        L_min <- γ0·L on the first step, else min(L_min, L)                      (eq. 5, §2.4)
        η = α (L - γ L_min) / (gᵀv + ε)                                          (eq. 6)
        θ <- θ - η v                                                             (eq. 6)
        L_min <- (1 + 1/τ) L_min   ("forgetting", after the update)               (eq. 5)

    ``group["lr"]`` holds η of the last step (the paper's "effective learning rate", §3.2).
    Since v ≈ sign-like Adam direction, η is not comparable in scale with L4Mom's η.

    The rule is :func:`~lrbench.optimizers._l4.l4_step` with the direction
    :func:`~lrbench.optimizers._directions.adam` (β1 = 1 - 1/τm, β2 = 1 - 1/τs, ε = adam_eps,
    no weight decay), run in place by ``step()`` and out of place by ``functional()``.

    Oracle cost per step: 1 forward + 1 backward (``closure()``); no probes.
    State: the moments (``exp_avg``, ``exp_avg_sq``) per parameter; the stored L_min
    (``l_min``) and the step count in the state of the first parameter (with a gradient).

    Defaults (from the paper): α = 0.15 (§2.2), γ = 0.9, τ = 1000, γ0 = 0.75 (§2.4),
    ε = 1e-12 (§2.4), τm = 10, τs = 1000 (§2.5); adam_eps = 1e-4 (see below).

    Choices where the paper is not explicit:
        * g in gᵀv is the bias-corrected momentum average m̂, not the raw gradient: §2.5 says
          "the choice of g = G(L, θ) = V_Mom(L, θ)" for both variants; this makes
          gᵀv = Σ m̂² / (sqrt(ŝ) + adam_eps) >= 0.
        * Eq. 7 writes v_Adam without an ε in the denominator; without one a coordinate whose
          gradient has always been 0 gives 0/0. We add ``adam_eps`` outside the square root as
          in Adam, with default 1e-4: the ε the paper uses for Adam in its experiments (§3,
          "ε = 10^-4") and the default of the authors' reference implementation of L4Adam.
          Because η rescales v, this ε only matters where sqrt(ŝ) is comparable to it.
        * Order of the L_min bookkeeping (min, use γ·L_min, then × (1 + 1/τ)), EMA convention
          (β = 1 - 1/τ, Adam's bias correction), one η for all parameters and no weight decay:
          as in :class:`~lrbench.optimizers.l4_mom.L4Mom`, for the reasons given there.

    Args:
        params: parameters or parameter groups (groups may not override hyper-parameters).
        alpha: fraction α of the linearised "optimal" step, > 0 (default 0.15).
        gamma: fraction γ of the lowest seen loss believed achievable, in [0, 1] (default 0.9).
        tau: timescale τ > 0 of the L_min increase (default 1000).
        gamma0: L_min = γ0 × the first loss, in [0, 1] (default 0.75).
        eps: ε > 0 added to gᵀv (default 1e-12).
        tau_m: first-moment timescale τm >= 1 (default 10, i.e. β1 = 0.9).
        tau_s: second-moment timescale τs >= 1 (default 1000, i.e. β2 = 0.999).
        adam_eps: ε > 0 added to sqrt(ŝ) in the Adam direction (default 1e-4).
    """

    param_keys = _directions.ADAM_KEYS

    facts = Facts(FACTS.cost, needs_loss=True, lr_scope="global",
                  floor=lambda h: ("adam", {"betas": (1 - 1 / h["tau_m"], 1 - 1 / h["tau_s"]), "eps": h["adam_eps"]}))

    def __init__(self, params, alpha: float = 0.15, gamma: float = 0.9, tau: float = 1000.0,
                 gamma0: float = 0.75, eps: float = 1e-12, tau_m: float = 10.0,
                 tau_s: float = 1000.0, adam_eps: float = 1e-4):
        validate_common(alpha, gamma, tau, gamma0, eps, tau_m)
        v.in_range("tau_s", tau_s, 1.0, float("inf"), hi_open=True)
        v.positive("adam_eps", adam_eps)
        super().__init__(params, alpha=alpha, gamma=gamma, tau=tau, gamma0=gamma0, eps=eps, tau_m=tau_m,
                         tau_s=tau_s, adam_eps=adam_eps)

    @staticmethod
    def update(ops, h, t, params, grads, state, loss, oracle):
        direction = partial(_directions.adam, beta1=1.0 - 1.0 / h["tau_m"], beta2=1.0 - 1.0 / h["tau_s"],
                            eps=h["adam_eps"])
        return l4_step(ops, h, t, params, grads, state, loss, direction=direction, g_is_d=False)
