"""The problem interface: what a problem declares and what it builds for one run."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from lrbench.spec import Budget, OptimizerSpec, ProblemSpec

__all__ = ["SIZES", "Problem", "Task"]

SIZES = ("smoke", "default", "paper")
"""Problem sizes: ``smoke`` (seconds on a CPU, for tests), ``default`` (the suite's setting on a
CPU) and ``paper`` (the seed paper's setting, meant for a GPU)."""


@dataclass
class Task:
    """One problem instance for one seed, on one device.

    Attributes:
        model: holds every trainable parameter.
        loss: training loss on a batch; takes a 1-D index tensor into the training set
            (on the device), or ``None`` for the full batch.
        evaluate: untimed evaluation at the current parameters: metric name -> float or 0-d
            tensor (the runner takes floats); it always includes ``train_loss`` (the
            full-training-set objective). A problem that declares ``vectorizable = True``
            returns tensors and keeps every per-seed tensor in ``model`` (parameters or
            buffers), so that :mod:`lrbench.vectorized` can ``vmap`` its loss and evaluation
            over stacked seeds.
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

    Sizes: every problem takes the option ``size`` (one of :data:`SIZES`). The class
    attributes are the ``default`` size; ``sizes`` maps ``"smoke"`` and ``"paper"`` to the
    class attributes they override on the instance (``budget``, ``thresholds``, a data subset,
    a model width, even ``reference`` where a tiny smoke setting needs another step size), so
    ``problem.budget``, ``problem.thresholds`` and ``problem.reference`` are per instance.
    ``size="default"`` is left out of :attr:`options`, so run keys of default-size runs do
    not mention it; the other sizes are options, hence part of the run key.

    ``has_validation`` says whether its tasks supply a validation batch (``Task.val_loss``;
    the problem conformance tests check the two agree), so that a method whose objective is a
    validation loss is refused on a problem without one before anything runs.

    Flags: ``synthetic`` is true for an instance whose data is made up (random tensors of
    the right shapes, for code-path tests; a leaderboard must refuse such runs);
    ``needs_download`` is true for a class whose default data has to be fetched (it takes
    ``source="synthetic"`` for offline tests).
    """

    budget: Budget
    thresholds: tuple[float, ...]
    metrics: ClassVar[dict[str, str]] = {"train_loss": "min"}
    headline: ClassVar[str] = "train_loss"
    reference: OptimizerSpec
    registry_key: ClassVar[str]
    sizes: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    tune_criterion: ClassVar[tuple[str, str]] = ("final_train_loss", "min")
    """What the tuning protocol (:mod:`lrbench.tuning`) selects by: a ``load_runs`` column and
    ``"min"`` / ``"max"``; classification problems use a validation metric."""
    synthetic: bool = False
    needs_download: ClassVar[bool] = False
    has_validation: ClassVar[bool] = False
    #: a vectorisable problem's seeds run as one batch only from this many on (None: never by
    #: itself): below it the batched forward pass costs more per seed than one run alone
    #: (measured with ``bench/vectorized_seeds.py``; reports/timing.md, "Vectorised seeds")
    vectorize_min_seeds: ClassVar[int | None] = 2

    def __init__(self, size: str = "default", **options: Any) -> None:
        if options:
            raise TypeError(f"{type(self).__name__} takes no option {min(options)!r}")
        self._set_size(size)
        self.options: dict[str, Any] = self._size_option()

    def _set_size(self, size: str) -> None:
        """Validate ``size`` and apply its overrides (``sizes[size]``) to the instance."""
        if size not in SIZES:
            raise ValueError(f"invalid size: {size!r} (one of {', '.join(SIZES)})")
        self.size = size
        for name, value in self.sizes.get(size, {}).items():
            if not hasattr(type(self), name):
                raise AttributeError(f"{type(self).__name__}.sizes[{size!r}] sets unknown attribute {name!r}")
            setattr(self, name, value)

    def _size_option(self) -> dict[str, Any]:
        """``{"size": ...}`` unless the size is the default one (options form the run key)."""
        return {} if self.size == "default" else {"size": self.size}

    @property
    def spec(self) -> ProblemSpec:
        return ProblemSpec(self.registry_key, dict(self.options))

    def prepare(self) -> None:
        """Make sure the data this instance needs is at hand (read it, or fetch it when a source
        allows), before any run starts. Problems without a dataset need nothing.

        Raises:
            FileNotFoundError: the data is missing; the message says how to get it.
        """

    @abc.abstractmethod
    def build(self, seed: int, device: torch.device) -> Task:
        """Create the model (initialised from ``seed``) and data on ``device``."""
