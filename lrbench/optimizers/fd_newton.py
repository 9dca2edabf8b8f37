"""Second-order ("Newton–Raphson") learning of the learning rate by finite differences (seed 000)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from lrbench.optimizers import _validate as v
from lrbench.optimizers._fd import PROBE_OFFSETS, lr_update, newton_lr_step, sgd_step
from lrbench.registry import register_optimizer


def fd_newton_update(params: Sequence[Tensor], grads: Sequence[Tensor], lr: Tensor, lr_buf: Tensor,
                     losses: Tensor, eps: Tensor | float, *, delta: float,
                     beta: float) -> tuple[list[Tensor], Tensor, Tensor, Tensor]:
    """One step of the second-order method, in the order of operations of §4.1.

    Args:
        params, grads: the weights w(k) and the gradient g(k) = ∇L(w(k)).
        lr: η(k), the step size applied in this step (0-d).
        lr_buf: the LR momentum buffer b(k) (0-d; zero when β = 0).
        losses: ``[f(η−2ε), f(η−ε), f(η), f(η+ε), f(η+2ε)]`` with f(s) = L(w(k) − s g(k)),
            probed with the current η(k).
        eps: the finite-difference step ε.
        delta: δ of eq. 11–13.
        beta: LR momentum β of §5.2.

    Returns:
        ``(new_params, new_lr, new_lr_buf, applied_lr)``: w(k+1) = w(k) − η(k) g(k),
        η(k+1) = max(η(k) + b(k+1), δ) with b(k+1) = β b(k) + newton_lr_step (eq. 10–13),
        and the applied step size η(k).
    """
    new_params = sgd_step(params, grads, lr)
    step = newton_lr_step(losses, eps, delta).to(lr.dtype)
    new_lr, new_buf = lr_update(lr, lr_buf, step, beta=beta, delta=delta)
    return new_params, new_lr, new_buf, lr


@register_optimizer("fd_newton", adapts_lr=True)
class FDNewton(torch.optim.Optimizer):
    """SGD whose learning rate follows a finite-difference Newton–Raphson step (seed 000, §3.2).

    With f(η) = L(w(k) − η g(k)) the loss after a step of size η along the gradient
    (eq. 1–2), step k does, in the order of §4.1:

    1. ``closure()``: g(k) = ∇L(w(k)) and the returned loss L(w(k));
    2. five probes ``closure(grad=False)`` at w(k) − (η(k) + jε) g(k), j = −2..2, after which the
       weights are restored bit-exactly;
    3. w(k+1) = w(k) − η(k) g(k) (so L(k+1) = f(η(k)), the j = 0 probe, bit for bit);
    4. η(k+1) = η(k) − 2ε (f(η+ε) − f(η−ε)) / (f(η+2ε) + f(η−2ε) − 2f(η)) (eq. 10), with δ added
       to the denominator when it is exactly 0 (eq. 11–12) and η(k+1) = max(η(k+1), δ) (eq. 13).

    Options: ``lr_momentum = β`` adds momentum on the LR update (§5.2):
    b(k+1) = β b(k) − 2ε(...)/(...), η(k+1) = η(k) + b(k+1) (the paper tried β = 0.9; default 0 =
    off, as in the paper's main method). ``validation=True`` is the §5.3 variant: the five probes
    use the loss on the problem's validation batch, ``closure(grad=False, split="val")``, while
    g(k) stays the training gradient (eq. 14–15).

    Oracle cost per step: 6 forward + 1 backward (1 forward + 1 backward for g(k), 5 probe
    forwards; the probes need no backward, although §6.3 of the paper counts five of each).

    ``group["lr"]`` after a step holds η(k), the step size applied to the weights in that step;
    η(k+1) lives in ``state["lr"]`` of the group's first parameter.

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

    * Several parameter groups: each group keeps its own η_g, the probes move every group at
      once (w_g − (η_g + jε_g) g_g), and every group gets the same Newton step in units of ε,
      i.e. a Newton step along the direction (ε_1, …, ε_G) in η-space. With one group (the
      paper's setting) this is exactly eq. 10.
    * Parameters whose ``grad`` is None after the closure are skipped (neither probed nor
      updated), as ``torch.optim`` does.
    * ``validation`` is read from the first group, since the probes are shared by all groups.
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
        super().__init__(params, dict(lr=lr, eps=eps, delta=delta, lr_momentum=lr_momentum,
                                      validation=bool(validation), rel_eps=rel_eps))

    def _group_state(self, group) -> dict:
        state = self.state[group["params"][0]]
        if "lr" not in state:
            p = group["params"][0]
            state["lr"] = torch.as_tensor(group["lr"], dtype=p.dtype, device=p.device).clone()
            state["lr_buf"] = torch.zeros((), dtype=p.dtype, device=p.device)
            state["lr0"] = state["lr"].clone()
        return state

    def _probe_losses(self, closure, probes, split: str) -> Tensor:
        """The five losses f(η + jε), j = −2..2, with every weight restored bit-exactly after.

        ``probes`` is a list of ``(params, weights, grads, lr, eps)``, one per group.
        """
        losses = []
        for j in PROBE_OFFSETS:
            for params, w, g, lr, eps in probes:
                for p, q in zip(params, sgd_step(w, g, lr + j * eps)):
                    p.copy_(q)
            losses.append(closure(grad=False, split=split))
        for params, w, _, _, _ in probes:
            for p, q in zip(params, w):
                p.copy_(q)
        return torch.stack(losses)

    @torch.no_grad()
    def step(self, closure):
        """One step (6 forward + 1 backward); returns the training loss at w(k)."""
        with torch.enable_grad():
            loss = closure()
        work = []  # (group, state, params, weights, grads, eps) for every group with gradients
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                state = self._group_state(group)
                eps = (group["eps"] if group["rel_eps"] is None
                       else group["rel_eps"] * torch.maximum(state["lr"], state["lr0"]))
                work.append((group, state, params, [p.detach().clone() for p in params],
                             [p.grad for p in params], eps))
        if not work:
            return loss
        # the probes are shared by all groups: they use the first group's split
        split = "val" if self.param_groups[0]["validation"] else "train"
        losses = self._probe_losses(closure, [(p, w, g, s["lr"], e) for _, s, p, w, g, e in work], split)
        for group, state, params, w, g, eps in work:
            new_w, state["lr"], state["lr_buf"], group["lr"] = fd_newton_update(
                w, g, state["lr"], state["lr_buf"], losses, eps,
                delta=group["delta"], beta=group["lr_momentum"])
            for p, q in zip(params, new_w):
                p.copy_(q)
        return loss
