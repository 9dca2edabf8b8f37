import math

import pytest
import torch

from lrbench.runner import run_one
from lrbench.spec import Budget, OptimizerSpec, ProblemSpec, RunConfig


def _cfg(problem="beale", opt="sgd", hp=None, seed=0, steps=50, every=10):
    return RunConfig("test", ProblemSpec(problem), OptimizerSpec(opt, hp or {"lr": 0.01}), seed, "cpu",
                     Budget(steps, every))


def test_same_config_twice_is_bit_identical():
    for problem in ("beale", "mnist_logreg"):
        a = run_one(_cfg(problem, "adam", {"lr": 0.01}, seed=1, steps=40))
        b = run_one(_cfg(problem, "adam", {"lr": 0.01}, seed=1, steps=40))
        assert a.status == b.status == "ok"
        assert a.final["train_loss"] == b.final["train_loss"]
        assert a.curves["train_loss"] == b.curves["train_loss"]


def test_seeds_differ():
    a = run_one(_cfg(seed=0))
    b = run_one(_cfg(seed=1))
    assert a.final["train_loss"] != b.final["train_loss"]


def test_curves_oracle_counts_and_effective_lr():
    r = run_one(_cfg(steps=50, every=10))
    assert r.status == "ok" and r.steps == 50
    assert r.curves["step"] == [0, 10, 20, 30, 40, 50]
    assert r.curves["lr_0"] == [0.01] * 6
    assert r.forward == 50 and r.backward == 50
    times = r.curves["time_s"]
    assert times[0] == 0 and all(b >= a for a, b in zip(times, times[1:]))
    assert r.wall_time_s == pytest.approx(times[-1])
    assert r.median_step_s > 0
    # the recorded final loss is the objective at the final parameters
    assert r.final["train_loss"] == r.curves["train_loss"][-1]
    assert r.best["train_loss"] == min(r.curves["train_loss"])


def test_steps_to_threshold_is_first_evaluated_step_below():
    r = run_one(_cfg("beale", "adam", {"lr": 0.05}, steps=200, every=1))
    for t, step in r.steps_to_threshold.items():
        losses = r.curves["train_loss"]
        below = [s for s, v in zip(r.curves["step"], losses) if v <= float(t)]
        assert step == (below[0] if below else None)
    assert r.steps_to_threshold["1.0"] is not None


def test_state_bytes_counts_optimizer_state():
    r = run_one(_cfg("mnist_logreg", "adam", {"lr": 0.01}, steps=3, every=3))
    n_params = 784 * 10 + 10
    # exp_avg and exp_avg_sq in float32, plus a scalar step per tensor
    assert r.state_bytes >= 2 * 4 * n_params
    assert r.state_bytes <= 2 * 4 * n_params + 2 * 8
    assert run_one(_cfg(steps=3, every=3)).state_bytes == 0  # plain SGD keeps no state


def test_divergence_is_a_status_not_an_exception():
    r = run_one(_cfg("beale", "sgd", {"lr": 10.0}, steps=100, every=10))
    assert r.status == "diverged"
    assert "step" in r.message
    assert r.steps <= 100


def test_failure_is_recorded_and_named():
    r = run_one(_cfg("beale", "plugins:Exploding", {"lr": 0.01}, steps=10, every=5))
    assert r.status == "failed"
    assert "boom in step" in r.message
    assert r.steps == 2


def test_steps_per_epoch_reaches_optimizers_that_ask(monkeypatch):
    from lrbench import core

    seen = {}

    class WantsEpoch(torch.optim.SGD):
        def __init__(self, params, lr=0.1, steps_per_epoch=None):
            seen["n"] = steps_per_epoch
            super().__init__(params, lr=lr)

    monkeypatch.setattr(core, "optimizer_class", lambda key: WantsEpoch)
    run_one(_cfg("mnist_logreg", "x", {"lr": 0.1}, steps=2, every=2))
    assert seen["n"] == 3500 // 128


def test_equal_seeds_share_initialisation_and_batches():
    # two optimizers, same seed: the initial evaluation (before any step) is identical
    a = run_one(_cfg("illcond_regression", "sgd", {"lr": 0.001}, seed=2, steps=1, every=1))
    b = run_one(_cfg("illcond_regression", "adam", {"lr": 0.001}, seed=2, steps=1, every=1))
    assert a.curves["train_loss"][0] == b.curves["train_loss"][0]
    assert math.isfinite(a.curves["train_loss"][0])
