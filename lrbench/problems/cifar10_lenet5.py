"""LeNet-5 with dropout on CIFAR-10 (seed 000 §4.2.3)."""

from __future__ import annotations

from typing import ClassVar

import torch

from lrbench.problems._classify import CIFAR_SMOKE, Cifar
from lrbench.problems._cnn import lenet5
from lrbench.registry import register_problem
from lrbench.spec import Budget, OptimizerSpec


@register_problem("cifar10_lenet5")
class Cifar10Lenet5(Cifar):
    """LeNet-5 (dropout 0.5 after the first two FC layers) on CIFAR-10, minibatches of 32 (seed 000).

    Seed 000 §4.2.3: "a LeNet with 5 layers (2 convolutional followed by 3 fully-connected
    layers)", with "two dropout layers after the first two fully-connected layers" (rate not
    given: we take 0.5), batch size 32, plain SGD with lr 0.01 (its best basic rate); no data
    augmentation (§4.2: "we do not use any particular trick ... like data augmentation"), so
    ``augment`` is off. Its plots run for ~45 epochs. Architecture: see
    :func:`lrbench.problems._cnn.lenet5` (ReLU, max-pooling, 32×32 inputs unpadded). Data
    and metrics: :class:`~lrbench.problems._classify.Classification` (45,000 / 5,000 /
    10,000; ``train_loss`` on a fixed 10,000-image subset of the training split).

    Sizes: ``default`` 2,000 steps (~1.4 epochs), evaluated every 200; ``paper`` 45 epochs,
    evaluated every epoch; ``smoke`` 20 steps (see ``CIFAR_SMOKE``) with lr 0.1 as its
    reference (0.01 barely moves in 20 steps). Thresholds of
    ``default`` and ``paper`` are provisional: not yet calibrated on real CIFAR-10 runs.
    Reference: SGD with lr 0.01 (seed 000).
    """

    dataset = "cifar10"
    batch_size = 32
    max_eval = 10_000
    budget = Budget(steps=2000, eval_every=200)
    thresholds = (2.0, 1.7, 1.4, 1.0)
    reference = OptimizerSpec("sgd", {"lr": 0.01})
    sizes: ClassVar[dict[str, dict]] = {
        "smoke": {**CIFAR_SMOKE, "thresholds": (2.25, 2.1), "reference": OptimizerSpec("sgd", {"lr": 0.1})},
        "paper": {"epochs": 45},
    }

    def make_model(self) -> torch.nn.Module:
        return lenet5(3, 10, 32, dropout=0.5, width=self.width)
