"""The problem interface: what a problem declares and what it builds for one run."""

from __future__ import annotations

import abc
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch.func import functional_call

from lrbench.spec import Budget, OptimizerSpec, ProblemSpec

__all__ = ["SIZES", "Params", "Problem", "Task", "forward", "tensor"]

SIZES = ("smoke", "default", "paper")
"""Problem sizes: ``smoke`` (seconds on a CPU, for tests), ``default`` (the suite's setting on a
CPU) and ``paper`` (the seed paper's setting, meant for a GPU)."""


Params = Mapping[str, torch.Tensor]
"""Tensors that stand in for a task model's own: its parameters and buffers by name (as
``torch.func.functional_call`` takes them), e.g. one seed's slice of stacked seeds under ``vmap``."""


@dataclass
class Task:
    """One problem instance for one seed, on one device.

    The loss and the evaluation are functions of explicit tensors (as AlgoPerf's
    ``model_fn(params, ...)``): each takes ``params``, a :data:`Params` mapping of the model's
    parameter and buffer names to the tensors to compute with, or ``None`` for the model's own
    (the single-run path, which computes exactly what the model itself would). So
    :mod:`lrbench.vectorized` runs stacked seeds by ``vmap`` over ``params``, without a wrapper;
    every per-seed tensor must therefore be a parameter or buffer of ``model`` (what a closure
    captures is shared by all seeds). Whether a task can be vectorised is checked there, by
    comparing the batched loss, gradients and evaluation with each seed's own; nothing is declared.

    Attributes:
        model: holds every trainable parameter (and any per-seed buffer).
        loss: ``loss(params, idx)``, the training loss on a batch; ``idx`` is a 1-D index tensor
            into the training set (on the device), or ``None`` for the full batch.
        evaluate: ``evaluate(params)``, untimed evaluation: metric name -> float or 0-d tensor
            (the runner takes floats; tensors can be ``vmap``-ed); it always includes
            ``train_loss`` (the full-training-set objective).
        n_train: size of the training set.
        batch_size: examples per step, or ``None`` for full-batch training.
        val_loss: ``val_loss(params)``, the loss on the validation batch (held-out training
            data), or ``None``.
    """

    model: torch.nn.Module
    loss: Callable[[Params | None, torch.Tensor | None], torch.Tensor]
    evaluate: Callable[[Params | None], dict[str, float | torch.Tensor]]
    n_train: int
    batch_size: int | None = None
    val_loss: Callable[[Params | None], torch.Tensor] | None = None

    @property
    def steps_per_epoch(self) -> int:
        return 1 if self.batch_size is None else max(1, self.n_train // self.batch_size)


def forward(model: torch.nn.Module, params: Params | None, *args: Any) -> Any:
    """``model(*args)``, with ``params`` in place of the model's own tensors unless it is None."""
    return model(*args) if params is None else functional_call(model, dict(params), args)


def tensor(model: torch.nn.Module, params: Params | None, name: str) -> torch.Tensor:
    """The model's parameter or buffer ``name`` (dotted), or its stand-in in ``params``."""
    return operator.attrgetter(name)(model) if params is None else params[name]


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
    #: a problem's seeds are tried as one batch only from this many on (None: never): below it the
    #: batched forward pass costs more per seed than one run alone (measured with
    #: ``bench/vectorized_seeds.py``; reports/timing.md, "Vectorised seeds"). A speed policy, not
    #: a promise: whether the batch reproduces each seed is checked when it starts
    #: (:mod:`lrbench.vectorized`), and it runs seed by seed when it does not
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
