"""ResNet-18 on CIFAR-100 (seed 001 §6)."""

from __future__ import annotations

from typing import ClassVar

import torch

from lrbench.problems._classify import CIFAR_DEFAULT_EVAL, CIFAR_SMOKE, Cifar
from lrbench.problems._cnn import resnet18
from lrbench.registry import register_problem
from lrbench.spec import Budget, OptimizerSpec


@register_problem("cifar100_resnet18")
class Cifar100Resnet18(Cifar):
    """CIFAR ResNet-18 on CIFAR-100, L2 5e-4 in the loss, minibatches of 128 (seed 001 §6).

    Seed 001 §6: ResNet-18 trained with Adam (initial lr 3e-4), batch size 128, 200 epochs,
    the loss being cross-entropy plus weight decay 5e-4 (so ``train_loss`` includes
    2.5e-4·‖θ‖² over every parameter; ``val_loss`` is the unregularised validation
    cross-entropy). Augmentation: the standard CIFAR crop and flip (the paper is silent; see
    ``cifar10_vgg11bn``). Network: :class:`lrbench.problems._cnn.ResNet18` (3×3 stem, no
    max-pool). Data and metrics: :class:`~lrbench.problems._classify.Classification`.

    Sizes: ``default`` 200 steps, evaluated every 50 on fixed 1,000-image subsets of the
    training and test splits; ``paper`` 200 epochs, evaluated every epoch, ``train_loss`` on
    a fixed 10,000-image training subset and the full test set; ``smoke`` a width-1/16 network
    for 20 steps, with Adam at lr 3e-3 as its reference (3e-4 barely moves in 20 steps). At
    initialisation the L2 term is ≈ 1.6, so the objective starts near ln 100 + 1.6 ≈ 6.2.
    Thresholds of ``default`` and ``paper`` are provisional (not yet calibrated
    on real CIFAR-100 runs). Reference: Adam with lr 3e-4 (seed 001).
    """

    dataset = "cifar100"
    batch_size = 128
    augment = True
    weight_decay = 5e-4
    max_eval = CIFAR_DEFAULT_EVAL["max_eval"]
    max_test = CIFAR_DEFAULT_EVAL["max_test"]
    budget = Budget(steps=200, eval_every=50)
    thresholds = (5.0, 4.0, 3.0, 2.0)
    reference = OptimizerSpec("adam", {"lr": 3e-4})
    sizes: ClassVar[dict[str, dict]] = {
        "smoke": {**CIFAR_SMOKE, "width": 1 / 16, "thresholds": (4.6, 4.4),
                  "reference": OptimizerSpec("adam", {"lr": 3e-3})},
        "paper": {"epochs": 200, "max_eval": 10_000, "max_test": None},
    }

    def make_model(self) -> torch.nn.Module:
        return resnet18(100, width=self.width)
