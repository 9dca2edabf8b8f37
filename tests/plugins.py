"""Optimizers that misbehave on purpose, loaded by ``module:Class`` keys in tests."""

from __future__ import annotations

import torch

from lrbench.problems import Problem, Task
from lrbench.spec import Budget, OptimizerSpec


class Exploding(torch.optim.SGD):
    """Raises inside step() after a few steps."""

    def __init__(self, params, lr: float = 0.01, fail_at: int = 3):
        super().__init__(params, lr=lr)
        self.calls = 0
        self.fail_at = fail_at

    def step(self, closure):
        self.calls += 1
        if self.calls >= self.fail_at:
            raise RuntimeError("boom in step")
        return super().step(closure)


class Quadratic(Problem):
    """f(w) = ½‖w − 1‖² in 4-D, full batch, from w = 0 (f = 2), the same for every seed.

    Gradient descent with step η multiplies w − 1 by (1 − η) per step, so after T steps
    f = 2(1 − η)^{2T}: η = 1 lands on the minimum in one step, η > 2 diverges. Tuning tests
    know the answer by hand.
    """

    registry_key = "plugins:Quadratic"
    vectorizable = True
    budget = Budget(steps=5, eval_every=5)
    thresholds = (1.0, 1e-3)
    reference = OptimizerSpec("sgd", {"lr": 0.5})

    def build(self, seed, device):
        model = torch.nn.Linear(4, 1, bias=False).to(device)
        torch.nn.init.zeros_(model.weight)

        def loss(_idx=None):
            return 0.5 * (model.weight - 1.0).pow(2).sum()

        def evaluate():
            with torch.no_grad():
                return {"train_loss": loss()}

        return Task(model=model, loss=loss, evaluate=evaluate, n_train=1)
