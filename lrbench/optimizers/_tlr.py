"""Shared math of Trainable Learning Rate (TLR; seed 002, "Trainable Learning Rate", ICLR 2022 submission).

Keys ``tlr_naive`` (Algorithm 1), ``tlr`` (Algorithm 2) and ``tlr_pl`` (per-tensor Algorithm 2,
Appendix D.2) share the SGD extension of Section 4, implemented here once:

* Every step moves the weights along the SGD direction with momentum and coupled L2 weight decay,
  ``d_k = mu * d_{k-1} + g_k + lambda * w_k`` and ``w_{k+1} = w_k - alpha * d_k`` (Appendix D: "all
  SGD-based optimizers ... use weight decay and momentum 5e-4 and 0.8 ... also the proposed
  sgd_tlr and sgd_tlr_pl"; ``d_{-1} = 0``, so the first step is ``torch.optim.SGD``'s). This is
  ``torch.optim.SGD``'s heavy-ball direction with dampening 0
  (:func:`lrbench.optimizers._directions.sgd`; its buffer ``momentum_buffer`` is ``d_{k-1}``).
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

Mechanics: each rule (:func:`tlr_step`, :func:`tlr_pl_step`, :func:`tlr_naive_step`) is the
``update`` of a :class:`lrbench.optimizers._core.Method`, written once for the in-place and the
pure driver. Whether a step closes a window depends only on the step count ``t`` (a Python int),
so the Newton factor, the probe and the window reset run only on the steps that close a window.
The window sum is accumulated in place; at a window's end it is divided in place into ``G_t``,
which becomes ``grad_prev``, and the old ``grad_prev`` buffer, zeroed, becomes the next window's
sum (no copy; ``tlr_naive``, which keeps no ``G_{t-1}``, zeroes the sum itself after its probe).
:func:`tlr_update`, :func:`tlr_pl_update` and :func:`tlr_naive_update` apply one step of a
rule to given tensors without changing them (reference values for the tests).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from lrbench.optimizers import _directions, _validate as v
from lrbench.optimizers._core import Cost, Ops, Oracle

__all__ = [
    "validate",
    "window_length",
    "closes_window",
    "newton_factor",
    "tlr_step",
    "tlr_pl_step",
    "tlr_naive_step",
    "naive_cost",
    "alpha_state",
]

Tensors = Sequence[Tensor]


def validate(lr, momentum, weight_decay, p, steps_per_epoch) -> None:
    """The checks shared by the three keys."""
    v.positive("lr", lr)
    v.in_range("momentum", momentum, 0.0, 1.0, hi_open=True)
    v.nonneg("weight_decay", weight_decay)
    v.positive("p", p)
    if steps_per_epoch is not None:
        v.positive_int("steps_per_epoch", steps_per_epoch)


def window_length(p: float, steps_per_epoch: int | None) -> int:
    """Steps between learning-rate updates: ``round(p * N)`` (at least 1); 1 when ``N`` is None."""
    if steps_per_epoch is None:
        return 1
    return max(1, round(p * steps_per_epoch))


def closes_window(h: dict, t: int) -> bool:
    """Step ``t`` (0-based) is the last of a window: alpha is updated in it."""
    return (t + 1) % window_length(h["p"], h["steps_per_epoch"]) == 0


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
    Element-wise, so ``tlr_pl`` evaluates all its tensors' factors at once.
    """
    den = torch.maximum(4.0 * (sq - ip), ip / c)
    ok = den > 0
    ratio = ip / torch.where(ok, den, torch.ones_like(den))
    return 1.0 + torch.where(ok, ratio, torch.zeros_like(ratio))


# --------------------------------------------------------------------------- list helpers

def _div_(ops: Ops, xs, n: int):
    """x ← x / n (a division, as the window mean was always computed)."""
    if n == 1:
        return xs
    if ops.inplace:
        torch._foreach_div_(xs, n)
        return xs
    return [x / n for x in xs]


def _zero_(ops: Ops, xs):
    """x ← 0 (exact zeros, whatever x held)."""
    if ops.inplace:
        torch._foreach_zero_(xs)
        return xs
    return [torch.zeros_like(x) for x in xs]


def _window(ops: Ops, h: dict, t: int, params, grads, state: dict):
    """This step's direction ``d`` and the window sum with ``d`` added: ``(d, sum, state)``,
    the new state holding the sum as ``grad_acc``."""
    d, _, state, _ = _directions.sgd(ops, t, params, grads, state, momentum=h["momentum"],
                                     weight_decay=h["weight_decay"])
    acc = ops.add_(state["grad_acc"], d)
    return d, acc, {**state, "grad_acc": acc}


def _close(ops: Ops, state: dict, acc, window: int):
    """At a window's end: the sum becomes the mean ``G_t``; returns it and the previous mean."""
    return _div_(ops, acc, window), state["grad_prev"]


# --------------------------------------------------------------------------- the three rules

def tlr_step(ops: Ops, h: dict, t: int, params, grads, state: dict, *, window: int):
    """One step of efficient GD-TLR (Algorithm 2) with the SGD extension of Section 4.

    At the last step of each window: ``alpha <- alpha * newton_factor(<G_t, G_{t-1}>, |G_t|^2, c)``
    with inner products over all tensors of the unit (one alpha), then ``G_{t-1} <- G_t``. Every
    step: ``w <- w - alpha * d``. State: ``momentum_buffer`` (with momentum), ``grad_acc``,
    ``grad_prev`` per tensor, ``alpha`` (0-d). Returns ``(params, state, alpha)``.
    """
    d, acc, new = _window(ops, h, t, params, grads, state)
    alpha = state["alpha"]
    if (t + 1) % window == 0:
        mean, prev = _close(ops, state, acc, window)
        alpha = alpha * newton_factor(ops.dot(mean, prev), ops.dot(mean, mean), h["c"])
        new["grad_acc"], new["grad_prev"] = _zero_(ops, prev), mean
    new["alpha"] = alpha
    return ops.sub_scaled_(params, d, alpha), new, alpha


def tlr_pl_step(ops: Ops, h: dict, t: int, params, grads, state: dict, *, window: int, fresh: bool):
    """Per-tensor TLR (Appendix D.2): :func:`tlr_step` with one alpha per parameter tensor,
    each updated from the inner products of that tensor's own window gradients (eq. 5 per layer).

    ``state["alpha"]`` is one 0-d tensor per parameter tensor; ``fresh`` (the first step) starts
    them at ``h["lr"]``. A buffer that is not 0-d (one the driver has just created, as zeros like
    the parameter, for a parameter that got its first gradient later) starts at the initial
    rate ``h["initial_lr"]``. Returns ``(params, state, lr)`` with ``lr`` the mean of the
    alphas after the update.
    """
    d, acc, new = _window(ops, h, t, params, grads, state)
    alphas = list(state["alpha"])
    if fresh or any(a.dim() for a in alphas):
        lr0 = h["lr"] if fresh else h.get("initial_lr", h["lr"])
        alphas = [torch.as_tensor(lr0, dtype=a.dtype, device=a.device) if fresh or a.dim() else a for a in alphas]
    if (t + 1) % window == 0:  # the window's end: all tensors' factors at once
        mean, prev = _close(ops, state, acc, window)
        ip, sq = torch.stack(ops.dots(mean, prev)), torch.stack(ops.dots(mean, mean))
        alphas = list((torch.stack(alphas) * newton_factor(ip, sq, h["c"])).unbind())
        new["grad_acc"], new["grad_prev"] = _zero_(ops, prev), mean
    new["alpha"] = alphas
    if ops.inplace:  # w <- w - alpha_l d_l, one kernel per tensor
        torch._foreach_addcmul_(params, d, alphas, value=-1.0)
    else:
        params = [torch.addcmul(w, x, a, value=-1.0) for w, x, a in zip(params, d, alphas)]
    return params, new, torch.stack(alphas).mean()


def tlr_naive_step(ops: Ops, h: dict, t: int, params, grads, state: dict, oracle: Oracle, *, window: int):
    """One step of naive GD-TLR (Algorithm 1) with the SGD extension of Section 4.

    At the last step of each window, with ``u = w_t - alpha_t G_t`` and the loss gradient at
    ``u`` from one extra forward-backward pass (``oracle.grad_at``):
    ``dL_alpha/dalpha = -<grad L(u) + lambda * u, G_t>`` (chain rule on eq. 2; eq. 5 is its
    single-layer form) and ``alpha <- max(0, alpha - eta * dL_alpha/dalpha)`` (eq. 3). Every
    step: ``w <- w - alpha * d``. In place the probe moves the parameters to ``u``; they are
    put back from a copy of ``w_t`` (bit-exactly) before the step. Returns ``(params, state, alpha)``.
    """
    d, acc, new = _window(ops, h, t, params, grads, state)
    alpha = state["alpha"]
    if (t + 1) % window == 0:
        mean = _div_(ops, acc, window)
        base = [p.clone() for p in params] if ops.inplace else params  # w_t, to come back to
        _, probe = oracle.grad_at(base, mean, -alpha)
        if h["weight_decay"]:  # in place the parameters are at u now; the pure oracle left them
            u = params if ops.inplace else ops.add(base, mean, -alpha)
            probe = ops.add_(probe, u, h["weight_decay"])  # the probe's own gradient list
        hypergrad = -ops.dot(probe, mean)
        alpha = torch.clamp(alpha - h["eta"] * hypergrad, min=0.0)
        new["grad_acc"] = _zero_(ops, acc)
        params = ops.set_(params, base)
    new["alpha"] = alpha
    return ops.sub_scaled_(params, d, alpha), new, alpha


def naive_cost(h: dict, t: int) -> Cost:
    """``tlr_naive``: 1 forward + 1 backward, plus the probe's on steps that close a window."""
    return Cost(2, 2) if closes_window(h, t) else Cost(1, 1)


def alpha_state(h: dict, like: Tensor) -> dict:
    """The unit's alpha (``tlr``, ``tlr_naive``): a 0-d tensor of the parameters' dtype at ``h["lr"]``."""
    return {"alpha": torch.as_tensor(h["lr"], dtype=like.dtype, device=like.device).clone()}
