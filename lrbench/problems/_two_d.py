"""Shared machinery of the 2-D test functions (full-batch, deterministic objectives)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch

from lrbench.problems._base import Params, Problem, Task, tensor


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
    has_validation: ClassVar[bool] = True  # the objective itself (seed 001 runs HD/RTHO on it)

    @staticmethod
    def f(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise TypeError("subclasses define f")

    def build(self, seed: int, device: torch.device) -> Task:
        g = torch.Generator().manual_seed(seed)
        xy0 = torch.tensor(self.start, dtype=torch.float32) + self.spread * torch.randn(2, generator=g)
        model = _Point(xy0).to(device)
        f: Callable = self.f

        def loss(params: Params | None, _idx=None) -> torch.Tensor:
            xy = tensor(model, params, "xy")
            return f(xy[0], xy[1])

        def evaluate(params: Params | None) -> dict[str, torch.Tensor]:  # tensors: vmap-able (the runner takes floats)
            with torch.no_grad():
                xy = tensor(model, params, "xy")
                return {"train_loss": f(xy[0], xy[1]), "x": xy[0], "y": xy[1]}

        return Task(model=model, loss=loss, evaluate=evaluate, n_train=1, val_loss=loss)
