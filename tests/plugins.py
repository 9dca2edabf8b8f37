"""Optimizers and problems that misbehave on purpose, loaded by ``module:Class`` keys in tests."""

from __future__ import annotations

import torch

from lrbench.problems import Problem, Task, forward, tensor
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
    budget = Budget(steps=5, eval_every=5)
    thresholds = (1.0, 1e-3)
    reference = OptimizerSpec("sgd", {"lr": 0.5})

    def build(self, seed, device):
        model = torch.nn.Linear(4, 1, bias=False).to(device)
        torch.nn.init.zeros_(model.weight)

        def loss(params, _idx=None):
            return 0.5 * (tensor(model, params, "weight") - 1.0).pow(2).sum()

        def evaluate(params):
            with torch.no_grad():
                return {"train_loss": loss(params)}

        return Task(model=model, loss=loss, evaluate=evaluate, n_train=1)


class _Regression(Problem):
    """f(w) = mean over 16 fixed inputs x of (w·x − y)², a per-seed target y = x·t with t drawn
    from the seed, minibatches of 4; the subclasses below break what a batch of seeds needs,
    each in its own way (:mod:`lrbench.vectorized` must notice and run the seeds one by one)."""

    budget = Budget(steps=6, eval_every=3)
    thresholds = (1.0,)
    reference = OptimizerSpec("sgd", {"lr": 0.1})

    def parts(self, seed, device):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(16, 4, generator=torch.Generator().manual_seed(0)).to(device)
        model = torch.nn.Linear(4, 1, bias=False).to(device)
        target = (x @ torch.randn(4, generator=g)).to(device)
        return model, x, target

    def task(self, model, loss):
        def evaluate(params):
            with torch.no_grad():
                return {"train_loss": loss(params, None)}

        return Task(model=model, loss=loss, evaluate=evaluate, n_train=16, batch_size=4)


class SharedTarget(_Regression):
    """Keeps its per-seed target in the closure, not in the model: a batch would give every
    seed seed 0's target."""

    registry_key = "plugins:SharedTarget"

    def build(self, seed, device):
        model, x, target = self.parts(seed, device)

        def loss(params, idx):
            xb, yb = (x, target) if idx is None else (x[idx], target[idx])
            return (torch.func.functional_call(model, dict(params), (xb,)) if params is not None
                    else model(xb)).squeeze(1).sub(yb).pow(2).mean()

        return self.task(model, loss)


class OwnTensors(_Regression):
    """Ignores ``params``: it always computes with its model's own weights."""

    registry_key = "plugins:OwnTensors"

    def build(self, seed, device):
        model, x, target = self.parts(seed, device)
        model.register_buffer("target", target)

        def loss(params, idx):
            xb, yb = (x, model.target) if idx is None else (x[idx], model.target[idx])
            return model(xb).squeeze(1).sub(yb).pow(2).mean()

        return self.task(model, loss)


class Batched(_Regression):
    """The same problem done right: the target is a buffer, every tensor comes from ``params``."""

    registry_key = "plugins:Batched"

    def build(self, seed, device):
        model, x, target = self.parts(seed, device)
        model.register_buffer("target", target)

        def loss(params, idx):
            t = tensor(model, params, "target")
            xb, yb = (x, t) if idx is None else (x[idx], t[idx])
            return forward(model, params, xb).squeeze(1).sub(yb).pow(2).mean()

        return self.task(model, loss)


class Branches(Batched):
    """:class:`Batched` whose loss branches in Python on its value (``float()``), which ``vmap``
    cannot trace."""

    registry_key = "plugins:Branches"

    def build(self, seed, device):
        task = super().build(seed, device)
        plain = task.loss

        def loss(params, idx):
            out = plain(params, idx)
            return out if float(out) < 1e30 else out.clamp(max=1e30)

        return self.task(task.model, loss)


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
