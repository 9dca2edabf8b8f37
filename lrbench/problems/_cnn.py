"""Convolutional networks shared by the image problems: LeNet-5, VGG-11 with BatchNorm, the
CIFAR ResNet-18 and WideResNet-16-4.

Every builder takes ``width``, a multiplier of the channel counts (1 = the published
network; smoke sizes use a narrower one). Parameters get PyTorch's default initialisation,
drawn from the global generator (problems seed it). Dropout is :class:`Dropout`, whose masks
come from a generator the problem sets, so that repeated passes over one batch (a line
search, finite-difference probes) see the same masks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Dropout", "lenet5", "resnet18", "vgg11_bn", "wrn"]


def _ch(c: int, width: float) -> int:
    return max(1, round(c * width))


class Dropout(nn.Module):
    """Inverted dropout with masks drawn from ``self.generator`` (the global one while it is
    ``None``)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape, generator=self.generator, device=x.device, dtype=x.dtype) >= self.p
        return x * keep / (1.0 - self.p)


def lenet5(in_channels: int = 1, num_classes: int = 10, image_size: int = 28, dropout: float = 0.0,
           width: float = 1.0) -> nn.Sequential:
    """LeNet-5 in its usual modern form: conv 5×5 (6) → ReLU → max-pool 2 → conv 5×5 (16) → ReLU →
    max-pool 2 → FC 120 → ReLU → FC 84 → ReLU → FC ``num_classes``. 28×28 inputs (MNIST) are
    zero-padded by 2, as in LeCun et al. (1998), which used 32×32 frames; 32×32 inputs (CIFAR)
    are not. With ``dropout > 0`` a :class:`Dropout` follows each of the first two FC layers
    (seed 000 §4.2.3). Flat inputs (N, 784) are reshaped to (N, 1, 28, 28)."""
    c1, c2, f1, f2 = _ch(6, width), _ch(16, width), _ch(120, width), _ch(84, width)
    layers: list[nn.Module] = []
    if in_channels == 1 and image_size == 28:
        layers.append(nn.Unflatten(1, (1, 28, 28)))
    layers += [nn.Conv2d(in_channels, c1, 5, padding=2 if image_size == 28 else 0), nn.ReLU(), nn.MaxPool2d(2),
               nn.Conv2d(c1, c2, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
               nn.Linear(c2 * 25, f1), nn.ReLU()]
    if dropout:
        layers.append(Dropout(dropout))
    layers += [nn.Linear(f1, f2), nn.ReLU()]
    if dropout:
        layers.append(Dropout(dropout))
    layers.append(nn.Linear(f2, num_classes))
    return nn.Sequential(*layers)


def vgg11_bn(num_classes: int = 10, width: float = 1.0) -> nn.Sequential:
    """VGG-11 (configuration A of Simonyan & Zisserman, 2014) with BatchNorm after every
    convolution, in its CIFAR form: eight 3×3 convolutions (64, M, 128, M, 256, 256, M, 512,
    512, M, 512, 512, M; M = max-pool 2) take 32×32 inputs to 512×1×1, followed by one linear
    classifier (the three 4096-wide FC layers of the ImageNet model are dropped). ~9.2M
    parameters for 10 classes."""
    cfg = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
    layers: list[nn.Module] = []
    c_in = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            c = _ch(v, width)
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            c_in = c
    layers += [nn.Flatten(), nn.Linear(c_in, num_classes)]
    return nn.Sequential(*layers)


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 (He et al., 2016) for 32×32 inputs: a 3×3 stride-1 stem (64 channels) with no
    max-pool, four stages of two basic blocks (64, 128, 256, 512 channels; stride 2 from the
    second stage on; 1×1 projection shortcuts where the shape changes), global average
    pooling and a linear classifier. ~11.17M parameters for 10 classes, ~11.22M for 100."""

    def __init__(self, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        c = [_ch(v, width) for v in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(3, c[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c[0])
        blocks, c_in = [], c[0]
        for i, c_out in enumerate(c):
            for j in range(2):
                blocks.append(_BasicBlock(c_in, c_out, 2 if (i > 0 and j == 0) else 1))
                c_in = c_out
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def resnet18(num_classes: int = 10, width: float = 1.0) -> ResNet18:
    """See :class:`ResNet18`."""
    return ResNet18(num_classes, width)


class _WideBlock(nn.Module):
    """Pre-activation block of a WideResNet: BN-ReLU-conv3×3-BN-ReLU-(dropout)-conv3×3, with a
    1×1 projection of the pre-activated input where the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.drop = Dropout(dropout) if dropout else nn.Identity()
        self.proj = None if (c_in == c_out and stride == 1) else nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        out = self.conv2(self.drop(F.relu(self.bn2(self.conv1(a)))))
        return out + (x if self.proj is None else self.proj(a))


class WideResNet(nn.Module):
    """WideResNet-d-k (Zagoruyko & Komodakis, 2016) for 32×32 inputs: a 3×3 convolution to 16
    channels, three groups of (d − 4) / 6 pre-activation blocks of 16k, 32k, 64k channels
    (stride 1, 2, 2), BN-ReLU, global average pooling, a linear classifier. WRN-16-4 has
    ~2.75M parameters for 10 classes."""

    def __init__(self, depth: int = 16, widen: int = 4, num_classes: int = 10, dropout: float = 0.0,
                 width: float = 1.0) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"invalid depth: {depth} (must be 6n + 4)")
        n = (depth - 4) // 6
        c = [_ch(16, width)] + [_ch(v * widen, width) for v in (16, 32, 64)]
        self.conv1 = nn.Conv2d(3, c[0], 3, 1, 1, bias=False)
        blocks, c_in = [], c[0]
        for g, c_out in enumerate(c[1:]):
            for j in range(n):
                blocks.append(_WideBlock(c_in, c_out, 2 if (g > 0 and j == 0) else 1, dropout))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c_in)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.blocks(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def wrn(depth: int = 16, widen: int = 4, num_classes: int = 10, width: float = 1.0) -> WideResNet:
    """See :class:`WideResNet` (no dropout, the WRN paper's default)."""
    return WideResNet(depth, widen, num_classes, 0.0, width)
