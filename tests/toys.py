"""Small self-contained objectives for optimizer tests (no runner, no data files)."""

from __future__ import annotations

import torch

from lrbench.closure import OracleCounter, make_closure


def quadratic(diag=(1.0, 0.5), x0=(1.0, -1.0), dtype=torch.float64):
    """f(x) = 0.5 * sum(d_i x_i^2): returns (param, closure, counter, hessian_diag).

    The validation loss (``closure(split="val")``) is the same quadratic.
    """
    d = torch.tensor(diag, dtype=dtype)
    x = torch.tensor(x0, dtype=dtype, requires_grad=True)
    counter = OracleCounter()
    f = lambda: 0.5 * (d * x * x).sum()  # noqa: E731
    closure = make_closure(f, [x], counter, compute_val_loss=f)
    return x, closure, counter, d


def beale(x0=(1.0, 1.0), dtype=torch.float64):
    """Beale's function (seed 001, footnote 5); minimum 0 at (3, 0.5)."""
    xy = torch.tensor(x0, dtype=dtype, requires_grad=True)

    def loss():
        x, y = xy[0], xy[1]
        return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2

    counter = OracleCounter()
    return xy, make_closure(loss, [xy], counter, compute_val_loss=loss), counter


def logreg(n=256, d=20, classes=3, seed=0, dtype=torch.float32):
    """Multinomial logistic regression on fixed synthetic data: (model, closure, counter).

    ``closure(split="val")`` uses a second, independent sample of the same distribution.
    """
    g = torch.Generator().manual_seed(seed)
    w_true = torch.randn(d, classes, generator=g, dtype=dtype)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    y = (x @ w_true).argmax(1)
    xv = torch.randn(n, d, generator=g, dtype=dtype)
    yv = (xv @ w_true).argmax(1)
    model = torch.nn.Linear(d, classes).to(dtype)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    counter = OracleCounter()
    ce = torch.nn.functional.cross_entropy
    closure = make_closure(lambda: ce(model(x), y), list(model.parameters()), counter,
                           compute_val_loss=lambda: ce(model(xv), yv))
    return model, closure, counter
