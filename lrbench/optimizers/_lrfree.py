"""Shared shell of the learning-rate-free methods that come from their own PyPI packages
(the optional extra ``lrbench[lrfree]``).

Each wrapper subclasses the package's optimizer, so the package's update runs unchanged; the
wrapper only validates the hyper-parameters it exposes, and after each step records the step
size the method actually applied in ``group["effective_lr"]`` (the package's ``lr`` is a
multiplier of an adapted scale, not a step size, and rewriting it would change the method).
The runner logs ``effective_lr`` when a group has one. When the package is missing, the key
stays registered and listed, and building it raises a one-line error with the install hint.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from lrbench.optimizers._core import Facts, one_pass

INSTALL_HINT = "pip install 'lrbench[lrfree]'"


def base_class(module: str, name: str, key: str) -> type:
    """The package's optimizer class, or a stand-in whose constructor explains how to get it."""
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        pass

    package = module.split(".")[0]

    class Unavailable(torch.optim.Optimizer):
        available = False
        unavailable_reason = f"needs {package}: {INSTALL_HINT}"

        def __init__(self, params, **_: Any):
            raise ValueError(f"invalid optimizer: {key} needs the package {package!r} ({INSTALL_HINT})")

    return Unavailable


#: The wrapped packages' updates are their own in-place code (with host-side reads of their
#: estimates), so they run solo: writing a pure copy would no longer be the package's method.
SOLO = Facts(one_pass, vectorizable=False)


class DTimesLR:
    """Mixin for D-Adaptation-style methods: the applied step is d·lr, with d the estimate
    the step used (the packages update ``group["d"]`` at the end of ``step``)."""

    facts = SOLO

    def step(self, closure=None):
        d_used = [float(group["d"]) for group in self.param_groups]
        loss = super().step(closure)  # type: ignore[misc]
        for group, d in zip(self.param_groups, d_used):
            group["effective_lr"] = d * float(group["lr"])
        return loss


class ScheduledLR:
    """Mixin for Schedule-Free methods: the applied step is the warmed-up ``scheduled_lr``."""

    facts = SOLO

    def step(self, closure=None):
        loss = super().step(closure)  # type: ignore[misc]
        for group in self.param_groups:
            group["effective_lr"] = float(group["scheduled_lr"])
        return loss


__all__ = ["INSTALL_HINT", "SOLO", "base_class", "DTimesLR", "ScheduledLR"]
