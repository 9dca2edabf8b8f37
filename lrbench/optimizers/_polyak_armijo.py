"""Shared math of the two loss-value step sizes ``sls`` and ``sps``: pure update functions and
the optimizer base class.

* SLS: stochastic Armijo line search (Vaswani, Mishkin, Laradji, Schmidt, Gidel &
  Lacoste-Julien, NeurIPS 2019, "Painless Stochastic Gradient: Interpolation, Line-Search,
  and Convergence Rates"). Armijo condition on the current batch (the paper's eq. 1):
  ``f_i(w - η g) <= f_i(w) - c η ‖g‖²``; backtracking ``η <- β_b η`` (Algorithm 1) from the
  start ``η_prev · γ^{b/n}`` (Algorithm 2, ``reset``, option 2).
* SPS: stochastic Polyak step (Loizou, Vaswani, Laradji & Lacoste-Julien, AISTATS 2021,
  "Stochastic Polyak Step-size for SGD: An Adaptive Learning Rate for Fast Convergence"):
  ``η = (f_i - f_i*) / (c ‖g‖²)`` (SPS), bounded as in SPS_max by ``η_b``, here the smoothed
  bound ``η_b = γ^{b/n} η_{t-1}`` that the paper takes over from Vaswani et al. 2019.

``b/n`` (batch size over training-set size) is ``1 / n_batches``, the number of steps per
epoch; both optimizers take it as ``steps_per_epoch`` (None: 1, i.e. full batch).

Both rules (:func:`sps_rule`, :func:`sls_rule`) are written once for the two drivers of
:mod:`lrbench.optimizers._core` (``step()`` in place, ``functional()`` out of place for
``torch.func.vmap``). Both papers compute one scalar η from the one batch loss and the norm of
the full gradient, so both declare ``lr_scope="global"``: all parameter groups share η and the
hyper-parameters (``lr`` included). The shared η is a 0-d tensor ``"eta"`` of the unit,
started at ``lr`` in the parameters' dtype. The scalar helpers below take 0-d tensors and the
list helpers lists of tensors; none mutates its inputs or branches in Python on tensor values.
The only data-dependent loop, SLS's backtracking, goes through :meth:`Oracle.search
<lrbench.optimizers._core.Oracle>`, which each driver implements.
"""

from __future__ import annotations

import torch

from lrbench.optimizers import _validate as v
from lrbench.optimizers._core import Cost, Facts, Ops, Oracle, cast, const, one_pass

__all__ = ["sgd_step", "smoothed_bound", "sls_reset", "armijo_gap", "armijo_holds",
           "sps_step_size", "sps_rule", "sls_rule", "eta_state", "n_batches",
           "SPS_FACTS", "SLS_FACTS", "validate_steps_per_epoch"]


def sgd_step(params: list[torch.Tensor], grads: list[torch.Tensor], eta: torch.Tensor) -> list[torch.Tensor]:
    """The SGD point ``w - η g``, out of place (a trial point of SLS, the update of both)."""
    return [p - eta * g for p, g in zip(params, grads)]


def smoothed_bound(eta_prev: torch.Tensor, gamma: float, n_batches: int) -> torch.Tensor:
    """``γ^{1/n_batches} · η_prev``: the step size may grow by at most a factor γ per epoch."""
    return eta_prev * const(gamma ** (1.0 / n_batches), eta_prev)


def sls_reset(eta_prev: torch.Tensor, *, gamma: float, n_batches: int, eta_max: float) -> torch.Tensor:
    """Start of the line search, ``min(η_prev · γ^{1/n_batches}, η_max)`` (Vaswani et al. 2019,
    Algorithm 2 option 2, capped at ``η_max`` as in the authors' code)."""
    return torch.clamp_max(smoothed_bound(eta_prev, gamma, n_batches), const(eta_max, eta_prev))


def armijo_gap(loss: torch.Tensor, trial_loss: torch.Tensor, eta: torch.Tensor, grad_sq: torch.Tensor,
               c: float) -> torch.Tensor:
    """``f(w - η g) - (f(w) - c η ‖g‖²)``: the Armijo condition (eq. 1) holds iff this is <= 0.

    NaN when a loss is NaN (then the condition does not hold).
    """
    return trial_loss - (loss - const(c, eta) * eta * grad_sq)


def armijo_holds(loss: torch.Tensor, trial_loss: torch.Tensor, eta: torch.Tensor, grad_sq: torch.Tensor,
                 c: float) -> torch.Tensor:
    """Boolean 0-d tensor: ``f(w - η g) <= f(w) - c η ‖g‖²`` (False on NaN)."""
    return armijo_gap(loss, trial_loss, eta, grad_sq, c) <= const(0.0, eta)


def sps_step_size(loss: torch.Tensor, grad_sq: torch.Tensor, eta_prev: torch.Tensor, *, c: float,
                  f_star: float, gamma: float, n_batches: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SPS_max step size with the smoothed bound (Loizou et al. 2021).

    ``η = min(max(f_i - f_i*, 0) / (c ‖g‖²), η_b)`` with ``η_b = γ^{1/n_batches} η_prev``.
    Degenerate cases, without Python branching, in six 0-d operations (seven with ``f_i* ≠ 0``;
    each costs a few µs on the CPU, which is the whole of this rule's overhead on a small
    model; the constants are cached 0-d tensors, :func:`~lrbench.optimizers._core.const`):

    * ``‖g‖² = 0``: ``η = η_b`` (the update ``w - η·0`` does not move, and η does not
      collapse to 0, which would freeze the smoothed bound at 0 for ever), never NaN or inf:
      the ratio is then ``+inf`` or ``0/0 = NaN``, and ``fmin`` returns ``η_b`` for both.
    * ``f_i <= f_i*`` with ``‖g‖² > 0``: ``η = 0`` (no step; the numerator is clamped at 0 so
      the step never points uphill), and the value carried to the next step stays ``η_prev``
      (again so that one such batch does not freeze the bound at 0). The carry is chosen by
      ``η > 0``, so a positive ratio that underflows to 0 (``f_i - f_i* < 1e-38 ‖g‖²`` in
      float32) also keeps ``η_prev``: the step is 0 either way.
    * a NaN loss: ``η = η_b`` (``fmin`` drops the NaN); the gradient of a NaN loss is NaN, so
      the parameters become NaN all the same and the runner records the divergence.

    Returns:
        ``(eta, eta_next)``: the step size to apply and the ``η_prev`` of the next step.
    """
    bound = smoothed_bound(eta_prev, gamma, n_batches)
    zero = const(0.0, eta_prev)
    num = torch.clamp_min(loss if f_star == 0 else loss - const(f_star, loss), zero)
    eta = torch.fmin(num / (const(c, grad_sq) * grad_sq), bound)
    eta_next = torch.where(eta > zero, eta, eta_prev)
    return eta, eta_next


def validate_steps_per_epoch(steps_per_epoch) -> None:
    """``steps_per_epoch`` is None (full batch: 1) or an integer >= 1."""
    if steps_per_epoch is not None:
        v.positive_int("steps_per_epoch", steps_per_epoch)


# --------------------------------------------------------------------------- the rules


def _sls_cost(h: dict, t: int) -> Cost:
    """1 forward + 1 backward for the gradient, then k >= 1 trial forwards (a line search)."""
    return Cost(1, 1, 0, search=True)


#: SPS: the loss value, one η for all parameters, 1 forward + 1 backward.
SPS_FACTS = Facts(cost=one_pass, needs_loss=True, lr_scope="global")
#: SLS: the loss value and trial losses (probes), one η for all parameters.
SLS_FACTS = Facts(cost=_sls_cost, needs_loss=True, probes=True, lr_scope="global")


def eta_state(h: dict, like: torch.Tensor) -> dict[str, torch.Tensor]:
    """The unit's η_prev, a 0-d tensor of the parameters' dtype started at ``h["lr"]``."""
    return {"eta": torch.tensor(float(h["lr"]), dtype=like.dtype, device=like.device)}


def n_batches(h: dict) -> int:
    """``n/b`` from ``steps_per_epoch`` (None: 1, full batch)."""
    return 1 if h["steps_per_epoch"] is None else h["steps_per_epoch"]


def sps_rule(ops: Ops, h: dict, t: int, params, grads, state: dict, loss: torch.Tensor, oracle: Oracle):
    """One SPS step: η from :func:`sps_step_size` with ‖g‖² over all tensors, w ← w − η g.

    Returns:
        ``(params, state, η)``; the state's ``eta`` is the η_prev of the next step.
    """
    eta_prev = state["eta"]
    # ‖g‖² by vdot and the step by one fused multiply-add: no temporaries. (SPS amplifies a
    # last-bit change of η by ~1e7 within 50 steps on a small net, so this rounds differently
    # from the first implementation; bench/trajectory_check.py holds it to the drift of a 1e-15
    # start.)
    grad_sq = cast(ops.dot(grads, grads), eta_prev.dtype)
    eta, eta_next = sps_step_size(cast(loss, eta_prev.dtype), grad_sq, eta_prev, c=h["c"], f_star=h["f_star"],
                                  gamma=h["gamma"], n_batches=n_batches(h))
    params = ops.sub_scaled_(params, grads, eta)
    return params, {**state, "eta": eta_next}, eta


def sls_rule(ops: Ops, h: dict, t: int, params, grads, state: dict, loss: torch.Tensor, oracle: Oracle):
    """One SLS step: reset η, backtrack η ← β_b η until the Armijo condition holds on the
    batch (at most ``max_backtracks + 1`` trials, the last one kept when none passes), then
    w ← w − η g.

    Each trial point ``w − η g`` is computed from a saved copy of the start ``w`` (in place the
    probes move the live parameters; the copy is the one parameter-sized buffer of the search)
    with :meth:`~lrbench.optimizers._core.Ops.point_`: ``η g`` rounded first, then the
    subtraction, as :func:`sgd_step` computes it. So the accepted point is exactly ``w − η g``
    whatever the failed probes did; in place the parameters already hold it after the search
    (it was the last one probed) and are not written again.

    Returns:
        ``(params, state, η)``; the state's ``eta`` is the accepted η (the next reset's η_prev).
    """
    eta0 = sls_reset(state["eta"], gamma=h["gamma"], n_batches=n_batches(h), eta_max=h["eta_max"])
    f = cast(loss, eta0.dtype)
    grad_sq = cast(ops.dot(grads, grads), eta0.dtype)
    start = [p.detach().clone() for p in params] if ops.inplace else list(params)
    c, beta_b = h["c"], h["beta_b"]
    eta = oracle.search(
        eta0,
        lambda eta: oracle.loss_at(start, grads, -eta),
        lambda eta, trial_loss: armijo_holds(f, cast(trial_loss, eta.dtype), eta, grad_sq, c),
        lambda eta: eta * beta_b,
        h["max_backtracks"] + 1)
    # w − (η g) as sgd_step computes it (a multiply, then a subtraction), bit-exact whatever the
    # failed probes did; in place the last probe (the accepted trial, or the smallest one) left it
    params = params if ops.inplace else ops.point_(params, start, grads, -eta)
    return params, {**state, "eta": eta}, eta
