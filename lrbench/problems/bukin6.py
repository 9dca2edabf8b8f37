"""A simplified, smoothed Bukin N. 6 (seed 001, footnote 5 and Fig. 1)."""

from __future__ import annotations

import math
from typing import ClassVar

from lrbench.problems._two_d import TwoD
from lrbench.registry import register_problem
from lrbench.spec import Budget, OptimizerSpec

EPS = 0.01
MINIMUM = math.sqrt(math.sqrt(EPS) + EPS)


@register_problem("bukin6")
class Bukin6(TwoD):
    """L(x, y) = √( ((y − 0.01x)² + ε)^½ + ε ), with ε = 0.01.

    Minimisers form the valley y = 0.01x, where L = √(√ε + ε) ≈ 0.3317. Seed 001 says only
    ε > 0; we take ε = 0.01, so the kink of |y − 0.01x| is smoothed over a band of width ~0.1.
    Start: (−10, 1) (the classical Bukin domain is x ∈ [−15, −5], y ∈ [−3, 3]) plus N(0, 0.1²)
    noise per seed. Thresholds are on L itself: the minimum value plus 1e-2, 1e-3, 1e-4, 1e-5.
    Sizes: ``default`` and ``paper`` run seed 001's 500 steps; ``smoke`` runs 50.
    """

    start = (-10.0, 1.0)
    budget = Budget(steps=500, eval_every=1)
    minimum = MINIMUM
    thresholds = tuple(round(MINIMUM + d, 6) for d in (1e-2, 1e-3, 1e-4, 1e-5))
    metrics: ClassVar[dict[str, str]] = {"train_loss": "min", "x": "none", "y": "none"}
    reference = OptimizerSpec("adam", {"lr": 0.05})
    sizes: ClassVar[dict[str, dict]] = {"smoke": {"budget": Budget(steps=50, eval_every=1)}}

    @staticmethod
    def f(x, y):
        return (((y - 0.01 * x) ** 2 + EPS) ** 0.5 + EPS) ** 0.5
