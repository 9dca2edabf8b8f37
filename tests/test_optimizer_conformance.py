"""Conformance tests over the whole optimizer registry: every key gets them for free."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

import lrbench
from lrbench.registry import optimizer_class, optimizer_keys
from toys import quadratic

KEYS = [pytest.param(k, marks=pytest.mark.skipif(
    not getattr(optimizer_class(k), "available", True),
    reason=f"{k}: {getattr(optimizer_class(k), 'unavailable_reason', '')}")) for k in optimizer_keys()]


def _numeric_kwargs(cls):
    sig = inspect.signature(cls.__init__)
    return [n for n, p in sig.parameters.items()
            if n not in ("self", "params") and isinstance(p.default, (int, float))
            and not isinstance(p.default, bool)]


def _run(opt, closure, steps):
    losses = []
    for _ in range(steps):
        losses.append(float(opt.step(closure)))
    return losses


@pytest.mark.parametrize("key", KEYS)
def test_reduces_tiny_quadratic(key):
    x, closure, _, _ = quadratic(diag=(1.0, 0.5), x0=(1.0, -1.0))
    opt = lrbench.make_optimizer(key, [x])
    f0 = float(closure(grad=False))
    _run(opt, closure, 100)
    f1 = float(closure(grad=False))
    assert math.isfinite(f1) and f1 < 0.9 * f0, (f0, f1)


@pytest.mark.parametrize("key", KEYS)
def test_state_dict_round_trip_mid_run(key):
    x, closure, _, _ = quadratic(diag=(1.0, 0.5), x0=(1.0, -1.0))
    opt = lrbench.make_optimizer(key, [x])
    _run(opt, closure, 7)
    saved_x = x.detach().clone()
    saved = opt.state_dict()
    # round-trip through serialisation, as a checkpoint would
    import io
    buf = io.BytesIO()
    torch.save(saved, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=False)
    ref = _run(opt, closure, 5)
    ref_x = x.detach().clone()

    y, closure2, _, _ = quadratic(diag=(1.0, 0.5), x0=tuple(saved_x.tolist()))
    opt2 = lrbench.make_optimizer(key, [y])
    opt2.load_state_dict(saved)
    again = _run(opt2, closure2, 5)
    assert again == ref
    assert torch.equal(y.detach(), ref_x)


@pytest.mark.parametrize("key", KEYS)
def test_rejects_invalid_hyperparameters(key):
    cls = optimizer_class(key)
    names = _numeric_kwargs(cls)
    assert names, f"{key} exposes no numeric hyper-parameter"
    for name in names:
        x = torch.zeros(2, requires_grad=True)
        with pytest.raises(ValueError, match=f"invalid {name}"):
            cls([x], **{name: float("nan")})


@pytest.mark.parametrize("key", KEYS)
def test_group_lr_is_a_finite_step_size(key):
    x, closure, _, _ = quadratic()
    opt = lrbench.make_optimizer(key, [x])
    _run(opt, closure, 3)
    for g in opt.param_groups:
        lr = float(g["lr"])
        assert math.isfinite(lr) and lr >= 0.0


@pytest.mark.parametrize("problem", ["beale", "mnist_logreg"])
@pytest.mark.parametrize("key", KEYS)
def test_runs_in_the_runner_and_logs_its_lr(key, problem):
    """Every optimizer, with its defaults, runs through the runner (closure protocol, oracle
    counting, ``steps_per_epoch`` injection, validation split) and its effective LR is logged."""
    from lrbench.runner import run_one
    from lrbench.spec import Budget, OptimizerSpec, ProblemSpec, RunConfig

    r = run_one(RunConfig("conformance", ProblemSpec(problem), OptimizerSpec(key, {}), 0, "cpu",
                          Budget(12, 4)))
    assert r.status in ("ok", "diverged"), r.message
    assert r.forward >= r.steps and r.backward >= r.steps and r.steps >= 4
    assert r.curves["step"][:2] == [0, 4]
    lrs = r.curves["lr_0"]
    assert len(lrs) == len(r.curves["step"]) and math.isfinite(lrs[0]) and lrs[0] >= 0
    # (L4 has no step size before its first step: 0.) A diverged run may log the LR that blew it up.
    if r.status == "ok":
        assert all(math.isfinite(v) and v >= 0 for v in lrs)
