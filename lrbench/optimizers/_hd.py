"""Hypergradient descent (HD) of the learning rate: the step-size rule of ``sgd_hd``,
``adam_hd`` and ``fd_first_order``.

Baydin et al. (2018), "Online learning rate adaptation with hypergradient descent", in the
notation of seed 001 (§2–3), where step t maps w_t to w_{t+1} = Φ(w_t, η_t):

    η_t = max[η_{t-1} − β Δη_t, 0]                                              (5)
    Δ^HD η_t = B_{t-1}ᵀ ∇E(w_t),   B_{t-1} = ∂Φ(w_{t-1}, η_{t-1})/∂η             (6)

With the base optimizer written as w_{t+1} = w_t − η_t d_t (d_t the direction of
:mod:`lrbench.optimizers._directions`), B_{t-1} = −d_{t-1} and, with ∇E(w_t) = g_t,

    η_t = max[η_{t-1} + β g_t · d_{t-1}, 0].

Seed 000's first-order method (§3.1, eqs. 3–4 and 13) is the same rule for plain SGD with the
floor δ instead of 0, optional momentum on the increment (§5.2: b ← μ_η b + β g_t·g_{t-1},
η ← max(η + b, δ)) and optionally ∇E = the validation gradient (§5.3).

The new η_t is the step size of the same step t (Baydin et al.'s pseudocode). The dot product
runs over all tensors of the unit (one learning rate per parameter group). d_{-1} = 0: the
first step has a zero hypergradient. With heavy-ball momentum d_{t-1} is the momentum buffer
itself before this step's update, so no copy is kept; otherwise d_{t-1} is kept as ``dir``.

Oracle cost per step: none beyond the gradient (1 forward, 1 backward), plus 1 forward and 1
backward for a validation gradient.
"""

from __future__ import annotations

from typing import Callable

import torch

from lrbench.optimizers._core import Ops, Oracle, cast, const


def lr_state(h: dict, like: torch.Tensor) -> dict:
    """The unit's η as a 0-d tensor of the parameters' dtype, started at ``h["lr"]``."""
    return {"lr": torch.tensor(float(h["lr"]), dtype=like.dtype, device=like.device)}


def hd_step(ops: Ops, h: dict, t, params, grads, state: dict, oracle: Oracle, *, direction: Callable,
            hyper_lr: float, weight_decay: float = 0.0, floor: float | None = 0.0, lr_momentum: float = 0.0,
            validation: bool = False, prev: str = "dir"):
    """One HD step: η from the hypergradient, then w ← w − η d (see the module docstring).

    Args:
        direction: ``direction(ops, t, params, g, state) -> (d, g, state, fresh)`` (weight decay
            already applied to ``g``).
        hyper_lr: β (Baydin et al.) or α (seed 000).
        weight_decay: λ, added to the gradient before both the hypergradient and the direction.
        floor: η is clamped at this value (0 for HD, δ for seed 000), or not at all (None).
        lr_momentum: momentum of the η increment (seed 000 §5.2; state ``lr_buf``).
        validation: ∇E is the validation gradient (seed 000 §5.3, 1 forward + 1 backward more).
        prev: where d_{t-1} is: ``"dir"`` (kept by this rule) or the direction's buffer that
            equals it (``"momentum_buffer"`` for heavy ball).

    Returns:
        ``(params, state, η_t)``.
    """
    if prev == "dir":
        oracle.check_kept(state["dir"], "hypergradient")
    g = ops.add(grads, params, weight_decay) if weight_decay else grads
    e = oracle.grad("val")[1] if validation else g
    dot = cast(ops.dot(e, state[prev]), state["lr"].dtype)
    new = dict(state)
    if lr_momentum:
        new["lr_buf"] = const(lr_momentum, dot) * state["lr_buf"] + const(hyper_lr, dot) * dot
        lr = state["lr"] + new["lr_buf"]
    else:
        lr = torch.add(state["lr"], dot, alpha=hyper_lr)
    if floor is not None:
        lr = torch.clamp_min(lr, const(floor, lr))
    new["lr"] = lr
    d, _, new, fresh = direction(ops, t, params, g, new)
    params = ops.sub_scaled_(params, d, lr)
    if prev == "dir":  # d_t for the next step: a new list as it is, this step's gradient without a copy
        new["dir"] = d if fresh else oracle.keep(ops, state["dir"], d)
    return params, new, lr
