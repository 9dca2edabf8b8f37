"""LQA: learning rate by local quadratic approximation (Zhu, Chen, Huang, Zhang & Wang, CIKM 2020)."""

from __future__ import annotations

import torch

from lrbench.optimizers import _directions, _validate as v
from lrbench.optimizers._core import Cost, Facts, Method, cast, const
from lrbench.registry import register_optimizer

__all__ = ["LQA", "lqa_step_size"]


def _cost(h: dict, t: int) -> Cost:
    """1 forward + 1 backward for the gradient, 2 probe forwards."""
    return Cost(3, 1)


def lqa_step_size(loss: torch.Tensor, loss_minus: torch.Tensor, loss_plus: torch.Tensor,
                  delta0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Step size from the three batch losses ``ℓ(θ)``, ``ℓ(θ - δ0·d)``, ``ℓ(θ + δ0·d)``.

    ``b̃ = (ℓ+ + ℓ- - 2ℓ) / (2δ0²)`` (eq. 6), ``ã = (ℓ+ - ℓ-) / (2δ0)`` (eq. 7),
    ``δ* = ã / (2b̃)`` (eq. 3). The losses are batch means, so the paper's ``1/n`` is in them.
    When ``δ*`` is not a finite number > 0 (``b̃ <= 0``, ``ã <= 0`` or a non-finite loss),
    the step is ``δ0`` if the probe ``θ - δ0·d`` was measured to lower the loss
    (``ℓ- < ℓ``), else 0 with the next probe size halved (see :class:`LQA`).

    Returns:
        ``(step, next_delta0)``: the step size to apply and the next step's probe size
        (0-d tensors, dtype and device of ``delta0``).
    """
    loss, loss_minus, loss_plus = (cast(x, delta0.dtype) for x in (loss, loss_minus, loss_plus))
    two, zero = const(2.0, delta0), const(0.0, delta0)
    b = (loss_plus + loss_minus - two * loss) / (two * delta0 * delta0)
    a = (loss_plus - loss_minus) / (two * delta0)
    delta = a / (two * b)
    ok = (b > zero) & (delta > zero) & torch.isfinite(delta)
    probe_lower = loss_minus < loss  # False when either is NaN
    step = torch.where(ok, delta, torch.where(probe_lower, delta0, zero))
    next_delta0 = torch.where(ok, delta, torch.where(probe_lower, delta0, const(0.5, delta0) * delta0))
    return step, next_delta0


@register_optimizer("lqa", adapts_lr=True)
class LQA(Method):
    """Local quadratic approximation of the loss along the search direction (Zhu et al. 2020).

    Its initial step size is ``delta0`` (the first probe size, which is also the first step
    when the fit fails), so the LR-robustness sweep varies ``delta0`` (``lr_param``).

    Each step fits the batch loss along the search direction ``d`` by a quadratic in the
    step size, ``ℓ(θ - δd) ≈ ℓ(θ) - aδ + bδ²`` (eqs. 1–2), whose minimiser is
    ``δ* = a / (2b)`` (eq. 3). The coefficients come from two loss probes on the current
    batch at ``θ - δ0·d`` and ``θ + δ0·d`` (eqs. 4–5), solved as ``b̃`` (eq. 6) and ``ã``
    (eq. 7); then ``θ <- θ - δ*·d`` (Algorithm 1). As the paper suggests, ``δ0`` is the
    previous step's ``δ*`` (or the fallback's probe size, below). For a quadratic loss the fit is exact, so ``δ*`` is the exact
    line minimiser ``gᵀd / dᵀHd`` whatever ``δ0``.

    Oracle cost per step: 1 forward + 1 backward (gradient at ``θ``) and 2 forward passes
    (the probes, ``closure(grad=False)``), all on the current batch; 3 forward, 1 backward.
    ``group["lr"]`` holds the step size applied to ``d`` (a 0-d tensor): ``δ*``, or the
    fallback's ``δ0`` or 0.

    Choices where the paper is silent:

    * Fallback when eq. 3 gives no usable step, i.e. ``δ*`` is not a finite number > 0
      (``b̃ <= 0``: concave or flat along ``d``; ``ã <= 0``: the probe on the descent side is
      no lower than the other; or a non-finite probe loss). If the descent-side probe was
      measured lower, ``ℓ(θ - δ0·d) < ℓ(θ)``, the step is ``δ0`` (a point whose lower loss
      is known) and ``δ0`` is kept. Otherwise the parameters do not move (step 0) and the
      next probe size is ``δ0/2``. Reasons: for ``b̃ <= 0`` eq. 3 gives a maximiser or
      nothing, but because the quadratic interpolates the three losses exactly,
      ``ã > 0 >= b̃`` implies ``ℓ(θ - δ0·d) = ℓ(θ) - ãδ0 + b̃δ0² < ℓ(θ)``, so the ``δ0``
      step is a sure decrease. ``ã <= 0`` means the probes are too far apart to see the
      descent (the paper assumes ``d`` descends locally) or, with momentum, that ``d``
      points uphill; stepping by ``δ0`` there makes Beale with ``momentum=0.5`` diverge
      (measured: a jump from loss 0.29 to the probe at loss 202, then to 1e16, then NaN). Not moving keeps the loss, and halving the probe is a
      backtracking that ends once the probes resolve the descent (for a differentiable
      loss and ``gᵀd > 0``). The halving factor 1/2 is this class's choice, not the paper's.
    * Initial ``δ0 = 0.01``: Algorithm 1 asks for an "initial (small) learning rate" without
      a value; 0.01 is the middle of the paper's learning-rate grid (0.1, 0.01, 0.001) and
      only sets the first probe, since ``δ*`` is exact for a locally quadratic loss.
    * Direction: the paper allows the plain mini-batch gradient (its Algorithm 1, our
      default ``momentum=0``) or "an estimate that involves rule-based corrections, such as
      that from a momentum-based method" without fixing one. ``momentum > 0`` uses the
      exponential average ``d_t = m·d_{t-1} + (1-m)·g_t``, ``d_1 = g_1``, which keeps ``d``
      on the scale of ``g`` so ``δ*`` stays comparable to the plain-gradient step size. It is
      ``torch.optim.SGD``'s momentum buffer with dampening ``m``
      (:func:`lrbench.optimizers._directions.sgd`).
    * One ``δ*`` for all parameters, as in the paper (one line search along the whole
      direction, one pair of probes): with several parameter groups the step size is shared,
      and it lives in the state of the first group's first parameter (``delta``, the next
      probe size, with the step count). Per-group hyper-parameters (``momentum`` included)
      are refused: one line search has one direction rule.
    * Parameters whose ``grad`` is ``None`` after the closure are left out of the step; with
      momentum, a parameter that first gets a gradient after the first step starts its
      average from 0 (``d = (1-m)·g``).
    * No safeguard on the size of ``δ*`` (none in the paper): a nearly flat finite-difference
      curvature ``b̃ > 0`` can give a very large step. In low precision, ``b̃`` loses digits
      to cancellation once ``δ0·|d|`` is tiny.

    Args:
        params: parameters or parameter groups.
        delta0: initial probe size and step size ``δ0`` > 0 (default 0.01, see above).
        momentum: direction averaging ``m`` in [0, 1); 0 (default) is the plain gradient,
            the paper's Algorithm 1.
    """

    lr_param = "delta0"

    def __init__(self, params, delta0: float = 0.01, momentum: float = 0.0):
        v.positive("delta0", delta0)
        v.in_range("momentum", momentum, 0.0, 1.0, hi_open=True)
        super().__init__(params, lr=delta0, delta0=delta0, momentum=momentum)

    facts = Facts(cost=_cost, needs_loss=True, probes=True, lr_scope="global")

    @classmethod
    def keys_for(cls, h: dict) -> tuple[str, ...]:
        return _directions.SGD_KEYS if h["momentum"] else ()

    @staticmethod
    def scalars(h: dict, like: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"delta": torch.tensor(float(h["delta0"]), dtype=like.dtype, device=like.device)}

    @staticmethod
    def update(ops, h, t, params, grads, state, loss, oracle):
        m = h["momentum"]
        d, _, state, _ = _directions.sgd(ops, t, params, grads, state, momentum=m, dampening=m)
        delta0 = state["delta"]
        start = [p.clone() for p in params] if ops.inplace else params  # in place the probes move params
        # θ ∓ δ0·d rounded as a product and a sum (ops.point_, not fused)
        loss_minus = oracle.loss_at(start, d, -delta0)  # ℓ(θ − δ0·d), eq. 4
        loss_plus = oracle.loss_at(start, d, delta0)  # ℓ(θ + δ0·d), eq. 5
        step, next_delta0 = lqa_step_size(loss, loss_minus, loss_plus, delta0)
        params = ops.point_(params, start, d, -step)  # θ − δ*·d from the untouched θ
        return params, {**state, "delta": next_delta0}, step
