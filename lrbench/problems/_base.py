"""The problem interface: what a problem declares and what it builds for one run."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch

from lrbench.spec import Budget, OptimizerSpec, ProblemSpec

__all__ = ["Problem", "Task"]


@dataclass
class Task:
    """One problem instance for one seed, on one device.

    Attributes:
        model: holds every trainable parameter.
        loss: training loss on a batch; takes a 1-D index tensor into the training set
            (on the device), or ``None`` for the full batch.
        evaluate: untimed evaluation at the current parameters: metric name -> float; it
            always includes ``train_loss`` (the full-training-set objective).
        n_train: size of the training set.
        batch_size: examples per step, or ``None`` for full-batch training.
        val_loss: loss on the validation batch (held-out training data), or ``None``.
    """

    model: torch.nn.Module
    loss: Callable[[torch.Tensor | None], torch.Tensor]
    evaluate: Callable[[], dict[str, float]]
    n_train: int
    batch_size: int | None = None
    val_loss: Callable[[], torch.Tensor] | None = None

    @property
    def steps_per_epoch(self) -> int:
        return 1 if self.batch_size is None else max(1, self.n_train // self.batch_size)


class Problem(abc.ABC):
    """Base class of registered problems.

    A subclass declares its budget, thresholds (on ``train_loss``, easy to hard), metrics
    (name -> ``"min"`` or ``"max"``), the metric a leaderboard headlines, and a reference
    optimizer that reaches the first threshold within the budget; it implements
    :meth:`build`. Options are keyword arguments of ``__init__``, validated there.
    """

    budget: ClassVar[Budget]
    thresholds: ClassVar[tuple[float, ...]]
    metrics: ClassVar[dict[str, str]] = {"train_loss": "min"}
    headline: ClassVar[str] = "train_loss"
    reference: ClassVar[OptimizerSpec]
    registry_key: ClassVar[str]

    def __init__(self, **options: Any) -> None:
        if options:
            raise TypeError(f"{type(self).__name__} takes no option {sorted(options)[0]!r}")
        self.options: dict[str, Any] = {}

    @property
    def spec(self) -> ProblemSpec:
        return ProblemSpec(self.registry_key, dict(self.options))

    @abc.abstractmethod
    def build(self, seed: int, device: torch.device) -> Task:
        """Create the model (initialised from ``seed``) and data on ``device``."""
