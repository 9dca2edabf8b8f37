"""WideResNet-16-4 on CIFAR-100 (seed 002 §5)."""

from __future__ import annotations

from typing import ClassVar

import torch

from lrbench.problems._classify import CIFAR_SMOKE
from lrbench.problems._cnn import wrn
from lrbench.problems.cifar10_wrn16_4 import Cifar10Wrn16x4
from lrbench.registry import register_problem


@register_problem("cifar100_wrn16_4")
class Cifar100Wrn16x4(Cifar10Wrn16x4):
    """WideResNet-16-4 on CIFAR-100, minibatches of 128 (seed 002 §5).

    Seed 002 §5 trains Wide-ResNets ("WRNET_16_4" in its figures) on CIFAR-10/100 with
    cross-entropy for 80 epochs (App. D), with batch sizes 64 to 512 (Figs. 1-3); we take
    128, one of Fig. 1's sizes and the WRN paper's. Its SGD-type optimizers use momentum 0.8
    and weight decay 5e-4 (App. D), which are optimizer settings there, so the loss has no
    L2 term and the reference carries them. Augmentation: the standard CIFAR crop and flip
    (the paper is silent; the WRN paper uses it). Network:
    :class:`lrbench.problems._cnn.WideResNet` (no dropout). Data and metrics:
    :class:`~lrbench.problems._classify.Classification`.

    Sizes: ``default`` 200 steps, evaluated every 50 on fixed 1,000-image subsets of the
    training and test splits; ``paper`` 80 epochs, evaluated every epoch, ``train_loss`` on
    a fixed 10,000-image training subset and the full test set; ``smoke`` a width-1/8
    network for 20 steps. Thresholds of ``default`` and ``paper`` are provisional (not yet
    calibrated on real CIFAR-100 runs). Reference: SGD with momentum 0.8, weight decay 5e-4 and
    lr 0.1 (seed 002's SGD setting).
    """

    dataset = "cifar100"
    thresholds = (4.0, 3.0, 2.0, 1.0)
    sizes: ClassVar[dict[str, dict]] = {
        **Cifar10Wrn16x4.sizes,
        "smoke": {**CIFAR_SMOKE, "width": 1 / 8, "thresholds": (4.55, 4.4)},
    }

    def make_model(self) -> torch.nn.Module:
        return wrn(16, 4, 100, width=self.width)
