"""Second-order ("Newton–Raphson") learning of the learning rate by finite differences (seed 000)."""

from __future__ import annotations

import torch

from lrbench.optimizers import _validate as v
from lrbench.optimizers._core import Cost, Facts, Method
from lrbench.optimizers._fd import PROBE_OFFSETS, lr_update, newton_lr_step
from lrbench.optimizers._hd import lr_state
from lrbench.registry import register_optimizer


def _cost(h: dict, t: int) -> Cost:
    """1 forward + 1 backward for g(k), 5 probe forwards."""
    return Cost(6, 1)


@register_optimizer("fd_newton", adapts_lr=True)
class FDNewton(Method):
    """SGD whose learning rate follows a finite-difference Newton–Raphson step (seed 000, §3.2).

    With f(η) = L(w(k) − η g(k)) the loss after a step of size η along the gradient
    (eq. 1–2), step k does, in the order of §4.1:

    1. ``closure()``: g(k) = ∇L(w(k)) and the returned loss L(w(k));
    2. five probes ``closure(grad=False)`` at w(k) − (η(k) + jε) g(k), j = −2..2, computed from a
       saved copy of w(k);
    3. w(k+1) = w(k) − η(k) g(k) from that copy, by the operation of the j = 0 probe (so
       L(k+1) = f(η(k)), bit for bit);
    4. η(k+1) = η(k) − 2ε (f(η+ε) − f(η−ε)) / (f(η+2ε) + f(η−2ε) − 2f(η)) (eq. 10), with δ added
       to the denominator when it is exactly 0 (eq. 11–12) and η(k+1) = max(η(k+1), δ) (eq. 13).

    Options: ``lr_momentum = β`` adds momentum on the LR update (§5.2):
    b(k+1) = β b(k) − 2ε(...)/(...), η(k+1) = η(k) + b(k+1) (the paper tried β = 0.9; default 0 =
    off, as in the paper's main method). ``validation=True`` is the §5.3 variant: the five probes
    use the loss on the problem's validation batch, ``closure(grad=False, split="val")``, while
    g(k) stays the training gradient (eq. 14–15).

    Oracle cost per step: 6 forward + 1 backward (1 forward + 1 backward for g(k), 5 probe
    forwards; the probes need no backward, although §6.3 of the paper counts five of each).

    ``group["lr"]`` after a step holds η(k), the step size applied to the weights in that step
    (a 0-d tensor, the same in every group); η(k+1) lives in ``state["lr"]`` of the first
    group's first parameter, with the LR momentum buffer ``lr_buf``, η(0) (``lr0``) and the step
    count. No per-parameter state.

    Float32 precision. The second difference f(η+2ε) + f(η−2ε) − 2f(η) ≈ 4ε² f''(η) is, at the
    paper's ε = 1e-5, of order 4e-10·f'' while one float32 ulp of f is ≈ 1.2e-7·f, and the probe
    points w − (η ± jε) g are themselves rounded to float32 (an error of ≈ 6e-8·|w| per
    coordinate against a displacement of 1e-5·|g|). So in float32 the paper's step is noise:
    η barely moves and the method is plain SGD. The paper's setting stays the default; the
    remedy is the option ``rel_eps = r``: ε(k) = r·max(η(k), η(0)), a step relative to the
    learning rate. On a quadratic the finite differences are exact for any ε, elsewhere a
    large r costs a truncation error O(r²). The floor r·η(0) matters after a Newton step has
    clamped η to δ: with ε = r·δ the float32 probes resolve nothing and η stayed at δ for good
    (measured on the logistic regression below, without the floor: the loss froze at 1.21 from
    step 12 on). Combining the five float32 losses in float64 does not help, since each loss and
    each probe point is already rounded (measured below), so it is not offered.

    Measured with ``PYTHONPATH=. python bench/fd_newton_precision.py`` (CPU, torch 2.14):
    relative error of one step's η(1) against the exact Newton target (median over 20 points)
    and the loss after 100 full-batch steps of a 512×20×5 logistic regression (5 seeds, η(0)=0.1,
    initial losses 2.0–2.5):

    ======================================  ==================  ==================  ===============
    setting                                 quadratic (dim 50)  logistic regr.      loss @ 100
    ======================================  ==================  ==================  ===============
    paper (ε = 1e-5), float64               4.2e-09             1.2e-05             0.17–0.27
    paper (ε = 1e-5), float32               0.66                0.98                0.57–0.66
    float32, losses combined in float64     0.77                0.98                0.59–0.65
    float32, ``rel_eps=0.1``                3.5e-04             8.8e-03             0.17–0.27
    float32, ``rel_eps=0.1`` without floor  3.5e-04             8.8e-03             0.37–1.21
    ======================================  ==================  ==================  ===============

    In float32 the paper's setting leaves η at ≈ η(0) (median applied LR 0.1) and reaches only
    SGD's loss; ``rel_eps=0.1`` matches the float64 run.

    Args:
        params: parameters or parameter groups.
        lr: initial learning rate η(0) > 0 (default 0.01: the paper's initial value for the
            second-order method on Boston Housing, LeNet/CIFAR-10 and ResNet-18/CIFAR-10 §4.2.3).
        eps: finite-difference step ε > 0 (default 1e-5, §6.1: "all our reported experiments").
        delta: δ > 0, the denominator smoothing of eq. 11–12 and the lower bound on η of eq. 13
            (default 1e-6, §4.1; the paper uses one δ for both).
        lr_momentum: β in [0, 1) of the LR momentum of §5.2 (default 0 = off; the paper tried 0.9).
        validation: probe the validation-batch loss instead of the training loss (§5.3,
            default False).
        rel_eps: when not None, ε(k) = rel_eps·max(η(k), η(0)) with rel_eps in (0, 0.5],
            replacing ``eps`` (default None: the paper's absolute ε). 0.1 is a good value in
            float32 (see above).

    Choices where the paper is ambiguous:

    * One η for all parameters: the five probes move every parameter group at once (one line
      search along the whole gradient), so per-group hyper-parameters (``lr`` included) are
      refused. With one group this is the paper's eq. 10; a step size η_g per group, all moved
      by the one Newton step of the shared probes (in units of ε_g), would equal this η at
      every step, since the groups share η(0) and ε.
    * Parameters whose ``grad`` is None after the closure are skipped (neither probed nor
      updated), as ``torch.optim`` does.
    * Newton's step is not safeguarded against negative curvature (denominator < 0) or
      non-finite probe losses: the paper only adds δ when the denominator is exactly 0 and
      clamps η ≥ δ.
    """

    def __init__(self, params, lr: float = 0.01, eps: float = 1e-5, delta: float = 1e-6,
                 lr_momentum: float = 0.0, validation: bool = False, rel_eps: float | None = None):
        v.positive("lr", lr)
        v.positive("eps", eps)
        v.positive("delta", delta)
        v.in_range("lr_momentum", lr_momentum, 0.0, 1.0, hi_open=True)
        if rel_eps is not None:
            v.in_range("rel_eps", rel_eps, 0.0, 0.5, lo_open=True)
        super().__init__(params, lr=lr, eps=eps, delta=delta, lr_momentum=lr_momentum,
                         validation=bool(validation), rel_eps=rel_eps)

    facts = Facts(cost=_cost, probes=True, lr_scope="global")

    @staticmethod
    def scalars(h: dict, like: torch.Tensor) -> dict[str, torch.Tensor]:
        lr = lr_state(h, like)["lr"]
        return {"lr": lr, "lr_buf": torch.zeros_like(lr), "lr0": lr.clone()}

    @staticmethod
    def update(ops, h, t, params, grads, state, loss, oracle):
        lr = state["lr"]
        eps = h["eps"] if h["rel_eps"] is None else h["rel_eps"] * torch.maximum(lr, state["lr0"])
        split = "val" if h["validation"] else "train"
        start = [p.clone() for p in params] if ops.inplace else params  # in place the probes move params
        # each point w − s·g rounded as a product, then a difference (ops.point_, not fused): the
        # second difference of eq. 10 at ε = 1e-5 resolves the loss to 1e-10 and would see it
        losses = torch.stack([oracle.loss_at(start, grads, -(lr + j * eps), split) for j in PROBE_OFFSETS])
        params = ops.point_(params, start, grads, -lr)  # = the j = 0 probe point, bit for bit
        step = newton_lr_step(losses, eps, h["delta"]).to(lr.dtype)
        new_lr, new_buf = lr_update(lr, state["lr_buf"], step, beta=h["lr_momentum"], delta=h["delta"])
        return params, {**state, "lr": new_lr, "lr_buf": new_buf}, lr
