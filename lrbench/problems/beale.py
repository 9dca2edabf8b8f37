"""Beale's function (seed 001, footnote 5 and Fig. 1)."""

from __future__ import annotations

from typing import ClassVar

from lrbench.problems._two_d import TwoD
from lrbench.registry import register_problem
from lrbench.spec import Budget, OptimizerSpec


@register_problem("beale")
class Beale(TwoD):
    """L(x, y) = (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)².

    Global minimum 0 at (3, 0.5); sharp ridges and wide plateaus. Seed 001 runs 500 steps of
    full-batch gradient descent from a fixed initial point that it does not state; we start
    from (1, 1) (L ≈ 14.2, on the plateau side of the valley) plus N(0, 0.1²) noise per seed.
    The "validation loss" is the objective itself (seed 001 sets E = L here). Sizes:
    ``default`` and ``paper`` run seed 001's 500 steps; ``smoke`` runs 50.
    """

    start = (1.0, 1.0)
    budget = Budget(steps=500, eval_every=1)
    thresholds = (1.0, 0.1, 1e-2, 1e-4)
    metrics: ClassVar[dict[str, str]] = {"train_loss": "min", "x": "none", "y": "none"}
    reference = OptimizerSpec("adam", {"lr": 0.05})
    sizes: ClassVar[dict[str, dict]] = {"smoke": {"budget": Budget(steps=50, eval_every=1)}}

    @staticmethod
    def f(x, y):
        return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2
