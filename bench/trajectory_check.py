"""Trajectory regression check between two versions of the optimizer code (issue 15, point 6).

``save`` runs every registered optimizer (several hyper-parameter variants each) in float64 on
three deterministic full-batch objectives and stores, per step, the flattened parameters and
the groups' ``lr``; it also stores the same runs started from a point perturbed by 1e-15
(relative), which measures how much each method amplifies rounding. ``compare`` re-runs the
current code and reports, per case, the largest relative distance from the saved trajectory
over the first 50 steps (target <= 1e-10) and over the later steps against the perturbed
run's distance (a rewrite may differ as much as a 1e-15 perturbation of the start would, times
100). A case whose 1e-15-perturbed run already leaves 1e-12 within the first 50 steps (a
method that is chaotic on that objective from the start) is held to 100 times that drift in
the first 50 steps too, and flagged ``chaotic``.

Run the old code from its own checkout (``LRBENCH_SRC``)::

    git worktree add /tmp/lrbench-old f3bec8e
    LRBENCH_SRC=/tmp/lrbench-old python bench/trajectory_check.py save /tmp/ref.pt
    python bench/trajectory_check.py compare /tmp/ref.pt [key,key,...]
"""

from __future__ import annotations

import os
import sys

if os.environ.get("LRBENCH_SRC"):  # run another checkout's code: put it before the editable install
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
    sys.path.insert(0, os.environ["LRBENCH_SRC"])

import torch

import lrbench
from lrbench.closure import make_closure
from lrbench.registry import optimizer_class, optimizer_keys

STEPS, EARLY = 200, 50

#: hyper-parameter variants beyond the defaults, per key
VARIANTS: dict[str, list[dict]] = {
    "sgd": [{"lr": 0.05}, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
            {"lr": 0.05, "momentum": 0.5, "dampening": 0.3}],
    "adam": [{"lr": 0.01, "weight_decay": 1e-3}],
    "sgd_hd": [{"lr": 0.01, "hypergrad_lr": 1e-3, "momentum": 0.9},
               {"lr": 0.01, "hypergrad_lr": 1e-3, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
               {"lr": 0.01, "hypergrad_lr": 1e-2, "clamp_lr": False, "momentum": 0.5, "dampening": 0.5}],
    "adam_hd": [{"hypergrad_lr": 1e-4}, {"hypergrad_lr": 1e-4, "weight_decay": 1e-3, "clamp_lr": False},
                {"hypergrad_lr": 0.0}],
    "l4_mom": [{"alpha": 0.1, "tau_m": 5.0}],
    "l4_adam": [{"alpha": 0.1, "tau_s": 100.0, "adam_eps": 1e-3}],
    "sps": [{"c": 0.7, "gamma": 1.5, "steps_per_epoch": 3}, {"f_star": -0.1}],
    "sls": [{"c": 0.3, "beta_b": 0.5, "steps_per_epoch": 4}],
    "lqa": [{"momentum": 0.5}, {"delta0": 0.1}],
    "fd_first_order": [{"alpha": 1e-2, "lr_momentum": 0.9}, {"validation": True, "alpha": 1e-2}],
    "fd_newton": [{"lr_momentum": 0.5}, {"rel_eps": 0.1}, {"validation": True}],
    "tlr": [{"steps_per_epoch": 6}, {"momentum": 0.0, "weight_decay": 0.0}],
    "tlr_pl": [{"steps_per_epoch": 6}],
    "tlr_naive": [{"steps_per_epoch": 6}, {"eta": 1e-2, "momentum": 0.0, "weight_decay": 0.0}],
    "marthe": [{"objective": "train"}, {"dynamics": "sgdm", "lr": 0.005}, {"dynamics": "adam", "lr": 1e-3},
               {"mu": 0.5, "adapt_beta": False, "beta": 1e-4}],
    "rtho": [{"objective": "train", "beta": 1e-5}, {"dynamics": "adam", "lr": 1e-3}],
}

#: keys whose groups must share hyper-parameters or that take one group: run with one group
ONE_GROUP = {"marthe", "rtho"}


def _objectives():
    """name -> builder(perturb) -> (list of parameter tensors per group, train loss, val loss)."""

    def beale(eps):
        xy = torch.tensor([1.0, 1.0], dtype=torch.float64) * (1 + eps)
        xy.requires_grad_()

        def f():
            x, y = xy[0], xy[1]
            return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2

        return [[xy]], f, f

    def net(eps):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(64, 6, generator=g, dtype=torch.float64)
        y = torch.randint(0, 3, (64,), generator=g)
        xv = torch.randn(64, 6, generator=g, dtype=torch.float64)
        yv = torch.randint(0, 3, (64,), generator=g)
        w1 = (0.5 * torch.randn(6, 5, generator=g, dtype=torch.float64) * (1 + eps)).requires_grad_()
        b1 = torch.zeros(5, dtype=torch.float64, requires_grad=True)
        w2 = (0.5 * torch.randn(5, 3, generator=g, dtype=torch.float64) * (1 + eps)).requires_grad_()
        b2 = torch.zeros(3, dtype=torch.float64, requires_grad=True)
        ce = torch.nn.functional.cross_entropy
        f = lambda: ce(torch.tanh(x @ w1 + b1) @ w2 + b2, y)  # noqa: E731
        fv = lambda: ce(torch.tanh(xv @ w1 + b1) @ w2 + b2, yv)  # noqa: E731
        return [[w1, b1], [w2, b2]], f, fv

    def quad(eps):
        d = torch.linspace(0.1, 2.0, 8, dtype=torch.float64)
        w = (torch.linspace(-1, 1, 8, dtype=torch.float64) * (1 + eps) + 0.3).requires_grad_()
        f = lambda: 0.5 * (d * w * w).sum() + 0.1 * w.sum()  # noqa: E731
        return [[w]], f, f

    return {"beale": beale, "net": net, "quad": quad}


def _run(key: str, hp: dict, build, eps: float) -> dict:
    groups, f, fv = build(eps)
    flat = [p for g in groups for p in g]
    if key in ONE_GROUP or len(groups) == 1:
        param_arg = flat
    else:
        param_arg = [{"params": g} for g in groups]
    opt = lrbench.make_optimizer(key, param_arg, **hp)
    closure = make_closure(f, flat, compute_val_loss=fv)
    xs, lrs = [], []
    for _ in range(STEPS):
        opt.step(closure)
        xs.append(torch.cat([p.detach().reshape(-1) for p in flat]).clone())
        lrs.append(torch.tensor([float(g["lr"]) for g in opt.param_groups], dtype=torch.float64))
    return {"x": torch.stack(xs), "lr": torch.stack(lrs)}


def cases():
    for key in optimizer_keys():
        cls = optimizer_class(key)
        if not getattr(cls, "available", True) or key in ("dog", "prodigy") or key.startswith(("dadapt", "sf_")):
            continue  # the wrapped packages are not lrbench's code
        for hp in [{}] + VARIANTS.get(key, []):
            for name, build in _objectives().items():
                yield f"{key}{hp}@{name}", key, hp, build


def save(path: str) -> None:
    out = {}
    for name, key, hp, build in cases():
        try:
            out[name] = {"clean": _run(key, hp, build, 0.0), "perturbed": _run(key, hp, build, 1e-15)}
        except Exception as exc:  # noqa: BLE001 - a variant the old code does not take
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    torch.save(out, path)
    print(f"saved {len(out)} cases from {lrbench.__file__}")


def _rel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-step relative distance ‖a − b‖∞ / ‖b‖∞ over the finite entries; a step where the two
    are not finite in the same places (a run diverged in one version only) counts inf."""
    fa, fb = torch.isfinite(a), torch.isfinite(b)
    same = ((fa == fb) & (fa | (a == b) | (a.isnan() & b.isnan()))).all(dim=1)  # equal where not finite
    a0, b0 = torch.where(fa & fb, a, 0.0), torch.where(fa & fb, b, 0.0)
    # max-norms: no squares, so trajectories near the float64 limit (a diverging Beale) do not overflow
    rel = (a0 - b0).abs().amax(dim=1) / b0.abs().amax(dim=1).clamp_min(1e-300)
    return torch.where(same, rel, torch.full_like(rel, float("inf")))


def compare(path: str, only: set[str] | None = None) -> int:
    ref = torch.load(path, weights_only=False)
    bad = 0
    print(f"{'case':70s} {'early':>9s} {'late':>9s} {'late(1e-15)':>11s}")
    for name, key, hp, build in cases():
        r = ref.get(name)
        if r is None or "error" in r or (only and key not in only):
            continue
        new = _run(key, hp, build, 0.0)
        early = max(_rel(new["x"][:EARLY], r["clean"]["x"][:EARLY]).max().item(),
                    _rel(new["lr"][:EARLY], r["clean"]["lr"][:EARLY]).max().item())
        late = _rel(new["x"][EARLY:], r["clean"]["x"][EARLY:]).max().item()
        pert = _rel(r["perturbed"]["x"][EARLY:], r["clean"]["x"][EARLY:]).max().item()
        pert_early = _rel(r["perturbed"]["x"][:EARLY], r["clean"]["x"][:EARLY]).max().item()
        # a case whose own 1e-15 perturbation moves the first 50 steps by more than 1e-10 is
        # chaotic from the start there: it is held to that drift instead ("chaotic" below)
        chaotic = pert_early > 1e-12
        ok = (early <= 1e-10 or (chaotic and early <= 100 * pert_early)) and late <= max(100 * pert, 1e-10)
        bad += not ok
        flag = "" if ok else "FAIL"
        if ok and early > 1e-10:
            flag = f"chaotic (1e-15 start: {pert_early:.1e} in 50 steps)"
        print(f"{name[:70]:70s} {early:9.1e} {late:9.1e} {pert:11.1e} {flag}")
    print(f"{bad} failing case(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "save":
        save(path)
    else:
        sys.exit(compare(path, set(sys.argv[3].split(",")) if len(sys.argv) > 3 else None))
