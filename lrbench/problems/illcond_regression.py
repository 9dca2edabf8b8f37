"""Badly conditioned linear regression as a two-layer linear network (seed 003, §3.1)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from lrbench.problems._base import Params, Problem, Task, forward, tensor
from lrbench.registry import register_problem
from lrbench.spec import Budget, OptimizerSpec

X_DIM, Y_DIM, N_SAMPLES = 6, 10, 1000


def make_matrix(kappa: float, generator: torch.Generator) -> torch.Tensor:
    """A 10×6 matrix with singular values log-spaced from 1 down to 1/κ (float64)."""
    u, _ = torch.linalg.qr(torch.randn(Y_DIM, X_DIM, generator=generator, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(X_DIM, X_DIM, generator=generator, dtype=torch.float64))
    s = torch.logspace(0.0, -math.log10(kappa), X_DIM, dtype=torch.float64)
    return u @ torch.diag(s) @ v.T


class _TwoLayerLinear(torch.nn.Module):
    def __init__(self, generator: torch.Generator) -> None:
        super().__init__()
        self.w1 = torch.nn.Parameter(torch.randn(Y_DIM, X_DIM, generator=generator) / math.sqrt(X_DIM))
        self.w2 = torch.nn.Parameter(torch.randn(X_DIM, X_DIM, generator=generator) / math.sqrt(X_DIM))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ (self.w1 @ self.w2).T


@register_problem("illcond_regression")
class IllcondRegression(Problem):
    """L(W1, W2) = mean over 1000 fixed samples x ~ N(0, I₆) of ‖W1 W2 x − A x‖².

    Seed 003 §3.1 (after B. Recht's code for A. Rahimi's NIPS 2017 example): W1 ∈ R^{10×6},
    W2 ∈ R^{6×6}, κ(A) = 1e10, full batch, a realizable problem with optimum 0. Choices the
    paper leaves open: A = U diag(σ) Vᵀ with random orthonormal U, V and σ log-spaced from 1
    to 1/κ, drawn from the run's seed (the paper draws a new A per run); the 1000 samples
    are fixed across seeds (generator seed 0), as in the paper; W1, W2 ~ N(0, 1/6)
    (fan-in scaling). A is built in float64; training runs in float32.

    Sizes: ``default`` runs 1,000 steps; ``smoke`` 100; ``paper`` 30,000 (the iteration axis
    of seed 003's Fig. 2), evaluated every 100 steps.

    Args:
        kappa: condition number of A (default 1e10).
        size: ``"smoke"``, ``"default"`` or ``"paper"``.
    """

    budget = Budget(steps=1000, eval_every=10)
    thresholds = (1e-1, 1e-3, 1e-5, 1e-7)
    reference = OptimizerSpec("adam", {"lr": 0.01})
    sizes: ClassVar[dict[str, dict]] = {"smoke": {"budget": Budget(steps=100, eval_every=10)},
             "paper": {"budget": Budget(steps=30_000, eval_every=100)}}

    def __init__(self, kappa: float = 1e10, size: str = "default") -> None:
        if isinstance(kappa, bool) or not isinstance(kappa, (int, float)) or not (kappa >= 1.0) or math.isinf(kappa):
            raise ValueError(f"invalid kappa: {kappa!r} (must be a number >= 1)")
        self._set_size(size)
        self.options = self._size_option() | ({} if kappa == 1e10 else {"kappa": float(kappa)})
        self.kappa = float(kappa)

    def build(self, seed: int, device: torch.device) -> Task:
        x = torch.randn(N_SAMPLES, X_DIM, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        g = torch.Generator().manual_seed(seed)
        a = make_matrix(self.kappa, g)
        y = (x @ a.T).float().to(device)
        x = x.float().to(device)
        model = _TwoLayerLinear(g).to(device)
        model.register_buffer("target", y)  # per-seed data lives in the model (see Task)

        def loss(params: Params | None, idx=None) -> torch.Tensor:
            yy = tensor(model, params, "target")
            xb, yb = (x, yy) if idx is None else (x[idx], yy[idx])
            return (forward(model, params, xb) - yb).pow(2).sum(1).mean()

        def evaluate(params: Params | None) -> dict[str, torch.Tensor]:
            with torch.no_grad():
                return {"train_loss": loss(params)}

        return Task(model=model, loss=loss, evaluate=evaluate, n_train=N_SAMPLES)
