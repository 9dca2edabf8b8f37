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

The functions below take lists of tensors and 0-d tensors, never mutate their inputs and
never branch in Python on tensor values, so ``torch.func.vmap`` maps them over seeds. The
only data-dependent Python control flow of either method is SLS's backtracking loop, whose
trip count is the number of loss probes (see :class:`lrbench.optimizers.sls.SLS`).
"""

from __future__ import annotations

import torch

from lrbench.optimizers import _validate as v

__all__ = ["sgd_step", "grad_sq_norm", "smoothed_bound", "sls_reset", "armijo_gap", "armijo_holds",
           "sps_step_size", "sps_update", "SharedStepSizeBase", "validate_steps_per_epoch"]


def sgd_step(params: list[torch.Tensor], grads: list[torch.Tensor], eta: torch.Tensor) -> list[torch.Tensor]:
    """The SGD point ``w - η g``, out of place (a trial point of SLS, the update of both)."""
    return [p - eta * g for p, g in zip(params, grads)]


def grad_sq_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """``‖g‖²`` over all tensors of the list (one vector: one step size for all parameters)."""
    return sum((g * g).sum() for g in grads)


def smoothed_bound(eta_prev: torch.Tensor, gamma: float, n_batches: int) -> torch.Tensor:
    """``γ^{1/n_batches} · η_prev``: the step size may grow by at most a factor γ per epoch."""
    return eta_prev * gamma ** (1.0 / n_batches)


def sls_reset(eta_prev: torch.Tensor, *, gamma: float, n_batches: int, eta_max: float) -> torch.Tensor:
    """Start of the line search, ``min(η_prev · γ^{1/n_batches}, η_max)`` (Vaswani et al. 2019,
    Algorithm 2 option 2, capped at ``η_max`` as in the authors' code)."""
    return torch.clamp(smoothed_bound(eta_prev, gamma, n_batches), max=eta_max)


def armijo_gap(loss: torch.Tensor, trial_loss: torch.Tensor, eta: torch.Tensor, grad_sq: torch.Tensor,
               c: float) -> torch.Tensor:
    """``f(w - η g) - (f(w) - c η ‖g‖²)``: the Armijo condition (eq. 1) holds iff this is <= 0.

    NaN when a loss is NaN (then the condition does not hold).
    """
    return trial_loss - (loss - c * eta * grad_sq)


def armijo_holds(loss: torch.Tensor, trial_loss: torch.Tensor, eta: torch.Tensor, grad_sq: torch.Tensor,
                 c: float) -> torch.Tensor:
    """Boolean 0-d tensor: ``f(w - η g) <= f(w) - c η ‖g‖²`` (False on NaN)."""
    return armijo_gap(loss, trial_loss, eta, grad_sq, c) <= 0


def sps_step_size(loss: torch.Tensor, grad_sq: torch.Tensor, eta_prev: torch.Tensor, *, c: float,
                  f_star: float, gamma: float, n_batches: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SPS_max step size with the smoothed bound (Loizou et al. 2021).

    ``η = min(max(f_i - f_i*, 0) / (c ‖g‖²), η_b)`` with ``η_b = γ^{1/n_batches} η_prev``.
    Degenerate cases, without Python branching:

    * ``‖g‖² = 0``: ``η = η_b`` (the update ``w - η·0`` does not move, and η does not
      collapse to 0, which would freeze the smoothed bound at 0 for ever), never NaN or inf.
    * ``f_i <= f_i*`` with ``‖g‖² > 0``: ``η = 0`` (no step; the numerator is clamped at 0 so
      the step never points uphill), and the value carried to the next step stays ``η_prev``
      (again so that one such batch does not freeze the bound at 0).

    Returns:
        ``(eta, eta_next)``: the step size to apply and the ``η_prev`` of the next step.
    """
    bound = smoothed_bound(eta_prev, gamma, n_batches)
    num = torch.clamp(loss - f_star, min=0.0)
    positive = grad_sq > 0
    ratio = num / (c * torch.where(positive, grad_sq, torch.ones_like(grad_sq)))
    eta = torch.where(positive, torch.minimum(ratio, bound), bound)
    eta_next = torch.where(positive & (num <= 0), eta_prev, eta)
    return eta, eta_next


def sps_update(params: list[torch.Tensor], grads: list[torch.Tensor], loss: torch.Tensor,
               eta_prev: torch.Tensor, *, c: float, f_star: float, gamma: float,
               n_batches: int) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """One SPS step ``w <- w - η g`` with η from :func:`sps_step_size`.

    Returns:
        ``(new_params, eta, eta_next)``.
    """
    eta, eta_next = sps_step_size(loss, grad_sq_norm(grads), eta_prev, c=c, f_star=f_star, gamma=gamma,
                                  n_batches=n_batches)
    return sgd_step(params, grads, eta), eta, eta_next


def validate_steps_per_epoch(steps_per_epoch) -> None:
    """``steps_per_epoch`` is None (full batch: 1) or an integer >= 1."""
    if steps_per_epoch is not None:
        v.positive_int("steps_per_epoch", steps_per_epoch)


class SharedStepSizeBase(torch.optim.Optimizer):
    """Plumbing shared by SLS and SPS: one step size η for the whole parameter vector.

    Both papers compute one scalar η from the one batch loss and the norm of the full gradient,
    so all parameter groups share η and the hyper-parameters: a group that sets a
    hyper-parameter (``lr`` included) to a value other than the optimizer's raises
    ``ValueError``. The shared η lives as a 0-d tensor under ``"eta"`` in ``self.state`` of the
    first parameter of the first group (created from ``lr`` at the first step, in that
    parameter's dtype). Parameters whose ``grad`` is ``None`` after the closure are left
    untouched and do not enter ``‖g‖²``. After ``step()``, ``group["lr"]`` is the η applied
    (a 0-d tensor); before the first step it is the initial ``lr``.
    """

    _name = "optimizer"

    def add_param_group(self, param_group: dict) -> None:
        for key, value in param_group.items():
            if key in self.defaults and value != self.defaults[key]:
                raise ValueError(f"invalid {key}: {value!r} ({self._name} uses one step size for all "
                                 "parameters, so per-group hyper-parameters are not supported)")
        super().add_param_group(param_group)

    def _hp(self) -> dict:
        return self.param_groups[0]

    def _n_batches(self) -> int:
        n = self._hp()["steps_per_epoch"]
        return 1 if n is None else n

    def _gather(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not params:
            raise ValueError(f"{self._name}: no parameter has a gradient after closure()")
        return params, [p.grad for p in params]

    def _shared(self) -> dict:
        p0 = self.param_groups[0]["params"][0]
        st = self.state[p0]
        if "eta" not in st:
            st["eta"] = torch.tensor(float(self._hp()["lr"]), dtype=p0.dtype, device=p0.device)
        return st

    def _set_lr(self, eta: torch.Tensor) -> None:
        for g in self.param_groups:
            g["lr"] = eta.detach().clone()

    def _loss(self, closure) -> torch.Tensor:
        if closure is None:
            raise ValueError(f"{self._name} needs the loss value: call step(closure)")
        with torch.enable_grad():
            return closure().detach()
