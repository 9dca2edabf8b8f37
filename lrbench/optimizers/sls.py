"""SLS: SGD with a stochastic Armijo line search (Vaswani et al., NeurIPS 2019)."""

from __future__ import annotations

from lrbench.optimizers import _validate as v
from lrbench.optimizers._core import Method
from lrbench.optimizers._polyak_armijo import SLS_FACTS, eta_state, sls_rule, validate_steps_per_epoch
from lrbench.registry import register_optimizer

__all__ = ["SLS"]


@register_optimizer("sls", adapts_lr=True)
class SLS(Method):
    """SGD + stochastic Armijo line search (Vaswani, Mishkin, Laradji, Schmidt, Gidel &
    Lacoste-Julien 2019, "Painless Stochastic Gradient: Interpolation, Line-Search, and
    Convergence Rates").

    One step on the current batch ``f_i`` (Algorithm 1, SGD+Armijo, with Algorithm 2's reset)::

        f = f_i(w), g = ∇f_i(w)                                    closure()
        η <- min(η_prev · γ^{b/n}, η_max)                           reset, Algorithm 2 option 2
        while f_i(w - η g) > f - c η ‖g‖²:  η <- β_b η              Armijo condition, eq. 1
        w <- w - η g                                                 Algorithm 1

    with ``b/n = 1 / steps_per_epoch``: the start may grow by at most a factor γ per epoch.
    The rule is :func:`~lrbench.optimizers._polyak_armijo.sls_rule`, run in place by ``step()``
    and out of place by ``functional()``. Each trial point ``w - η g`` is computed from a saved
    copy of ``w`` (the one parameter-sized buffer of the search), and so is the final point, so
    the probes leave no trace: the result is exactly ``w - η g`` for the accepted η. The
    backtracking loop, whose trip count depends on the data, goes through the oracle's
    ``search`` (in place: a Python loop with one host sync per trial; in ``functional()``: the
    vectorised runner's search, or an exact fallback that evaluates all
    ``max_backtracks + 1`` trials with a "done" mask).

    ``group["lr"]`` is the accepted η, the step size applied (0-d tensor; before the first step
    the initial ``lr``); it is also the ``η_prev`` of the next step's reset (state ``"eta"``,
    0-d, with the step count in the state of the first parameter with a gradient).

    Oracle cost per step: 1 forward + 1 backward (``closure()``) + k forward probes
    (``closure(grad=False)``), where k >= 1 is the number of trial steps evaluated
    (1 + the number of backtracks, at most ``max_backtracks + 1``), all on the current batch.

    Defaults: c = 0.1, β_b = 0.9, γ = 2 (the values of the paper's experiments, §7, and of the
    authors' code), initial η = 1 (``init_step_size=1`` of the authors' code), η_max = 10
    (lrbench's choice, see below: neither Algorithm 2 option 2 nor the authors' current code
    caps the reset; an early version of that code capped it at 10 and the cap was removed in
    2019), at most 100 backtracks (the authors' code tries 100 step sizes).

    Choices where the paper is ambiguous or silent:

    * First step: Algorithm 2 returns η_max at k = 1; like the authors' code we instead reset
      from the initial ``lr`` at every step, so the first start is ``min(lr · γ^{b/n}, η_max)``.
    * η_max: Algorithm 2 option 2 has no cap; option 1 resets to η_max. lrbench caps the reset
      at η_max = 10 by its own choice (pass a large ``eta_max`` for the uncapped rule): it keeps
      the start bounded when the Armijo condition holds at every start for many steps (e.g. a
      nearly linear loss), where ``γ^{t/n}`` would grow without limit.
    * When no trial among the ``max_backtracks + 1`` satisfies the condition (e.g. NaN losses,
      or a non-smooth loss), the smallest trial η is applied anyway and kept as ``η_prev``
      (the authors' code takes a fixed 1e-6 step there). The reset lets η grow back.
    * ``‖g‖ = 0``: no special case (the authors' code skips the search): the first trial is
      ``w`` itself, which satisfies the condition, so η = the start, one probe, no move.
    * The condition compares losses in the dtype of the parameters (that of η).
    * Several parameter groups: one line search over all parameters along the full gradient
      and one shared η (eq. 1 is over the whole w); per-group hyper-parameters are rejected.
    * Parameters whose ``grad`` is ``None`` are skipped (neither moved nor in ``‖g‖²``).
    * No momentum and no weight decay (not in the paper's SGD+Armijo; a regulariser belongs in
      the loss, where the line search sees it).

    Args:
        params: parameters or parameter groups (groups may not override hyper-parameters).
        lr: initial step size η_{-1} > 0 the first reset starts from (default 1).
        c: Armijo constant in (0, 1) (default 0.1).
        beta_b: backtracking factor β_b in (0, 1) (default 0.9).
        gamma: growth factor γ >= 1 of the reset per epoch (default 2).
        eta_max: cap η_max > 0 of the reset (default 10).
        max_backtracks: most step-size reductions per step, an integer >= 1 (default 100).
        steps_per_epoch: n/b, steps per epoch (the runner passes the problem's value); None
            means 1 (full batch: the start may double every step).
    """

    facts = SLS_FACTS
    scalars = staticmethod(eta_state)
    update = staticmethod(sls_rule)

    def __init__(self, params, lr: float = 1.0, c: float = 0.1, beta_b: float = 0.9, gamma: float = 2.0,
                 eta_max: float = 10.0, max_backtracks: int = 100, steps_per_epoch: int | None = None):
        v.positive("lr", lr)
        v.in_range("c", c, 0.0, 1.0, lo_open=True, hi_open=True)
        v.in_range("beta_b", beta_b, 0.0, 1.0, lo_open=True, hi_open=True)
        v.in_range("gamma", gamma, 1.0, float("inf"), hi_open=True)
        v.positive("eta_max", eta_max)
        v.positive_int("max_backtracks", max_backtracks)
        validate_steps_per_epoch(steps_per_epoch)
        super().__init__(params, lr=lr, c=c, beta_b=beta_b, gamma=gamma, eta_max=eta_max,
                         max_backtracks=max_backtracks, steps_per_epoch=steps_per_epoch)
