"""LQA: learning rate by local quadratic approximation (Zhu, Chen, Huang, Zhang & Wang, CIKM 2020)."""

from __future__ import annotations

import torch

from lrbench.optimizers import _validate as v
from lrbench.registry import register_optimizer

__all__ = ["LQA", "lqa_direction", "lqa_probe_points", "lqa_step_size", "lqa_update"]


def lqa_direction(grads: list[torch.Tensor], buffers: list[torch.Tensor], step: torch.Tensor,
                  momentum: float) -> list[torch.Tensor]:
    """Momentum search direction ``d_t = m*d_{t-1} + (1-m)*g_t``, with ``d_1 = g_1``.

    Args:
        grads: mini-batch gradients ``g_t``.
        buffers: the previous directions ``d_{t-1}`` (ignored at the first step).
        step: number of steps taken so far (0-d tensor); ``step == 0`` selects ``d_1 = g_1``.
        momentum: ``m`` in (0, 1).

    Returns:
        The new directions, which are also the new buffers.
    """
    return [torch.where(step == 0, g, momentum * b + (1.0 - momentum) * g) for g, b in zip(grads, buffers)]


def lqa_probe_points(params: list[torch.Tensor], directions: list[torch.Tensor],
                     delta0: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The two probe points ``θ - δ0·d`` (eq. 4) and ``θ + δ0·d`` (eq. 5)."""
    return [p - delta0 * d for p, d in zip(params, directions)], [p + delta0 * d for p, d in zip(params, directions)]


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
    loss, loss_minus, loss_plus = (x.to(delta0.dtype) for x in (loss, loss_minus, loss_plus))
    b = (loss_plus + loss_minus - 2.0 * loss) / (2.0 * delta0 * delta0)
    a = (loss_plus - loss_minus) / (2.0 * delta0)
    delta = a / (2.0 * b)
    ok = (b > 0) & (delta > 0) & torch.isfinite(delta)
    probe_lower = loss_minus < loss  # False when either is NaN
    step = torch.where(ok, delta, torch.where(probe_lower, delta0, torch.zeros_like(delta0)))
    next_delta0 = torch.where(ok, delta, torch.where(probe_lower, delta0, 0.5 * delta0))
    return step, next_delta0


def lqa_update(params: list[torch.Tensor], directions: list[torch.Tensor], loss: torch.Tensor,
               loss_minus: torch.Tensor, loss_plus: torch.Tensor,
               delta0: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """One LQA update ``θ <- θ - δ*·d`` (Algorithm 1) with ``δ*`` from :func:`lqa_step_size`.

    Returns:
        ``(new_params, step, next_delta0)``: the new parameters, the applied step size and
        the next step's probe size ``δ0``.
    """
    step, next_delta0 = lqa_step_size(loss, loss_minus, loss_plus, delta0)
    return [p - step * d for p, d in zip(params, directions)], step, next_delta0


@register_optimizer("lqa", adapts_lr=True)
class LQA(torch.optim.Optimizer):
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
      on the scale of ``g`` so ``δ*`` stays comparable to the plain-gradient step size.
    * One ``δ*`` for all parameters, as in the paper (one line search along the whole
      direction, one pair of probes): with several parameter groups the step size is shared,
      its initial value is the first group's ``delta0``, and it lives in the state of the
      first group's first parameter. ``momentum`` may differ per group.
    * Parameters whose ``grad`` is ``None`` after the closure are left out of the step; with
      momentum, a parameter that first gets a gradient later starts its average there.
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
        super().__init__(params, dict(lr=delta0, delta0=delta0, momentum=momentum))

    def _probe(self, params, values, closure) -> torch.Tensor:
        for p, x in zip(params, values):
            p.copy_(x)
        return closure(grad=False)

    @torch.no_grad()
    def step(self, closure):
        """One LQA step; ``closure`` follows :mod:`lrbench.closure`. Returns ``ℓ(θ)``."""
        with torch.enable_grad():
            loss = closure()
        first = self.param_groups[0]["params"][0]
        st = self.state[first]
        if "delta" not in st:
            st["delta"] = torch.tensor(self.param_groups[0]["delta0"], dtype=first.dtype, device=first.device)
            st["step"] = torch.zeros((), dtype=torch.int64, device=first.device)
        delta0, count = st["delta"], st["step"]

        params, directions = [], []
        for group in self.param_groups:
            ps = [p for p in group["params"] if p.grad is not None]
            grads = [p.grad for p in ps]
            if group["momentum"] > 0:
                bufs = [self.state[p].get("momentum_buffer", p.grad) for p in ps]
                grads = lqa_direction(grads, bufs, count, group["momentum"])
                for p, d in zip(ps, grads):
                    self.state[p]["momentum_buffer"] = d
            params += ps
            directions += grads

        start = [p.detach().clone() for p in params]
        minus, plus = lqa_probe_points(start, directions, delta0)
        loss_minus = self._probe(params, minus, closure)
        loss_plus = self._probe(params, plus, closure)
        # computed from the saved copies, so the probes leave no trace in the parameters
        new_params, applied, st["delta"] = lqa_update(start, directions, loss, loss_minus, loss_plus, delta0)
        for p, x in zip(params, new_params):
            p.copy_(x)

        st["step"] = count + 1
        for group in self.param_groups:
            group["lr"] = applied.clone()
        return loss
