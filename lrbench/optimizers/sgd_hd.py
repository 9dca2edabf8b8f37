"""SGD with hypergradient descent of the learning rate (SGD-HD, Baydin et al. 2018)."""

from __future__ import annotations

from functools import partial


from lrbench.optimizers import _directions, _validate as v
from lrbench.optimizers._core import Method
from lrbench.optimizers._hd import hd_step, lr_state
from lrbench.registry import register_optimizer


@register_optimizer("sgd_hd", adapts_lr=True)
class SGDHD(Method):
    """SGD-HD: SGD (optionally heavy-ball or Nesterov momentum, as ``torch.optim.SGD``)
    whose global learning rate follows hypergradient descent.

    Update of step t = 0, 1, ... (seed 001 eqs. 5–6, in its indexing w_{t+1} = Φ(w_t, η_t),
    with Baydin et al. 2018, SGD-HD and SGDN-HD), g_t = ∇L(w_t) + λ w_t:

        η_t = max[η_{t-1} + β g_t · d_{t-1}, 0]        (eq. 5, Δ^HD η_t = −g_t · d_{t-1}, eq. 6)
        b_t = μ b_{t-1} + (1 − τ) g_t   (b_0 = g_0)    (only with momentum μ > 0)
        d_t = g_t (μ = 0) | b_t (heavy ball) | g_t + μ b_t (Nesterov)
        w_{t+1} = w_t − η_t d_t

    d_{t-1} is the previous update direction, so −η d is the update and −d its derivative
    with respect to η (Baydin et al.: h_t = ∇f(θ_{t-1}) · ∇_α u_{t-1} in their indexing);
    d_{-1} = 0. The dot product is summed over all tensors of a parameter group: one
    learning rate per group. With β = 0 this is ``torch.optim.SGD`` step for step.

    Oracle cost per step: 1 forward, 1 backward (the hypergradient reuses the gradient).
    State: η and the step count per group (in the state of the group's first parameter);
    the momentum buffer per parameter when μ > 0, which is d_{t-1} for heavy ball; d_{t-1}
    itself (``dir``) without momentum or with Nesterov's. After ``step()``
    ``group["lr"]`` is η_t, the step size applied in that step (a 0-d tensor).

    Args:
        params: parameters or parameter groups.
        lr: initial learning rate η_0 >= 0 (default 1e-3: Baydin et al. 2018 start every
            method from α_0 = 0.001; HD may start from 0 and raise it).
        hypergrad_lr: hyper-learning rate β >= 0 (default 1e-3: Baydin et al. 2018, SGD-HD
            and SGDN-HD experiments; seed 001 §6 uses 1e-6 with SGD-momentum and η_0 = 0.1
            on CIFAR-10, where the gradients are summed over millions of weights).
        momentum: heavy-ball coefficient μ in [0, 1) (default 0; Baydin et al. use 0.9 for
            SGDN-HD).
        dampening: momentum dampening τ in [0, 1] (default 0).
        weight_decay: L2 coefficient λ >= 0 added to the gradient; the hypergradient uses
            the regularised gradient, as in Baydin et al.'s code (default 0).
        nesterov: Nesterov momentum, needs momentum > 0 and dampening = 0 (default False).
        clamp_lr: apply the max[·, 0] of seed 001 eq. 5 (default True). Baydin et al. have
            no clamp; with ``clamp_lr=False`` η may become negative.

    Choices where the sources are ambiguous:
        * One global η per parameter group, with the hypergradient summed over all its
          tensors (Baydin et al. treat θ as one vector; their PyTorch code also supports a
          single group only).
        * η is updated before the step that uses it (Baydin et al.'s pseudocode), so the
          applied step size of step t is η_t.
        * η and the step count are kept as tensors of the first parameter's dtype (float32
          for float32 models, where an increment β g·d below η's rounding unit is lost;
          ``torch.optim.Optimizer.load_state_dict`` casts state to the parameter dtype).
        * Parameters whose ``grad`` is None are skipped (no update, no contribution to
          the hypergradient), as ``torch.optim.SGD`` skips them.
    """

    def __init__(self, params, lr: float = 1e-3, hypergrad_lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 clamp_lr: bool = True):
        v.nonneg("lr", lr)
        v.nonneg("hypergrad_lr", hypergrad_lr)
        v.in_range("momentum", momentum, 0.0, 1.0, hi_open=True)
        v.in_range("dampening", dampening, 0.0, 1.0)
        v.nonneg("weight_decay", weight_decay)
        if not isinstance(nesterov, bool):
            raise ValueError(f"invalid nesterov: {nesterov!r} (must be a bool)")
        if nesterov and (momentum <= 0.0 or dampening != 0.0):
            raise ValueError("invalid nesterov: Nesterov momentum needs momentum > 0 and dampening = 0")
        if not isinstance(clamp_lr, bool):
            raise ValueError(f"invalid clamp_lr: {clamp_lr!r} (must be a bool)")
        super().__init__(params, lr=lr, hypergrad_lr=hypergrad_lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov, clamp_lr=clamp_lr)

    @staticmethod
    def _heavy_ball(h: dict) -> bool:
        return bool(h["momentum"]) and not h["nesterov"]

    @classmethod
    def keys_for(cls, h: dict) -> tuple[str, ...]:
        if not h["momentum"]:
            return ("dir",)
        return _directions.SGD_KEYS if cls._heavy_ball(h) else ("dir",) + _directions.SGD_KEYS

    scalars = staticmethod(lr_state)

    @staticmethod
    def update(ops, h, t, params, grads, state, loss, oracle):
        direction = partial(_directions.sgd, momentum=h["momentum"], dampening=h["dampening"],
                            nesterov=h["nesterov"])
        return hd_step(ops, h, t, params, grads, state, oracle, direction=direction, hyper_lr=h["hypergrad_lr"],
                       weight_decay=h["weight_decay"], floor=0.0 if h["clamp_lr"] else None,
                       prev="momentum_buffer" if SGDHD._heavy_ball(h) else "dir")
