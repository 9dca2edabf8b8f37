"""Shared machinery of the 2-D test functions (full-batch, deterministic objectives)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch

from lrbench.problems._base import Problem, Task


class _Point(torch.nn.Module):
    def __init__(self, xy: torch.Tensor) -> None:
        super().__init__()
        self.xy = torch.nn.Parameter(xy)


class TwoD(Problem):
    """A function of a point (x, y). The start is ``start`` plus N(0, spread²) noise
    drawn from the run's seed, so seeds differ but each seed is reproducible.

    Full batch, float32; the evaluation records ``x`` and ``y`` (the trajectory) besides
    ``train_loss``. Sizes change only the budget (and the thresholds where a subclass says so).
    The "validation loss" is the objective itself.
    """

    start: ClassVar[tuple[float, float]]
    spread: ClassVar[float] = 0.1
    vectorizable: ClassVar[bool] = True
    has_validation: ClassVar[bool] = True  # the objective itself (seed 001 runs HD/RTHO on it)

    @staticmethod
    def f(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise TypeError("subclasses define f")

    def build(self, seed: int, device: torch.device) -> Task:
        g = torch.Generator().manual_seed(seed)
        xy0 = torch.tensor(self.start, dtype=torch.float32) + self.spread * torch.randn(2, generator=g)
        model = _Point(xy0).to(device)
        f: Callable = self.f

        def loss(_idx=None) -> torch.Tensor:
            return f(model.xy[0], model.xy[1])

        def evaluate() -> dict[str, torch.Tensor]:  # tensors: vmap-able (the runner takes floats)
            with torch.no_grad():
                return {"train_loss": f(model.xy[0], model.xy[1]), "x": model.xy[0], "y": model.xy[1]}

        return Task(model=model, loss=loss, evaluate=evaluate, n_train=1, val_loss=loss)
