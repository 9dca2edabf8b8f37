"""CIFAR-10 / CIFAR-100 data (through torchvision, into the data cache) and the standard
CIFAR augmentation, done on the device."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from lrbench.problems._data import _split, data_root, fetch_dataset, synthetic_splits

CIFAR_SOURCES = ("torchvision", "synthetic")

# per-channel statistics of the training images (the usual published values)
_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}


@lru_cache(maxsize=2)
def _torchvision_cifar(name: str, root: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """uint8 images (N, 32, 32, 3) and int64 labels of the official train and test sets: read
    from ``root`` when there, else downloaded there (when online)."""
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR10 if name == "cifar10" else CIFAR100
    try:
        train, test = fetch_dataset(
            lambda download: (cls(root, train=True, download=download), cls(root, train=False, download=download)),
            root, (cls.base_folder,))
    except Exception as exc:  # noqa: BLE001 - offline, or a partial download
        raise FileNotFoundError(
            f"{name.upper()} is not in {root} and could not be downloaded ({type(exc).__name__}); "
            f"put torchvision's {cls.base_folder} folder there (or pass --data-dir), "
            "or use source='synthetic' for code-path tests") from None
    return (train.data, np.asarray(train.targets, dtype=np.int64),
            test.data, np.asarray(test.targets, dtype=np.int64))


def _normalise(images: np.ndarray, name: str) -> torch.Tensor:
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in _STATS[name])
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0) - mean) / std


def cifar_splits(name: str, source: str = "torchvision") -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """CIFAR-10 or CIFAR-100 (``name``) on the CPU, images (N, 3, 32, 32) normalised per channel.

    ``torchvision``: the official 10,000 test images, and the 50,000 training images split
    once and for all (generator seed 0, stratified by class) into 45,000 train / 5,000 val.
    ``synthetic``: made-up data of the same shapes (see
    :func:`lrbench.problems._data.synthetic_splits`).

    Raises:
        FileNotFoundError: the dataset is neither in the data cache nor downloadable.
    """
    if source == "synthetic":
        return dict(synthetic_splits((3, 32, 32), NUM_CLASSES[name]))
    return _real_splits(name, str(data_root()))


@lru_cache(maxsize=1)
def _real_splits(name: str, root: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The normalised splits, cached on the CPU (callers must not modify them)."""
    xtr, ytr, xte, yte = _torchvision_cifar(name, root)
    classes = NUM_CLASSES[name]
    idx = np.arange(len(ytr))
    parts = _split(idx, ytr, n_val=5000, n_test=0, device=torch.device("cpu"), classes=classes)
    out = {}
    for split in ("train", "val"):
        i = parts[split][0].numpy()
        out[split] = (_normalise(xtr[i], name), torch.from_numpy(ytr[i]))
    out["test"] = (_normalise(xte, name), torch.from_numpy(yte))
    return out


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop (padding 4) and random horizontal flip of a batch (N, C, H, W), on its device.

    Each image gets its own offsets in [0, 8]² and a fair coin for the flip, drawn from
    ``generator`` (which lives on ``x``'s device). The padding is zeros of the normalised
    images, i.e. the mean colour.
    """
    n, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n, 1), generator=generator, device=dev)
    dx = torch.randint(0, 9, (n, 1), generator=generator, device=dev)
    flip = torch.rand(n, 1, generator=generator, device=dev) < 0.5
    rows = dy + torch.arange(h, device=dev)
    cols = dx + torch.arange(w, device=dev)
    cols = torch.where(flip, cols.flip(1), cols)
    return padded[torch.arange(n, device=dev).view(n, 1, 1, 1), torch.arange(c, device=dev).view(1, c, 1, 1),
                  rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]
