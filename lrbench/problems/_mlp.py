"""The multilayer perceptron shared by the MNIST MLP problems."""

from __future__ import annotations

import itertools
from typing import ClassVar

import torch

from lrbench.problems._classify import Classification

__all__ = ["MnistMLP", "mlp"]


def mlp(in_features: int, hidden: tuple[int, ...], out_features: int) -> torch.nn.Sequential:
    """Fully connected layers ``in → hidden[0] → … → out`` with ReLU between them (none after
    the last: it gives logits). PyTorch's default initialisation (uniform, fan-in scaled),
    drawn from the global generator (problems seed it)."""
    layers: list[torch.nn.Module] = []
    sizes = (in_features, *hidden)
    for a, b in itertools.pairwise(sizes):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(sizes[-1], out_features))
    return torch.nn.Sequential(*layers)


class MnistMLP(Classification):
    """An MLP ``784 → hidden → 10`` (ReLU) on MNIST; see :class:`Classification` for the data,
    objective, metrics and sizes. ``width`` scales the hidden layers. Its seeds could run as one
    batch (no dropout, batch norm or augmentation), but never do by default: at the sizes
    measured, a batch costs more per seed than a run alone."""

    dataset = "mnist"
    hidden: tuple[int, ...]
    vectorize_min_seeds: ClassVar[int | None] = None  # 20 seeds of the smallest: 22 s batched, 20 s alone

    def make_model(self) -> torch.nn.Module:
        return mlp(784, tuple(max(1, round(h * self.width)) for h in self.hidden), 10)
