"""The step-size rule of MARTHE and RTHO (seed 001: Donini et al., "Scheduling the learning
rate via hypergradients: new insights and a new algorithm", §2-4, Algorithm 1, Appendix A).

Notation (paper): w_t weights, η_t learning rate, L_t training loss on the t-th batch with
gradient g_t = ∇L_t(w_t) and Hessian H_t, E the objective (validation loss by default),
Φ_t the inner dynamics, A_t = ∂Φ_t/∂s_t and B_t = ∂Φ_t/∂η_t its Jacobians (s_t the state of
the dynamics: the weights plus velocity / moments), Z_t the discounted tangent of Eq. (9):

    Z_0 = 0,   Z_{t+1} = μ_t A_t Z_t + B_t,                                   (Eq. 9, Alg. 1)
    Δη_t = Z_t^T ∇E(w_t),                                                      (Eq. 11)
    η_t = max(η_{t-1} - β_t Δη_t, 0).                                          (Eq. 5)

Every inner dynamics is w_{t+1} = w_t − η_t d_t (so B_t = (−d_t, 0, ...)), with d_t the
direction :func:`lrbench.optimizers._directions.sgd` (SGD, heavy ball) or Adam's m̂/(s + ε)
(written out in :func:`_adam`). Only the weight block of Z meets ∇E (E depends on the
weights alone). A_t Z_t needs the Hessian only through the single product H_t Z^w_t (one
Hessian-vector product, ``oracle.hvp``). Derivation of A_t, B_t per dynamics:

``"sgd"``: Φ(w) = w - η g(w), d = g.  A = I - η H,  B = -g.
    Z^w_{t+1} = μ (Z^w_t - η_t H_t Z^w_t) - g_t.

``"sgdm"`` (heavy ball, torch.optim.SGD convention with dampening 0, d = v):
v_{t+1} = m v_t + g_t, w_{t+1} = w_t - η v_{t+1}; state s = (w, v).
    A = [[I - η H, -η m I], [H, m I]],  B = (-v_{t+1}, 0), hence
    Z^v_{t+1} = μ (H_t Z^w_t + m Z^v_t),
    Z^w_{t+1} = μ Z^w_t - η_t Z^v_{t+1} - v_{t+1}.

``"adam"`` (Kingma & Ba with bias correction, k = t + 1): m' = β1 m + (1-β1) g,
v' = β2 v + (1-β2) g², w' = w - η u(m', v') with u = m̂/(s + ε), m̂ = m'/(1-β1^k),
s = sqrt(v'/(1-β2^k)); state s = (w, m, v). The moment normalisation u has the diagonal Jacobians
D_m = ∂u/∂m' = 1/((1-β1^k)(s+ε)) and D_v = ∂u/∂v' = -m̂/(2 (1-β2^k) s (s+ε)²)
= -u/(2 (1-β2^k) s (s+ε)); the weights enter only through g, so the chain rule needs
H_t Z^w_t and nothing else:
    Z^m_{t+1} = μ (β1 Z^m_t + (1-β1) H_t Z^w_t),
    Z^v_{t+1} = μ (β2 Z^v_t + 2 (1-β2) g_t ⊙ H_t Z^w_t),
    Z^w_{t+1} = μ Z^w_t - η_t (D_m ⊙ Z^m_{t+1} + D_v ⊙ Z^v_{t+1}) - u_{t+1},
    B = (-u_{t+1}, 0, 0).
Where s = 0 (a coordinate whose gradient has been exactly 0 so far) m̂ = 0 and Z^v = 0
too; D_v is set to 0 there, its limit along the trajectory, instead of 0·∞ = NaN.

Online μ (Appendix A): with g'_1 = [B_{t-1}]^T ∇E(w_t) = −d_{t-1}^T ∇E(w_t) (the one-step
hypergradient, Eq. 8) and q = Δη_t · g'_1 (Eq. 10), q̃ = clip(q / g'_1², 0, 1),
μ_t = q̃^{1/(c_{t-1}+1)}, c_t = μ_{t-1} (1 + c_{t-1}), c_0 = μ_0 = 0. Online β (§4,
Algorithm 1): see :func:`marthe_step`.

Oracle cost per step: the training gradient (1 forward, 1 backward, its graph kept), one
Hessian-vector product H_t Z^w_t and, for ``objective="val"``, the validation gradient
(1 forward, 1 backward).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lrbench.optimizers import _directions
from lrbench.optimizers._core import Cost, Ops, Oracle

DYNAMICS = ("sgd", "sgdm", "adam")
OBJECTIVES = ("val", "train")

#: Per-parameter state of each dynamics: the weight tangent "z", the direction d_{t-1} = −[B_{t-1}]
#: ("dir"; only with the online μ, which needs g'_1, and not for heavy ball, where d_{t-1} is the
#: momentum buffer itself) and the dynamics' buffers (:mod:`~lrbench.optimizers._directions`)
#: with their tangents.
PER_PARAM_KEYS = {
    "sgd": ("z", "dir"),
    "sgdm": ("z",) + _directions.SGD_KEYS + ("z_buf",),
    "adam": ("z", "dir") + _directions.ADAM_KEYS + ("z_m", "z_v"),
}
#: Per-group 0-d state tensors: η_{t-1} ("lr"), β_{t-1} ("hyper_lr"), μ_{t-1}, c_{t-1} and
#: Δη_{t-1} ("d_eta"). (The step count is the core's ``t``.)
SCALAR_KEYS = ("lr", "hyper_lr", "mu", "c", "d_eta")


def state_keys(h: dict) -> tuple[str, ...]:
    """Per-parameter buffers for hyper-parameters ``h``: "dir" only with the online μ."""
    keys = PER_PARAM_KEYS[h["dynamics"]]
    return keys if h["mu"] is None else tuple(k for k in keys if k != "dir")


def scalars(h: dict, like: Tensor) -> dict[str, Tensor]:
    """η_{-1} = η_0, β_{-1} (β_0, or the fixed β), μ_{-1} = c_{-1} = Δη_{-1} = 0 (μ_{-1} = μ when
    fixed), as 0-d tensors of the parameters' dtype."""

    def scalar(x):
        return torch.tensor(float(x), dtype=like.dtype, device=like.device)
    return {"lr": scalar(h.get("initial_lr", h["lr"])),
            "hyper_lr": scalar(h["beta0"] if h["adapt_beta"] else h["beta"]),
            "mu": scalar(0.0 if h["mu"] is None else h["mu"]), "c": scalar(0.0), "d_eta": scalar(0.0)}


def cost(h: dict, t: int) -> Cost:
    """Training gradient (with graph) + one HVP, plus the validation gradient for ``"val"``."""
    return Cost(2, 2, 1) if h["objective"] == "val" else Cost(1, 1, 1)


def floor(h: dict) -> tuple[str, dict]:
    """The ``torch.optim`` step of the inner dynamics (the cost floor's optimizer)."""
    if h["dynamics"] == "adam":
        return "adam", {"betas": (h["beta1"], h["beta2"]), "eps": h["eps"]}
    return "sgd", {"momentum": h["momentum"]} if h["dynamics"] == "sgdm" else {}


def _mul_(ops: Ops, xs, a: Tensor):
    """x ← a x for a 0-d tensor a (in place under INPLACE)."""
    if ops.inplace:
        torch._foreach_mul_(xs, a)
        return xs
    return [x * a for x in xs]


def hyper_step(state: dict, d_eta: Tensor, g1: Tensor | None, *, beta: float, adapt_beta: bool,
               mu: float | None) -> dict[str, Tensor]:
    """The scalar updates of step t (0-d tensors): μ_t (h_μ of Appendix A, or the fixed μ),
    c_t, β_t and η_t (Eq. 5) from Δη_t = Z_t^T ∇E(w_t) and g'_1 = [B_{t-1}]^T ∇E(w_t)."""
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
    return {"lr": lr, "hyper_lr": hyper_lr, "mu": mu_t, "c": c_t, "d_eta": d_eta}


def _adam(ops: Ops, t: int, params, grads, hz, state: dict, new: dict, h: dict, lr: Tensor, mu_t: Tensor):
    """The Adam dynamics with its tangents (module docstring), k = t + 1:
    m' = β1 m + (1-β1) g, v' = β2 v + (1-β2) g², Z^m', Z^v', then s = sqrt(v'/(1-β2^k)),
    u = m̂/(s+ε), D_m, D_v and Z^w' = μ Z^w - η (D_m Z^m' + D_v Z^v') - u.

    Written out rather than through :func:`~lrbench.optimizers._directions.adam`, whose
    torch.optim.Adam arithmetic (m ← m + (1-β1)(g - m), ε added to sqrt(v)/sqrt(1-β2^k))
    rounds differently: Adam-MARTHE on Beale is unstable with the default β and a last-bit
    difference of u changes where its trajectory overflows (and w' = w - η u is computed as
    written, not as one fused w + u·(-η)). Returns ``(w', u, new)``."""
    b1, b2, eps = h["beta1"], h["beta2"], h["eps"]
    bc1, bc2 = 1.0 - b1 ** (t + 1.0), 1.0 - b2 ** (t + 1.0)
    z = state["z"]
    if not ops.inplace:
        m = [b1 * mi + (1.0 - b1) * g for mi, g in zip(state["exp_avg"], grads)]
        v = [b2 * vi + (1.0 - b2) * g * g for vi, g in zip(state["exp_avg_sq"], grads)]
        zm = [mu_t * (b1 * x + (1.0 - b1) * hv) for x, hv in zip(state["z_m"], hz)]
        zv = [mu_t * (b2 * x + 2.0 * (1.0 - b2) * g * hv) for x, g, hv in zip(state["z_v"], grads, hz)]
        us, nz = [], []
        for zi, mi, vi, zmi, zvi in zip(z, m, v, zm, zv):
            s = torch.sqrt(vi / bc2)
            den = s + eps
            m_hat = mi / bc1
            d_m = 1.0 / (bc1 * den)
            s_safe = torch.where(s > 0, s, torch.ones_like(s))
            d_v = torch.where(s > 0, -m_hat / (2.0 * bc2 * s_safe * den * den), torch.zeros_like(s))
            u = m_hat / den
            nz.append(mu_t * zi - lr * (d_m * zmi + d_v * zvi) - u)
            us.append(u)
        params = [p - lr * u for p, u in zip(params, us)]
        return params, us, {**new, "exp_avg": m, "exp_avg_sq": v, "z_m": zm, "z_v": zv, "z": nz}
    # in place, the same operations in the same order (4 temporaries and the new u)
    m, v, zm, zv = state["exp_avg"], state["exp_avg_sq"], state["z_m"], state["z_v"]
    tmp = [torch.empty_like(g) for g in grads]

    def scaled_add_(xs, a, c, ys, zs=None):           # x ← a x + (c y) z, each product rounded
        torch._foreach_copy_(tmp, ys)
        torch._foreach_mul_(tmp, c)
        if zs is not None:
            torch._foreach_mul_(tmp, zs)
        torch._foreach_mul_(xs, a)
        torch._foreach_add_(xs, tmp)

    scaled_add_(m, b1, 1.0 - b1, grads)
    scaled_add_(v, b2, 1.0 - b2, grads, grads)
    scaled_add_(zm, b1, 1.0 - b1, hz)
    torch._foreach_mul_(zm, mu_t)
    scaled_add_(zv, b2, 2.0 * (1.0 - b2), grads, hz)
    torch._foreach_mul_(zv, mu_t)
    s = torch._foreach_div(v, bc2)
    torch._foreach_sqrt_(s)
    den = torch._foreach_add(s, eps)
    dz = torch._foreach_mul(den, bc1)                 # D_m Z^m
    torch._foreach_reciprocal_(dz)
    torch._foreach_mul_(dz, zm)
    u = torch._foreach_div(m, bc1)                    # m̂
    offs = [(si > 0).logical_not_() for si in s]
    for si, off in zip(s, offs):                      # s_safe
        si.masked_fill_(off, 1.0)
    torch._foreach_mul_(s, 2.0 * bc2)
    torch._foreach_mul_(s, den)
    torch._foreach_mul_(s, den)
    dv = tmp                                          # −D_v
    torch._foreach_copy_(dv, u)
    torch._foreach_div_(dv, s)
    for x, off in zip(dv, offs):
        x.masked_fill_(off, 0.0)
    torch._foreach_mul_(dv, zv)
    torch._foreach_sub_(dz, dv)                       # D_m Z^m + D_v Z^v
    torch._foreach_div_(u, den)                       # u = m̂ / (s + ε)
    torch._foreach_mul_(z, mu_t)
    torch._foreach_mul_(dz, lr)
    torch._foreach_sub_(z, dz)
    torch._foreach_sub_(z, u)
    torch._foreach_copy_(dz, u)                       # w' = w − η u
    torch._foreach_mul_(dz, lr)
    torch._foreach_sub_(params, dz)
    return params, u, {**new, "exp_avg": m, "exp_avg_sq": v, "z_m": zm, "z_v": zv, "z": z}


def marthe_step(ops: Ops, h: dict, t: int, params, grads, state: dict, loss, oracle: Oracle):
    """One iteration of Algorithm 1 (MARTHE), written once for both drivers of
    :mod:`lrbench.optimizers._core`.

    At entry the weights are w_t and ``state`` holds Z_t, d_{t-1} (or the momentum buffer),
    the dynamics' buffers and the scalars of iteration t-1. The order is Algorithm 1's, with
    the hyper-updates that need ∇E(w_t) (μ_t, β_t, the last lines of iteration t-1) done at
    the start of t:

    0. H_t Z^w_t (``oracle.hvp``, before the validation gradient replaces the training
       graph) and ∇E(w_t) (``oracle.grad("val")``, or g_t when E = L).
    1. Δη_t = Z_t^T ∇E(w_t); μ_t = h_μ(q(μ_{t-1})) (or the fixed μ);
       β_t = β_{t-1} + β Δη_t Δη_{t-1} (or the fixed β); η_t = max(η_{t-1} - β_t Δη_t, 0).
    2. Z_{t+1} = μ_t A_t Z_t + [B_t]_t and w_{t+1} = Φ_t(w_t, η_t) = w_t − η_t d_t.

    At t = 0 (Z_0 = 0, d_{-1} = 0, Δη_{-1} = 0) step 1 leaves η_0 and β_0 unchanged and
    gives μ_0 = 0, c_0 = 0 as in Algorithm 1.

    Args (beyond the core's): ``h`` holds ``dynamics``, ``beta``, ``adapt_beta``, ``mu``,
    ``objective``, ``momentum``, ``beta1``, ``beta2``, ``eps`` (see ``MARTHE``).

    Returns:
        ``(w_{t+1}, state, η_t)``.
    """
    dyn = h["dynamics"]
    if dyn not in DYNAMICS:
        raise ValueError(f"invalid dynamics: {dyn!r} (must be one of {DYNAMICS})")
    z = state["z"]
    hz = oracle.hvp(z)                                # H_t Z^w_t
    e = oracle.grad("val")[1] if h["objective"] == "val" else grads

    # -- 1. hyper-updates (end of Algorithm 1's iteration t-1, first line of iteration t)
    d_eta = ops.dot(z, e)                             # Δη_t, Eq. (11)
    g1 = None
    if h["mu"] is None:                               # g'_1(w_{t-1}, η_{t-1}) = −d_{t-1}·∇E(w_t), Eq. (8)
        if dyn == "sgd":
            oracle.check_kept(state["dir"], dyn)
        g1 = -ops.dot(state["momentum_buffer" if dyn == "sgdm" else "dir"], e)
    new = dict(state)
    new.update(hyper_step(state, d_eta, g1, beta=h["beta"], adapt_beta=h["adapt_beta"], mu=h["mu"]))
    lr, mu_t = new["lr"], new["mu"]

    # -- 2. tangent system (Eq. 9) and parameter update w_{t+1} = w_t − η_t d_t
    if dyn == "sgd":
        d = grads
        z = ops.add_(z, hz, -lr)                      # Z − η H Z
        z = _mul_(ops, z, mu_t)
        z = ops.add_(z, grads, -1.0)
        if "dir" in new:  # d_t = g_t, without a copy under lrbench's closure
            new["dir"] = oracle.keep(ops, state["dir"], grads)
    elif dyn == "sgdm":
        d, _, new, _ = _directions.sgd(ops, t, params, grads, new, momentum=h["momentum"])
        zb = ops.scale_add_(state["z_buf"], h["momentum"], hz)   # Z^v ← μ (m Z^v + H Z^w)
        new["z_buf"] = zb = _mul_(ops, zb, mu_t)
        z = _mul_(ops, z, mu_t)
        z = ops.add_(z, zb, -lr)
        z = ops.add_(z, d, -1.0)
    else:  # adam
        params, d, new = _adam(ops, t, params, grads, hz, state, new, h, lr, mu_t)
        if "dir" in new:
            new["dir"] = d                            # a new list, kept as d_{t-1} of the next step
        return params, new, lr
    new["z"] = z
    params = ops.sub_scaled_(params, d, lr)
    return params, new, lr
