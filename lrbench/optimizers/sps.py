"""SPS: SGD with the stochastic Polyak step size (Loizou et al., AISTATS 2021)."""

from __future__ import annotations

from lrbench.optimizers import _validate as v
from lrbench.optimizers._core import Method
from lrbench.optimizers._polyak_armijo import SPS_FACTS, eta_state, sps_rule, validate_steps_per_epoch
from lrbench.registry import register_optimizer

__all__ = ["SPS"]


@register_optimizer("sps", adapts_lr=True)
class SPS(Method):
    """SGD with the stochastic Polyak step size, SPS_max with smoothing (Loizou, Vaswani,
    Laradji & Lacoste-Julien 2021, "Stochastic Polyak Step-size for SGD: An Adaptive Learning
    Rate for Fast Convergence").

    One step on the current batch ``f_i``::

        f = f_i(w), g = ∇f_i(w)                                     closure()
        η_b = γ^{b/n} · η_{t-1}                                      smoothed bound (§6, from
                                                                     Vaswani et al. 2019)
        η = min((f - f_i*) / (c ‖g‖²), η_b)                          SPS_max (§3)
        w <- w - η g                                                 SGD

    with ``b/n = 1 / steps_per_epoch``. The rule is
    :func:`~lrbench.optimizers._polyak_armijo.sps_rule` (``torch.where`` instead of branches),
    run in place by ``step()`` and out of place by ``functional()``. ``group["lr"]`` is the η
    applied (0-d tensor); before the first step it is the initial ``lr``.

    Oracle cost per step: 1 forward + 1 backward (``closure()``); no probes.
    State: η_prev (``eta``, 0-d, in the parameters' dtype) and the step count in the state of
    the first parameter with a gradient; nothing per parameter.

    Defaults: ``c = 0.5``, ``f_star = 0`` (the paper's f_i* for non-negative losses that
    interpolate: "f_i* = 0" for the losses used in its experiments), ``γ = 2`` (the smoothing
    constant of the paper and of Vaswani et al. 2019), initial ``η_{-1} = lr = 1`` (the
    ``init_step_size=1`` of the authors' code).

    Choices where the paper is ambiguous or silent, and one deviation:

    * ``c = 0.5``, not the ``c = 0.2`` of the paper's deep-learning experiments: 0.5 is the
      value of its convergence theory for convex losses and the default of the authors' code.
      With ``c < 1/4`` SPS diverges on every quadratic unless the bound binds: in one
      dimension ``f/(c g²) = 1/(2ch)`` is a step larger than ``2/h``; on the benchmark's
      tiny quadratic (full batch, bound doubling every step) ``c = 0.2`` diverges. Pass
      ``c=0.2`` to reproduce the deep-learning setting.
    * The bound is the smoothed one only (no absolute η_max): η may grow by a factor γ per
      epoch as long as the Polyak ratio allows.
    * No ε in the denominator: the paper's rule is ``(f - f*) / (c‖g‖²)``; the authors' code
      divides by ``c‖g‖² + 1e-8`` instead, which changes η only where ‖g‖² is tiny. lrbench
      follows the paper and handles ``‖g‖² = 0`` explicitly (next point), so the two differ
      by a relative ``1e-8 / (c‖g‖²)`` elsewhere.
    * ``‖g‖² = 0``: η = η_b (no NaN/inf; the step ``w - η·0`` does not move, and η does not
      drop to 0, which would freeze the smoothed bound at 0 for ever). The authors' code sets
      η = 0 there.
    * ``f_i < f_i*`` (a wrong ``f_star`` or a loss that can be negative): the numerator is
      clamped at 0, so η = 0 and the parameters do not move; the next bound is computed from
      the previous η, not from this 0, for the same reason as above.
    * Several parameter groups: one η from the norm of the full gradient (the paper's
      ``‖∇f_i(x)‖`` is over the whole x); per-group hyper-parameters are rejected.
    * Parameters whose ``grad`` is ``None`` are skipped (neither moved nor in ``‖g‖²``).
    * The step size is computed in the dtype of the parameters.

    Args:
        params: parameters or parameter groups (groups may not override hyper-parameters).
        lr: initial η_{-1} > 0 from which the first bound is computed (default 1).
        c: Polyak constant c > 0 (default 0.5, see above).
        f_star: lower bound f_i* of every batch loss, a finite number (default 0).
        gamma: smoothing factor γ >= 1: the bound grows by at most γ per epoch (default 2).
        steps_per_epoch: n/b, steps per epoch (the runner passes the problem's value); None
            means 1 (full batch: the bound may double every step).
    """

    facts = SPS_FACTS
    scalars = staticmethod(eta_state)
    update = staticmethod(sps_rule)

    def __init__(self, params, lr: float = 1.0, c: float = 0.5, f_star: float = 0.0, gamma: float = 2.0,
                 steps_per_epoch: int | None = None):
        v.positive("lr", lr)
        v.positive("c", c)
        v.in_range("f_star", f_star, float("-inf"), float("inf"), lo_open=True, hi_open=True)
        v.in_range("gamma", gamma, 1.0, float("inf"), hi_open=True)
        validate_steps_per_epoch(steps_per_epoch)
        super().__init__(params, lr=lr, c=c, f_star=f_star, gamma=gamma, steps_per_epoch=steps_per_epoch)
