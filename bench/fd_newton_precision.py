"""How precise is fd_newton's finite-difference Newton step in float32?  (seed 000, eq. 10)

Run:  PYTHONPATH=. python bench/fd_newton_precision.py   (CPU, a few seconds)

For each setting, one FDNewton step is taken from 20 random points of two float32 problems, and
the learned η(1) is compared with the exact Newton target along the same gradient,
η_N = η − f'(η)/f''(η) with f(s) = L(w − s g), computed in float64 by automatic differentiation
(for the quadratic this is the line-minimising step gᵀg / gᵀHg). Printed: the median and the
90th percentile of |η(1) − η_N| / η_N, and how often η(1) was clamped to δ. Then 100 steps of
training on the logistic regression (5 seeds) show the effect on the loss (computed in float64
at the final weights), the applied learning rates, and the fraction of steps spent at η = δ.
"""

from __future__ import annotations

import statistics

import torch

from lrbench.closure import make_closure
from lrbench.optimizers.fd_newton import FDNewton

# "combine64": the float32 losses are converted to float64 before the finite differences;
# "forward64": the loss itself is computed in float64 from the float32 weights;
# "no floor": ε(k) = rel_eps·η(k) instead of rel_eps·max(η(k), η(0)).
SETTINGS = {
    "paper, float64": dict(dtype=torch.float64),
    "paper, float32": dict(),
    "float32, combine64": dict(combine64=True),
    "float32, forward64": dict(forward64=True),
    "float32, eps=1e-3": dict(eps=1e-3),
    "float32, rel_eps=0.01": dict(rel_eps=0.01),
    "float32, rel_eps=0.1": dict(rel_eps=0.1),
    "float32, rel_eps=0.1, no floor": dict(rel_eps=0.1, no_floor=True),
}


def quadratic_problem(seed: int, dim: int = 50):
    """f(w) = ½ wᵀHw, eigenvalues log-spaced in [0.1, 10]; returns (w0, loss(w_list))."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    h = q @ torch.diag(torch.logspace(-1, 1, dim, dtype=torch.float64)) @ q.T
    w0 = torch.randn(dim, generator=g, dtype=torch.float64)
    return [w0], lambda ws: 0.5 * ws[0] @ h.to(ws[0].dtype) @ ws[0]


def logreg_problem(seed: int, n: int = 512, d: int = 20, classes: int = 5):
    """Multinomial logistic regression on synthetic data; returns (w0, loss(w_list))."""
    g = torch.Generator().manual_seed(seed)
    w_true = torch.randn(d, classes, generator=g, dtype=torch.float64)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = (x @ w_true + torch.randn(n, classes, generator=g, dtype=torch.float64)).argmax(1)
    w0 = [0.3 * torch.randn(d, classes, generator=g, dtype=torch.float64),
          0.1 * torch.randn(classes, generator=g, dtype=torch.float64)]

    def loss(ws):
        return torch.nn.functional.cross_entropy(x.to(ws[0].dtype) @ ws[0] + ws[1], y)

    return w0, loss


def make(w0, loss, settings: dict, eta0: float):
    """(params, closure, optimizer) for one setting."""
    kw = dict(settings)
    dtype, combine64, forward64 = (kw.pop("dtype", torch.float32), kw.pop("combine64", False),
                                   kw.pop("forward64", False))
    kw.pop("no_floor", None)  # handled in training()
    params = [w.to(dtype).clone().requires_grad_(True) for w in w0]
    closure = make_closure(lambda: loss([p.double() for p in params] if forward64 else params), params)
    if combine64:
        closure32 = closure
        closure = lambda *a, **k: closure32(*a, **k).double()  # noqa: E731
    return params, closure, FDNewton(params, lr=eta0, **kw)


def newton_target(loss, w, g, eta: float) -> float:
    """η − f'(η)/f''(η) for f(s) = loss(w − s g), exactly, in float64."""
    s = torch.tensor(eta, dtype=torch.float64, requires_grad=True)
    phi = loss([wi - s * gi for wi, gi in zip(w, g)])
    (d1,) = torch.autograd.grad(phi, s, create_graph=True)
    (d2,) = torch.autograd.grad(d1, s)
    return eta - float(d1.detach()) / float(d2)


def one_step_errors(problem, eta0: float, settings: dict, seeds=range(20)):
    errs, clamped = [], 0
    for seed in seeds:
        w0, loss = problem(seed)
        params, closure, opt = make(w0, loss, settings, eta0)
        start = [p.detach().double().clone() for p in params]
        opt.step(closure)
        target = newton_target(loss, start, [p.grad.double() for p in params], eta0)
        eta1 = float(opt.state[params[0]]["lr"])
        clamped += eta1 == opt.defaults["delta"]
        errs.append(abs(eta1 - target) / abs(target))
    errs.sort()
    return statistics.median(errs), errs[int(0.9 * len(errs)) - 1], clamped, len(errs)


def training(settings: dict, seed: int, steps: int = 100, eta0: float = 0.1):
    """(loss after `steps` steps, median applied lr, fraction of steps applied at lr = δ)."""
    w0, loss = logreg_problem(seed)
    params, closure, opt = make(w0, loss, settings, eta0)
    etas = []
    for _ in range(steps):
        opt.step(closure)
        if settings.get("no_floor"):  # after step 1, whose ε is rel_eps·η(0) either way
            opt.state[params[0]]["lr0"] = torch.full_like(opt.state[params[0]]["lr0"], opt.defaults["delta"])
        etas.append(float(opt.param_groups[0]["lr"]))
    at_delta = sum(e <= opt.defaults["delta"] * 1.01 for e in etas) / steps
    return float(loss([p.detach().double() for p in params])), statistics.median(etas), at_delta


def main():
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, float32 ulp at 1.0 = {torch.finfo(torch.float32).eps:.2e}")
    for name, problem, eta0 in [("quadratic dim 50, eta0=0.01", quadratic_problem, 0.01),
                                ("logreg 512x20x5, eta0=0.1", logreg_problem, 0.1)]:
        print(f"\none FDNewton step, |eta1 - eta_Newton| / eta_Newton over 20 points: {name}")
        print(f"  {'setting':32s} {'median':>10s} {'p90':>10s} {'clamped':>8s}")
        for setting, kw in SETTINGS.items():
            med, p90, clamped, n = one_step_errors(problem, eta0, kw)
            print(f"  {setting:32s} {med:10.2e} {p90:10.2e} {clamped:5d}/{n}")
    seeds = range(5)
    f0 = [float(loss(w0)) for w0, loss in map(logreg_problem, seeds)]
    print(f"\n100 FDNewton steps on logreg 512x20x5 (full batch), eta0=0.1, seeds {list(seeds)}, "
          f"initial losses {' '.join(f'{f:.3f}' for f in f0)}")
    print(f"  {'setting':32s} | {'loss after 100 steps':^34s} | {'median applied lr':^44s} | "
          f"{'fraction of steps at lr = delta':^29s}")
    for setting, kw in SETTINGS.items():
        runs = [training(kw, s) for s in seeds]
        print(f"  {setting:32s} | {' '.join(f'{r[0]:6.3f}' for r in runs)} | "
              f"{' '.join(f'{r[1]:8.2g}' for r in runs)} | {' '.join(f'{r[2]:5.2f}' for r in runs)}")


if __name__ == "__main__":
    main()
