"""Shared math of Trainable Learning Rate (TLR; seed 002, "Trainable Learning Rate", ICLR 2022 submission).

Keys ``tlr_naive`` (Algorithm 1), ``tlr`` (Algorithm 2) and ``tlr_pl`` (per-tensor Algorithm 2,
Appendix D.2) share the SGD extension of Section 4, implemented here once:

* Every step moves the weights along the SGD direction with momentum and coupled L2 weight decay,
  ``d_k = mu * d_{k-1} + g_k + lambda * w_k`` and ``w_{k+1} = w_k - alpha * d_k`` (Appendix D: "all
  SGD-based optimizers ... use weight decay and momentum 5e-4 and 0.8 ... also the proposed
  sgd_tlr and sgd_tlr_pl"; ``d_{-1} = 0``, so the first step is ``torch.optim.SGD``'s).
* The gradient the learning-rate rule sees is accumulated over a window of ``pN`` steps (eq. 10,
  ``N`` = steps per epoch, ``p`` = 1/3) and alpha is updated once per window, at the window's last
  step, before that step's weight update (Algorithm 2 lines 5-6 order). With ``N`` unknown
  (``steps_per_epoch=None``) the window is one step: Algorithms 1 and 2 verbatim (full-batch GD).

Choices where the paper is ambiguous (each applies to all three keys):

* Eq. 10 writes the window gradient as ``sum_k g(w_k; x_k) = (w_t - w_{t-pN}) / alpha_t``, i.e. the
  weight difference over the window divided by the (constant within the window) step size. With
  momentum and weight decay that weight difference is the sum of the applied directions ``d_k``,
  so we accumulate ``sum_k d_k`` over the window's ``pN`` steps directly instead of storing
  ``w_{t-pN}``: for the steps already taken it is the weight difference over alpha in exact
  arithmetic, with the same memory (one buffer per tensor) and without the cancellation of
  subtracting nearly equal float32 weights; and it includes the current step's direction, which
  Algorithm 2 uses before stepping (so a one-step window is exactly Algorithm 2). The paper's sign (``w_t - w_{t-pN}``) is that of
  ``-gradient``; we use ``+gradient`` (``(w_{t-pN} - w_t)/alpha``). The alpha rule only sees
  products of two such gradients, so the sign does not matter.
* We divide the window sum by the window length (the mean direction ``G_t``). The Newton rule
  (eqs. 7-9) is invariant to scaling ``G_t`` and ``G_{t-1}`` by the same factor, so this changes
  nothing for ``tlr``/``tlr_pl``; for ``tlr_naive`` it makes the lookahead ``w - alpha * G_t`` one
  GD step along the averaged gradient (Algorithm 1 with Section 4's "gradient close to the ideal
  full-set gradient") and keeps the meaning of ``eta`` independent of ``N``.
* Window length ``pN`` is rounded to the nearest integer, at least 1.
* One alpha per parameter group for ``tlr``/``tlr_naive`` (the paper has a single group).

Every update function here is pure (no in-place updates of its inputs, no Python branching on tensor
values), so ``torch.func.vmap`` can run one update over a batch of independent runs.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from lrbench.optimizers import _validate as v

__all__ = [
    "TLRResult",
    "TLRNaiveResult",
    "window_length",
    "sgd_directions",
    "newton_factor",
    "tlr_update",
    "tlr_pl_update",
    "naive_lookahead",
    "tlr_naive_update",
]

Tensors = Sequence[Tensor]


class TLRResult(NamedTuple):
    """Output of :func:`tlr_update` / :func:`tlr_pl_update` (new parameters and state)."""

    params: list[Tensor]
    momentum_buffers: list[Tensor]
    grad_acc: list[Tensor]  # sum of directions in the current (unfinished) window
    grad_prev: list[Tensor]  # mean direction of the last finished window, G_{t-1}
    alpha: Tensor | list[Tensor]  # 0-d (tlr) or one 0-d tensor per parameter tensor (tlr_pl)
    step: Tensor  # steps taken so far (int64)
    lr: Tensor  # step size applied in this step (tlr_pl: mean of the per-tensor alphas)


class TLRNaiveResult(NamedTuple):
    """Output of :func:`tlr_naive_update`."""

    params: list[Tensor]
    momentum_buffers: list[Tensor]
    grad_acc: list[Tensor]
    alpha: Tensor
    step: Tensor
    lr: Tensor


def window_length(p: float, steps_per_epoch: int | None) -> int:
    """Steps between learning-rate updates: ``round(p * N)`` (at least 1); 1 when ``N`` is None."""
    if steps_per_epoch is None:
        return 1
    return max(1, round(p * steps_per_epoch))


def sgd_directions(params: Tensors, grads: Tensors, bufs: Tensors, momentum: float,
                   weight_decay: float) -> list[Tensor]:
    """Heavy-ball direction with coupled L2: ``d = mu * buf + g + lambda * w`` (``torch.optim.SGD``)."""
    return [momentum * b + g + weight_decay * w for w, g, b in zip(params, grads, bufs)]


def _dot(a: Tensors, b: Tensors) -> Tensor:
    """Inner product of two lists of tensors, summed over all of them (0-d)."""
    return torch.stack([(x * y).sum() for x, y in zip(a, b)]).sum()


def newton_factor(ip: Tensor, sq: Tensor, c: float) -> Tensor:
    """Multiplier of alpha in the bounded Newton step, Algorithm 2 line 5 / eqs. 7-9.

    With ``ip = <G_t, G_{t-1}>`` and ``sq = <G_t, G_t>``: eq. 7 gives ``dL/dalpha = -ip``, eq. 8
    ``d2L/dalpha2 = (4/alpha) (sq - ip)`` and eq. 9 replaces the inverse curvature by
    ``eta_t = alpha / max(4 (sq - ip), ip / c)``, so
    ``alpha_{t+1} = alpha_t - eta_t dL/dalpha = alpha_t (1 + ip / max(4 (sq - ip), ip / c))``.

    Bounds: for ``ip > 0`` the denominator is at least ``ip / c``, so the factor is at most
    ``1 + c`` (1.25 for c = 1/4; where the curvature ``sq - ip`` is not positive the factor is
    exactly ``1 + c``, Algorithm 2's ``min(., c)`` with ``max(., 0)``). For ``ip < 0`` the
    denominator is ``4 (sq + |ip|) > 4 |ip|``, so the factor is above ``3/4``: alpha never
    shrinks by 25% or more. The denominator is never negative and is zero only when
    ``G_t = 0``; the factor is then 1 (no information, no change) instead of ``0/0``.
    """
    den = torch.maximum(4.0 * (sq - ip), ip / c)
    ok = den > 0
    ratio = ip / torch.where(ok, den, torch.ones_like(den))
    return 1.0 + torch.where(ok, ratio, torch.zeros_like(ratio))


def _window(params: Tensors, grads: Tensors, bufs: Tensors, acc: Tensors, step: Tensor, *,
            momentum: float, weight_decay: float, window: int):
    """Directions of this step, the window mean ``G_t``, the reset accumulator, update flag."""
    dirs = sgd_directions(params, grads, bufs, momentum, weight_decay)
    total = [a + d for a, d in zip(acc, dirs)]
    update = (step + 1) % window == 0  # this step closes a window of `window` steps
    mean = [t / window for t in total]
    new_acc = [torch.where(update, torch.zeros_like(t), t) for t in total]
    return dirs, mean, new_acc, update


def tlr_update(params: Tensors, grads: Tensors, momentum_buffers: Tensors, grad_acc: Tensors,
               grad_prev: Tensors, alpha: Tensor, step: Tensor, *, momentum: float,
               weight_decay: float, c: float, window: int) -> TLRResult:
    """One step of efficient GD-TLR (Algorithm 2) with the SGD extension of Section 4.

    At the last step of each window: ``alpha <- alpha * newton_factor(<G_t, G_{t-1}>, |G_t|^2, c)``
    with inner products over all tensors (one global alpha), then ``G_{t-1} <- G_t``. Every step:
    ``w <- w - alpha * d``.
    """
    dirs, mean, new_acc, update = _window(params, grads, momentum_buffers, grad_acc, step,
                                          momentum=momentum, weight_decay=weight_decay, window=window)
    factor = newton_factor(_dot(mean, grad_prev), _dot(mean, mean), c)
    new_alpha = torch.where(update, alpha * factor, alpha)
    new_prev = [torch.where(update, m, q) for m, q in zip(mean, grad_prev)]
    new_params = [w - new_alpha * d for w, d in zip(params, dirs)]
    return TLRResult(new_params, dirs, new_acc, new_prev, new_alpha, step + 1, new_alpha)


def tlr_pl_update(params: Tensors, grads: Tensors, momentum_buffers: Tensors, grad_acc: Tensors,
                  grad_prev: Tensors, alphas: Tensors, step: Tensor, *, momentum: float,
                  weight_decay: float, c: float, window: int) -> TLRResult:
    """Per-tensor TLR (Appendix D.2): :func:`tlr_update` with one alpha per parameter tensor,
    each updated from the inner products of that tensor's own window gradients (eq. 5 per layer).

    The returned ``lr`` is the mean of the per-tensor alphas after the update.
    """
    dirs, mean, new_acc, update = _window(params, grads, momentum_buffers, grad_acc, step,
                                          momentum=momentum, weight_decay=weight_decay, window=window)
    new_alphas = [torch.where(update, a * newton_factor((m * q).sum(), (m * m).sum(), c), a)
                  for a, m, q in zip(alphas, mean, grad_prev)]
    new_prev = [torch.where(update, m, q) for m, q in zip(mean, grad_prev)]
    new_params = [w - a * d for w, a, d in zip(params, new_alphas, dirs)]
    lr = torch.stack(new_alphas).mean()
    return TLRResult(new_params, dirs, new_acc, new_prev, new_alphas, step + 1, lr)


def naive_lookahead(params: Tensors, grads: Tensors, momentum_buffers: Tensors, grad_acc: Tensors,
                    alpha: Tensor, *, momentum: float, weight_decay: float, window: int) -> list[Tensor]:
    """The point ``w_t - alpha_t * G_t`` where naive TLR evaluates the gradient of eq. 2's
    ``L_alpha`` (Algorithm 1 line 4); only meaningful at the last step of a window."""
    dirs = sgd_directions(params, grads, momentum_buffers, momentum, weight_decay)
    return [w - alpha * (a + d) / window for w, a, d in zip(params, grad_acc, dirs)]


def tlr_naive_update(params: Tensors, grads: Tensors, momentum_buffers: Tensors, grad_acc: Tensors,
                     alpha: Tensor, step: Tensor, probe_grads: Tensors | None, *, eta: float,
                     momentum: float, weight_decay: float, window: int) -> TLRNaiveResult:
    """One step of naive GD-TLR (Algorithm 1) with the SGD extension of Section 4.

    At the last step of each window, with ``u = naive_lookahead(...)`` and ``probe_grads`` the
    loss gradient at ``u`` (the extra forward-backward pass):
    ``dL_alpha/dalpha = -<grad L(u) + lambda * u, G_t>`` (chain rule on eq. 2; eq. 5 is its
    single-layer form) and ``alpha <- max(0, alpha - eta * dL_alpha/dalpha)`` (eq. 3). Every
    step: ``w <- w - alpha * d``.

    ``probe_grads`` is None on steps that close no window; alpha is then unchanged.
    """
    dirs, mean, new_acc, update = _window(params, grads, momentum_buffers, grad_acc, step,
                                          momentum=momentum, weight_decay=weight_decay, window=window)
    if probe_grads is None:
        new_alpha = alpha
    else:
        look = [w - alpha * m for w, m in zip(params, mean)]
        hypergrad = -_dot([h + weight_decay * u for h, u in zip(probe_grads, look)], mean)
        new_alpha = torch.where(update, torch.clamp(alpha - eta * hypergrad, min=0.0), alpha)
    new_params = [w - new_alpha * d for w, d in zip(params, dirs)]
    return TLRNaiveResult(new_params, dirs, new_acc, new_alpha, step + 1, new_alpha)


class TLRBase(torch.optim.Optimizer):
    """Hyper-parameter validation, lazy state and gathering shared by the three TLR optimizers."""

    def __init__(self, params, defaults: dict):
        v.positive("lr", defaults["lr"])
        v.in_range("momentum", defaults["momentum"], 0.0, 1.0, hi_open=True)
        v.nonneg("weight_decay", defaults["weight_decay"])
        v.positive("p", defaults["p"])
        if defaults["steps_per_epoch"] is not None:
            v.positive_int("steps_per_epoch", defaults["steps_per_epoch"])
        super().__init__(params, defaults)

    def _gather(self, group: dict, per_tensor_alpha: bool = False, keep_prev: bool = True):
        """Initialise the state on first use; return params, grads, the per-tensor state lists
        and the group-level state dict (on ``group["params"][0]``)."""
        params = group["params"]
        head = self.state[params[0]]
        if "step" not in head:
            alpha0 = group["lr"]
            for p in params:
                s = self.state[p]
                for key in ("momentum_buffer", "grad_acc") + (("grad_prev",) if keep_prev else ()):
                    s[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if per_tensor_alpha:
                    s["alpha"] = torch.as_tensor(alpha0, dtype=p.dtype, device=p.device).clone()
            if not per_tensor_alpha:
                head["alpha"] = torch.as_tensor(alpha0, dtype=params[0].dtype, device=params[0].device).clone()
            head["step"] = torch.zeros((), dtype=torch.int64, device=params[0].device)
        head["step"] = head["step"].to(params[0].device)  # load_state_dict leaves "step" where it was saved
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        return params, grads, [self.state[p] for p in params], head

    def _write_back(self, params, states, out) -> None:
        for p, s, w, b, a in zip(params, states, out.params, out.momentum_buffers, out.grad_acc):
            p.copy_(w)
            s["momentum_buffer"] = b
            s["grad_acc"] = a
