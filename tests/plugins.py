"""Optimizers that misbehave on purpose, loaded by ``module:Class`` keys in tests."""

from __future__ import annotations

import torch


class Exploding(torch.optim.SGD):
    """Raises inside step() after a few steps."""

    def __init__(self, params, lr: float = 0.01, fail_at: int = 3):
        super().__init__(params, lr=lr)
        self.calls = 0
        self.fail_at = fail_at

    def step(self, closure):
        self.calls += 1
        if self.calls >= self.fail_at:
            raise RuntimeError("boom in step")
        return super().step(closure)
