"""Learning-rate-free methods from their own packages: availability, effective LR, modes."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from lrbench.cli import _describe
from lrbench.closure import make_closure
from lrbench.optimizers._lrfree import base_class
from lrbench.registry import make_problem, optimizer_class
from lrbench.runner import run_one
from lrbench.spec import Budget, OptimizerSpec, ProblemSpec, RunConfig

needs_sf = pytest.mark.skipif(importlib.util.find_spec("schedulefree") is None, reason="schedulefree not installed")
needs_dog = pytest.mark.skipif(importlib.util.find_spec("dog") is None, reason="dog-optimizer not installed")


def test_missing_package_gives_a_stand_in_with_the_install_hint():
    base = base_class("no_such_package_xyz", "Opt", "fancy")

    class Fancy(base):
        """Fancy: an optimizer from a package that is not installed."""

    assert not Fancy.available
    with pytest.raises(ValueError, match=r"fancy needs the package 'no_such_package_xyz' \(pip install 'lrbench\[lrfree\]'\)"):
        Fancy([torch.zeros(1, requires_grad=True)])
    assert _describe(Fancy).startswith("[unavailable: needs no_such_package_xyz: pip install 'lrbench[lrfree]'] Fancy:")


@needs_sf
def test_runner_evaluates_schedule_free_at_the_averaged_iterate():
    """The runner's recorded point must be x (eval mode), found by an independent replay."""
    r = run_one(RunConfig("t", ProblemSpec("beale"), OptimizerSpec("sf_sgd", {"lr": 0.01}), 3, "cpu",
                          Budget(10, 5)))
    assert r.status == "ok"
    torch.manual_seed(3)
    task = make_problem("beale").build(3, torch.device("cpu"))
    params = list(task.model.parameters())
    opt = optimizer_class("sf_sgd")(params, lr=0.01)
    closure = make_closure(lambda: task.loss(None, None), params)
    for _ in range(10):
        opt.step(closure)
    y = [float(v) for v in task.model.xy]
    opt.eval()
    x = [float(v) for v in task.model.xy]
    assert x != y  # the two iterates differ, so the check below can fail
    assert [r.final["x"], r.final["y"]] == pytest.approx(x, rel=0, abs=0)


@needs_dog
def test_dog_logs_its_applied_step_size():
    w = torch.tensor([3.0, -4.0], requires_grad=True)
    opt = optimizer_class("dog")([w], reps_rel=1e-2)
    closure = make_closure(lambda: 0.5 * (w * w).sum(), [w])
    opt.step(closure)
    # first step, by hand: r̄ = 1e-2·(1 + ‖w₀‖) = 0.06, G = ‖g‖² + ε = 25 + 1e-8, η = r̄/√G
    eta = 0.06 / (25 + 1e-8) ** 0.5
    assert opt.param_groups[0]["effective_lr"] == pytest.approx(eta)
    torch.testing.assert_close(w.detach(), torch.tensor([3.0, -4.0]) * (1 - eta))
