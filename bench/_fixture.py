"""A benchmark fixture optimizer whose step can be slowed on purpose, to show the gate fails.

``fixture_sgd`` is ``torch.optim.SGD``; with ``LRBENCH_BENCH_SLOWDOWN=K`` in the environment each
step also multiplies a 512×512 matrix by itself K times (work that changes nothing), as a code
change that made a step slower would.
"""

from __future__ import annotations

import os

import torch


class FixtureSGD(torch.optim.SGD):
    """SGD, plus ``LRBENCH_BENCH_SLOWDOWN`` wasted matrix products per step."""

    def __init__(self, params, lr: float = 0.01):
        super().__init__(params, lr=lr)
        self.extra = int(os.environ.get("LRBENCH_BENCH_SLOWDOWN", "0"))
        self.waste = torch.ones(512, 512) / 512 if self.extra else None

    def step(self, closure):
        for _ in range(self.extra):
            self.waste = self.waste @ self.waste
        return super().step(closure)
