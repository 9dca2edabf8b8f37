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


class Hang(torch.optim.SGD):
    """Its third step never returns (a run the time limit must stop)."""

    def __init__(self, params, lr: float = 0.01):
        super().__init__(params, lr=lr)
        self.calls = 0

    def step(self, closure):
        self.calls += 1
        if self.calls >= 3:
            import time

            while True:
                time.sleep(1)
        return super().step(closure)


class KillsItsWorker(torch.optim.SGD):
    """Its process dies of SIGKILL at its third step, unless the file ``marker`` exists; it
    creates the file first, so the run succeeds when it is retried."""

    def __init__(self, params, lr: float = 0.01, marker: str = ""):
        super().__init__(params, lr=lr)
        self.calls, self.marker = 0, marker

    def step(self, closure):
        import os
        import signal
        from pathlib import Path

        self.calls += 1
        if self.calls == 3 and self.marker and not Path(self.marker).exists():
            Path(self.marker).write_text("killed once")
            os.kill(os.getpid(), signal.SIGKILL)
        return super().step(closure)


_HOARD: list = []


class Hog(torch.optim.SGD):
    """Keeps 64 MiB more of memory at every step (a run over its memory limit)."""

    def step(self, closure):
        _HOARD.append(torch.ones(16 * 2**20))
        return super().step(closure)
