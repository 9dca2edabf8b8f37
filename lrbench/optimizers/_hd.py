"""Hypergradient descent (HD) of the learning rate: the pure updates shared by ``sgd_hd``
and ``adam_hd``.

Baydin et al. (2018), "Online learning rate adaptation with hypergradient descent", in the
notation of seed 001 (§2–3), where step t maps w_t to w_{t+1} = Φ(w_t, η_t):

    η_t = max[η_{t-1} − β Δη_t, 0]                                              (5)
    Δ^HD η_t = B_{t-1}ᵀ ∇E(w_t),   B_{t-1} = ∂Φ(w_{t-1}, η_{t-1})/∂η             (6)

HD takes E = L, the training loss (seed 001, footnote 4). With the base optimizer written
as w_{t+1} = w_t − η_t d_t (d_t the update direction: the gradient for SGD, the heavy-ball
or Nesterov direction with momentum, m̂_t/(√v̂_t + ε) for Adam), B_{t-1} = −d_{t-1} and,
with g_t = ∇L(w_t),

    η_t = max[η_{t-1} + β g_t · d_{t-1}, 0].

The new η_t is the step size of the same step t, computed from the gradient of that step
(as in Baydin et al.'s SGD-HD, SGDN-HD and Adam-HD pseudocode). The dot product runs over
ALL parameter tensors given (one global learning rate per parameter group). d_{-1} = 0:
the first step has a zero hypergradient.

Both functions are pure (no in-place mutation of their inputs, no Python branching on tensor
values), so ``torch.func.vmap`` can map them over stacked seeds.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _hd_lr(lr: Tensor, grads: list[Tensor], dirs: list[Tensor], hypergrad_lr: float,
           clamp_lr: bool) -> Tensor:
    """η_t = η_{t-1} + β Σ_tensors g_t · d_{t-1}, clamped at 0 when ``clamp_lr`` (eq. 5)."""
    dot = sum((g * d).sum() for g, d in zip(grads, dirs))
    new_lr = lr + hypergrad_lr * dot.to(lr.dtype)
    return new_lr.clamp(min=0.0) if clamp_lr else new_lr


def sgd_hd_update(
    params: list[Tensor],
    grads: list[Tensor],
    dirs: list[Tensor],
    bufs: list[Tensor],
    lr: Tensor,
    t: Tensor,
    *,
    hypergrad_lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    clamp_lr: bool,
) -> tuple[list[Tensor], list[Tensor], list[Tensor], Tensor, Tensor]:
    """One SGD-HD step (Baydin et al. 2018 "SGD-HD"; with momentum "SGDN-HD").

    Args:
        params: parameters w_t.
        grads: their gradients ∇L(w_t) (without weight decay).
        dirs: previous update directions d_{t-1} (zeros before the first step).
        bufs: momentum buffers (ignored and returned unchanged when ``momentum == 0``;
            may then be an empty list).
        lr: η_{t-1}, 0-d tensor.
        t: number of steps taken so far, 0-d tensor (selects the momentum-buffer
            initialisation of the first step, as ``torch.optim.SGD``).
        hypergrad_lr: β. momentum, dampening, weight_decay, nesterov: as ``torch.optim.SGD``.
        clamp_lr: apply the ``max[·, 0]`` of eq. 5.

    Returns:
        ``(new_params, new_dirs, new_bufs, new_lr, new_t)``; ``new_lr`` = η_t is the step
        size applied in this step.
    """
    gs = [g + weight_decay * p for p, g in zip(params, grads)] if weight_decay else list(grads)
    new_lr = _hd_lr(lr, gs, dirs, hypergrad_lr, clamp_lr)
    if momentum:
        first = t == 0
        new_bufs = [torch.where(first, g, momentum * b + (1.0 - dampening) * g) for g, b in zip(gs, bufs)]
        new_dirs = [g + momentum * b for g, b in zip(gs, new_bufs)] if nesterov else new_bufs
    else:
        new_bufs, new_dirs = list(bufs), gs
    new_params = [p - new_lr * d for p, d in zip(params, new_dirs)]
    return new_params, new_dirs, new_bufs, new_lr, t + 1


def adam_hd_update(
    params: list[Tensor],
    grads: list[Tensor],
    dirs: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    lr: Tensor,
    t: Tensor,
    *,
    hypergrad_lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    clamp_lr: bool,
) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor], Tensor, Tensor]:
    """One Adam-HD step (Baydin et al. 2018 "Adam-HD").

    The Adam part is ``torch.optim.Adam`` (L2 weight decay added to the gradient,
    ε added to √v̂): d_t = m̂_t / (√v̂_t + ε), w_{t+1} = w_t − η_t d_t.

    Args:
        params, grads: w_t and ∇L(w_t) (without weight decay).
        dirs: previous directions d_{t-1} (zeros before the first step).
        exp_avgs, exp_avg_sqs: Adam's m_{t-1}, v_{t-1}.
        lr: η_{t-1}, 0-d tensor. t: steps taken so far, 0-d tensor.
        hypergrad_lr: β. beta1, beta2, eps, weight_decay: as ``torch.optim.Adam``.
        clamp_lr: apply the ``max[·, 0]`` of eq. 5.

    Returns:
        ``(new_params, new_dirs, new_exp_avgs, new_exp_avg_sqs, new_lr, new_t)``;
        ``new_lr`` = η_t is the step size applied in this step.
    """
    gs = [g + weight_decay * p for p, g in zip(params, grads)] if weight_decay else list(grads)
    new_lr = _hd_lr(lr, gs, dirs, hypergrad_lr, clamp_lr)
    new_t = t + 1
    bc1 = 1.0 - torch.pow(beta1, new_t)
    bc2_sqrt = torch.sqrt(1.0 - torch.pow(beta2, new_t))
    new_m = [torch.lerp(m, g, 1.0 - beta1) for m, g in zip(exp_avgs, gs)]
    new_v = [beta2 * v + (1.0 - beta2) * g * g for v, g in zip(exp_avg_sqs, gs)]
    new_dirs = [(m / bc1) / (v.sqrt() / bc2_sqrt + eps) for m, v in zip(new_m, new_v)]
    new_params = [p - new_lr * d for p, d in zip(params, new_dirs)]
    return new_params, new_dirs, new_m, new_v, new_lr, new_t
