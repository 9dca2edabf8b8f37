"""The Rosenbrock function (a classical 2-D test function; not from a seed paper)."""

from __future__ import annotations

from typing import ClassVar

from lrbench.problems._two_d import TwoD
from lrbench.registry import register_problem
from lrbench.spec import Budget, OptimizerSpec


@register_problem("rosenbrock")
class Rosenbrock(TwoD):
    """L(x, y) = (1 − x)² + 100 (y − x²)².

    Global minimum 0 at (1, 1), at the end of a long, curved, flat-bottomed valley. Start:
    the classical (−1.5, 2) (L = 12.5, on the far side of the valley from the minimum) plus
    N(0, 0.1²) noise per seed. Full batch. Sizes: ``smoke`` runs 200 steps, ``default`` and
    ``paper`` 1,000 (no seed paper uses this function, so ``paper`` equals ``default``).
    Reference: heavy-ball momentum 0.9 with lr 1e-3, which reaches every threshold within
    1,000 steps on seeds 0–4 (Adam with lr 0.05 needs up to ~700 steps for the first one).
    """

    start = (-1.5, 2.0)
    budget = Budget(steps=1000, eval_every=1)
    thresholds = (1.0, 0.1, 1e-2, 1e-4)
    metrics: ClassVar[dict[str, str]] = {"train_loss": "min", "x": "none", "y": "none"}
    reference = OptimizerSpec("momentum", {"lr": 1e-3})
    sizes: ClassVar[dict[str, dict]] = {"smoke": {"budget": Budget(steps=200, eval_every=1)}}

    @staticmethod
    def f(x, y):
        return (1 - x) ** 2 + 100 * (y - x**2) ** 2
