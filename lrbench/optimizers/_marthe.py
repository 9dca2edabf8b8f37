"""Shared math of MARTHE and RTHO (seed 001: Donini et al., "Scheduling the learning rate via
hypergradients: new insights and a new algorithm", §2-4, Algorithm 1, Appendix A).

Notation (paper): w_t weights, η_t learning rate, L_t training loss on the t-th batch with
gradient g_t = ∇L_t(w_t) and Hessian H_t, E the objective (validation loss by default),
Φ_t the inner dynamics, A_t = ∂Φ_t/∂s_t and B_t = ∂Φ_t/∂η_t its Jacobians (s_t the state of
the dynamics: the weights plus velocity / moments), Z_t the discounted tangent of Eq. (9):

    Z_0 = 0,   Z_{t+1} = μ_t A_t Z_t + B_t,                                   (Eq. 9, Alg. 1)
    Δη_t = Z_t^T ∇E(w_t),                                                      (Eq. 11)
    η_t = max(η_{t-1} - β_t Δη_t, 0).                                          (Eq. 5)

Only the weight block of Z meets ∇E (E depends on the weights alone). A_t Z_t needs the
Hessian only through the single product H_t Z^w_t (one Hessian-vector product; the caller
computes it by double backward and passes it in). Derivation of A_t, B_t per dynamics:

``"sgd"``: Φ(w) = w - η g(w).  A = I - η H,  B = -g.
    Z^w_{t+1} = μ (Z^w_t - η_t H_t Z^w_t) - g_t.

``"sgdm"`` (heavy ball, torch.optim.SGD convention): v_{t+1} = m v_t + g_t,
w_{t+1} = w_t - η v_{t+1}; state s = (w, v).
    A = [[I - η H, -η m I], [H, m I]],  B = (-v_{t+1}, 0), hence
    Z^v_{t+1} = μ (H_t Z^w_t + m Z^v_t),
    Z^w_{t+1} = μ Z^w_t - η_t Z^v_{t+1} - v_{t+1}.

``"adam"`` (Kingma & Ba with bias correction, k = t + 1): m' = β1 m + (1-β1) g,
v' = β2 v + (1-β2) g², w' = w - η u(m', v') with u = m̂/(s + ε), m̂ = m'/(1-β1^k),
s = sqrt(v'/(1-β2^k)); state s = (w, m, v). The moment normalisation u has the diagonal
Jacobians D_m = ∂u/∂m' = 1/((1-β1^k)(s+ε)) and D_v = ∂u/∂v' = -m̂/(2 (1-β2^k) s (s+ε)²);
the weights enter only through g, so the chain rule needs H_t Z^w_t and nothing else:
    Z^m_{t+1} = μ (β1 Z^m_t + (1-β1) H_t Z^w_t),
    Z^v_{t+1} = μ (β2 Z^v_t + 2 (1-β2) g_t ⊙ H_t Z^w_t),
    Z^w_{t+1} = μ Z^w_t - η_t (D_m ⊙ Z^m_{t+1} + D_v ⊙ Z^v_{t+1}) - u_{t+1},
    B = (-u_{t+1}, 0, 0).
Where s = 0 (a coordinate whose gradient has been exactly 0 so far) m̂ = 0 and Z^v = 0
too; D_v is set to 0 there, its limit along the trajectory, instead of 0·∞ = NaN.

Online μ (Appendix A): with g'_1 = [B_{t-1}]^T ∇E(w_t) (the one-step hypergradient, Eq. 8)
and q = Δη_t · g'_1 (Eq. 10), q̃ = clip(q / g'_1², 0, 1), μ_t = q̃^{1/(c_{t-1}+1)},
c_t = μ_{t-1} (1 + c_{t-1}), c_0 = μ_0 = 0. Online β (§4, Algorithm 1): see
:func:`marthe_update`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

DYNAMICS = ("sgd", "sgdm", "adam")
OBJECTIVES = ("val", "train")

#: Per-parameter state tensors of each dynamics: the weight tangent "z", the previous
#: translation vector "b" = [B_{t-1}] and the dynamics' buffers with their tangents.
PER_PARAM_KEYS = {
    "sgd": ("z", "b"),
    "sgdm": ("z", "b", "buf", "z_buf"),
    "adam": ("z", "b", "m", "v", "z_m", "z_v"),
}
#: Per-group 0-d state tensors: η_{t-1} ("lr"), β_{t-1} ("hyper_lr"), μ_{t-1}, c_{t-1},
#: Δη_{t-1} ("d_eta") and, for Adam, the number of steps taken ("t").
SCALAR_KEYS = {
    "sgd": ("lr", "hyper_lr", "mu", "c", "d_eta"),
    "sgdm": ("lr", "hyper_lr", "mu", "c", "d_eta"),
    "adam": ("lr", "hyper_lr", "mu", "c", "d_eta", "t"),
}


def _dot(xs: list[Tensor], ys: list[Tensor]) -> Tensor:
    return sum((x * y).sum() for x, y in zip(xs, ys))


def marthe_update(
    params: list[Tensor],
    grads: list[Tensor],
    hvps: list[Tensor],
    e_grads: list[Tensor],
    state: dict[str, Any],
    *,
    dynamics: str,
    beta: float,
    adapt_beta: bool,
    mu: float | None,
    momentum: float,
    beta1: float,
    beta2: float,
    eps: float,
) -> tuple[list[Tensor], dict[str, Any], Tensor]:
    """One iteration of Algorithm 1 (MARTHE), as a pure function (vmap-able).

    At entry the weights are w_t and ``state`` holds Z_t, [B_{t-1}], the dynamics' buffers
    and the scalars of iteration t-1. The order is Algorithm 1's, with the hyper-updates
    that need ∇E(w_t) (μ_t, β_t, the last lines of iteration t-1) done at the start of t:

    1. Δη_t = Z_t^T ∇E(w_t); μ_t = h_μ(q(μ_{t-1})) (or the fixed μ);
       β_t = β_{t-1} + β Δη_t Δη_{t-1} (or the fixed β); η_t = max(η_{t-1} - β_t Δη_t, 0).
    2. Z_{t+1} = μ_t A_t Z_t + [B_t]_t and w_{t+1} = Φ_t(w_t, η_t).

    At t = 0 (Z_0 = 0, [B_{-1}] = 0, Δη_{-1} = 0) step 1 leaves η_0 and β_0 unchanged and
    gives μ_0 = 0, c_0 = 0 as in Algorithm 1.

    Args:
        params: weights w_t.
        grads: training gradients g_t = ∇L_t(w_t).
        hvps: H_t Z^w_t, with Z^w_t = ``state["z"]``.
        e_grads: ∇E(w_t) (validation gradient, or ``grads`` when E = L).
        state: per-parameter lists under :data:`PER_PARAM_KEYS` ``[dynamics]`` and 0-d
            tensors under :data:`SCALAR_KEYS` ``[dynamics]``.
        dynamics: ``"sgd"``, ``"sgdm"`` or ``"adam"``.
        beta: step size of the β_t adaptation if ``adapt_beta``, else the fixed β.
        adapt_beta: adapt the hyper-learning rate online (Algorithm 1).
        mu: fixed discount μ, or ``None`` for the online h_μ of Appendix A.
        momentum, beta1, beta2, eps: coefficients of the inner dynamics.

    Returns:
        (w_{t+1}, new state, η_t as a 0-d tensor).
    """
    z = state["z"]

    # -- 1. hyper-updates (end of Algorithm 1's iteration t-1, first line of iteration t)
    d_eta = _dot(z, e_grads)                          # Δη_t, Eq. (11)
    g1 = _dot(state["b"], e_grads)                    # g'_1(w_{t-1}, η_{t-1}), Eq. (8)
    c_prev, mu_prev = state["c"], state["mu"]
    if mu is None:                                    # h_μ, Appendix A
        g1_sq = g1 * g1
        ratio = (d_eta * g1) / torch.where(g1_sq > 0, g1_sq, torch.ones_like(g1_sq))
        q_tilde = torch.where(g1_sq > 0, ratio, torch.zeros_like(ratio)).clamp(0.0, 1.0)
        mu_t = q_tilde ** (1.0 / (c_prev + 1.0))
    else:
        mu_t = torch.full_like(mu_prev, mu)
    c_t = mu_prev * (1.0 + c_prev)
    if adapt_beta:
        hyper_lr = state["hyper_lr"] + beta * d_eta * state["d_eta"]
    else:
        hyper_lr = torch.full_like(state["hyper_lr"], beta)
    lr = torch.clamp(state["lr"] - hyper_lr * d_eta, min=0.0)   # Eq. (5)

    new = {"lr": lr, "hyper_lr": hyper_lr, "mu": mu_t, "c": c_t, "d_eta": d_eta}

    # -- 2. tangent system (Eq. 9) and parameter update
    if dynamics == "sgd":
        new["z"] = [mu_t * (zi - lr * hv) - g for zi, hv, g in zip(z, hvps, grads)]
        new["b"] = [-g for g in grads]
    elif dynamics == "sgdm":
        new["buf"] = [momentum * b + g for b, g in zip(state["buf"], grads)]
        new["z_buf"] = [mu_t * (hv + momentum * zb) for hv, zb in zip(hvps, state["z_buf"])]
        new["z"] = [mu_t * zi - lr * zb - b for zi, zb, b in zip(z, new["z_buf"], new["buf"])]
        new["b"] = [-b for b in new["buf"]]
    elif dynamics == "adam":
        t = state["t"] + 1.0
        bc1, bc2 = 1.0 - beta1**t, 1.0 - beta2**t
        new["t"] = t
        new["m"] = [beta1 * m + (1.0 - beta1) * g for m, g in zip(state["m"], grads)]
        new["v"] = [beta2 * v + (1.0 - beta2) * g * g for v, g in zip(state["v"], grads)]
        new["z_m"] = [mu_t * (beta1 * zm + (1.0 - beta1) * hv) for zm, hv in zip(state["z_m"], hvps)]
        new["z_v"] = [mu_t * (beta2 * zv + 2.0 * (1.0 - beta2) * g * hv)
                      for zv, g, hv in zip(state["z_v"], grads, hvps)]
        new["b"], new["z"] = [], []
        for zi, m, v, zm, zv in zip(z, new["m"], new["v"], new["z_m"], new["z_v"]):
            s = torch.sqrt(v / bc2)
            den = s + eps
            m_hat = m / bc1
            d_m = 1.0 / (bc1 * den)
            s_safe = torch.where(s > 0, s, torch.ones_like(s))
            d_v = torch.where(s > 0, -m_hat / (2.0 * bc2 * s_safe * den * den), torch.zeros_like(s))
            u = m_hat / den
            new["z"].append(mu_t * zi - lr * (d_m * zm + d_v * zv) - u)
            new["b"].append(-u)
    else:
        raise ValueError(f"invalid dynamics: {dynamics!r} (must be one of {DYNAMICS})")

    # w_{t+1} = Φ_t(w_t, η_t) = w_t + η_t [B_t]_t for all three dynamics
    new_params = [p + lr * b for p, b in zip(params, new["b"])]
    return new_params, new, lr
