"""Schedules against values computed by hand, their optimizers, and runner composition."""

from __future__ import annotations

import math

import pytest
import torch

from lrbench.core import build_optimizer
from lrbench.runner import run_one
from lrbench.schedules import exponential, multistep, resolve, sgdr, staircase
from lrbench.spec import Budget, OptimizerSpec, ProblemSpec, RunConfig
from toys import quadratic


def _sgdr_at_epoch(e, spe=4, **kw):
    return sgdr(round(e * spe), steps_per_epoch=spe, total_steps=0, **kw)


def test_sgdr_restarts_at_10_30_70_and_cosine_in_between():
    # T_0 = 10, T_mult = 2: cycles [0, 10), [10, 30), [30, 70), [70, 150)
    for e in (0, 10, 30, 70):
        assert _sgdr_at_epoch(e) == 1.0
    for e, t_i in ((9.75, 10), (29.75, 20), (69.75, 40)):  # the last step before each restart
        assert _sgdr_at_epoch(e) == pytest.approx((1 + math.cos(math.pi * (t_i - 0.25) / t_i)) / 2)
    assert _sgdr_at_epoch(5) == pytest.approx(0.5)  # half of the first 10-epoch cycle
    assert _sgdr_at_epoch(20) == pytest.approx(0.5)  # half of the 20-epoch cycle [10, 30)
    assert _sgdr_at_epoch(2.5) == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    assert _sgdr_at_epoch(40) == pytest.approx((1 + math.cos(math.pi * 10 / 40)) / 2)
    # fractional-epoch updates: each step within an epoch has its own value
    assert _sgdr_at_epoch(0.25) < _sgdr_at_epoch(0) and _sgdr_at_epoch(0.5) < _sgdr_at_epoch(0.25)
    # t_mult = 1: equal cycles; min_factor lifts the floor
    assert sgdr(25, steps_per_epoch=1, total_steps=0, t0=10, t_mult=1) == pytest.approx(0.5)
    assert _sgdr_at_epoch(5, min_factor=0.2) == pytest.approx(0.2 + 0.8 * 0.5)


def test_step_and_exponential_by_hand():
    m = [multistep(s, steps_per_epoch=1, total_steps=200) for s in (0, 99, 100, 149, 150, 199)]
    assert m == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    st = [staircase(s, steps_per_epoch=10, total_steps=0, every_epochs=60) for s in (0, 599, 600, 1199, 1200)]
    assert st == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    ex = [exponential(s, steps_per_epoch=10, total_steps=0) for s in (0, 9, 10, 25, 100)]
    assert ex == pytest.approx([1, 1, 0.99, 0.99**2, 0.99**10])


def test_resolve_rejects_bad_specs():
    with pytest.raises(ValueError, match="invalid schedule: 'nope'"):
        resolve("nope", 1, 10)
    with pytest.raises(ValueError, match="invalid schedule option"):
        resolve({"name": "sgdr", "t_zero": 3}, 1, 10)
    with pytest.raises(ValueError, match="invalid schedule"):
        resolve(3, 1, 10)


@pytest.mark.parametrize("key, hp, expected", [
    # steps_per_epoch = 2: SGDR restarts at steps 20, 60, 140; half-way through cycle 1 at step 10
    ("sgdr", {"steps_per_epoch": 2}, {0: 0.1, 10: 0.05, 19: 0.05 * (1 + math.cos(math.pi * 9.5 / 10)), 20: 0.1, 40: 0.05,
                                      60: 0.1}),
    ("sgd_step", {"total_steps": 100}, {0: 0.1, 49: 0.1, 50: 0.01, 74: 0.01, 75: 0.001}),
    ("sgd_step", {"every_epochs": 3, "steps_per_epoch": 2}, {0: 0.1, 5: 0.1, 6: 0.01, 12: 0.001}),
    ("sgd_exp", {"steps_per_epoch": 5}, {0: 0.1, 4: 0.1, 5: 0.099, 10: 0.1 * 0.99**2}),
])
def test_scheduled_sgd_applies_the_schedule(key, hp, expected):
    x, closure, _, d = quadratic(diag=(1.0, 0.5), x0=(1.0, -1.0))
    opt, _ = build_optimizer(key, [x], {**hp, "momentum": 0.0}, steps_per_epoch=1)
    applied = []
    for _ in range(max(expected) + 1):
        before = x.detach().clone()
        grad = d * before  # ∇ ½ Σ d_i x_i²
        opt.step(closure)
        applied.append(opt.param_groups[0]["lr"])
        # the logged LR is the one that moved the weights: w1 = w0 − lr·g
        torch.testing.assert_close(x.detach(), before - applied[-1] * grad)
    for k, want in expected.items():
        assert applied[k] == pytest.approx(want)


def test_runner_composes_a_schedule_with_adam_and_logs_it():
    base = 0.05
    cfg = RunConfig("t", ProblemSpec("beale"), OptimizerSpec("adam", {"lr": base, "schedule": "multistep"}),
                    0, "cpu", Budget(20, 1))
    r = run_one(cfg)
    assert r.status == "ok"
    # the LR logged after step s is the one applied in it: step index s − 1, milestones 10 and 15
    want = [base] + [base * (1 if s <= 10 else 0.1 if s <= 15 else 0.01) for s in range(1, 21)]
    assert r.curves["lr_0"] == pytest.approx(want)


def test_adaptive_methods_refuse_a_schedule():
    x = torch.zeros(2, requires_grad=True)
    for key in ("l4_adam", "sgdr", "marthe"):
        with pytest.raises(ValueError, match=f"{key} adapts its own learning rate"):
            build_optimizer(key, [x], {"schedule": "sgdr"}, steps_per_epoch=1)
