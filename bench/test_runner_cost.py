"""What the harness costs, what vectorised seeds save, and how long a report takes.

* ``test_harness``, the runner paired with a bare loop: N steps of ``mnist_logreg`` with ``sgd``
  through :func:`lrbench.runner.run_one` (closure, oracle counting, timing, divergence checks,
  assembling the result) versus a hand-written loop doing the same work on the same tensors:
  build the task, evaluate, N steps, evaluate (target ratio <= 1.03).
* ``test_seeds[vectorized]`` vs ``test_seeds[loop]``: 100 seeds of ``beale`` × 500 steps as one
  batch versus one run per seed (target >= 30×). Marked ``full``: minutes on a small CPU.
* ``test_report``: the Markdown leaderboard of a fixture database (2 problems × 2 optimizers ×
  3 seeds).

The harness and the report record a paired ratio (``bench/_paired.py``), the seeds ``ratio_of``
(the benchmark it is divided by), so that ``bench/gate.py`` gates the ratio itself; the
report's unit is five ``sgd`` steps of the MLP.
"""

from __future__ import annotations

import pytest
import torch
from _paired import paired
from test_step_cost import _training_step

from lrbench.registry import make_problem
from lrbench.report import leaderboard_markdown
from lrbench.runner import _Batches, _seed_everything, run_one
from lrbench.spec import Budget, OptimizerSpec, ProblemSpec, RunConfig
from lrbench.store import Store, load_runs
from lrbench.vectorized import run_seeds

HARNESS_STEPS = 1000
HARNESS_ROUNDS = 9


def _harness_config() -> RunConfig:
    return RunConfig("bench", ProblemSpec("mnist_logreg"), OptimizerSpec("sgd", {"lr": 0.5}), 0, "cpu",
                     Budget(HARNESS_STEPS, HARNESS_STEPS))


def _bare_run() -> dict:
    """What a user would write by hand for the same run: build the task, evaluate, take the
    same steps on the same batches with ``torch.optim.SGD`` and a closure, evaluate again."""
    problem = make_problem("mnist_logreg")
    _seed_everything(0)
    task = problem.build(0, torch.device("cpu"))
    params = list(task.model.parameters())
    opt = torch.optim.SGD(params, lr=0.5)
    batches = _Batches(task.n_train, task.batch_size, 0, torch.device("cpu"))
    first = task.evaluate()
    for _ in range(HARNESS_STEPS):
        idx = batches.next()

        def closure():
            opt.zero_grad()
            loss = task.loss(idx)
            loss.backward()
            return loss

        opt.step(closure)
    return {"first": first, "last": task.evaluate()}


def test_harness(benchmark):
    """Both sides do the whole run, from building the task to the last evaluation; the
    runner adds its closure, oracle counting, clock, divergence checks and result. Paired
    round by round (``bench/_paired.py``)."""
    config = _harness_config()
    benchmark.group = "harness"
    run_one(config)  # warm: data cached, first optimizer built
    _bare_run()
    paired(benchmark, run_one, _bare_run, "bare loop", rounds=HARNESS_ROUNDS, args=(config,))


SEEDS, SEED_STEPS = 100, 500


@pytest.mark.full
@pytest.mark.parametrize("side", ["vectorized", "loop"])
def test_seeds(benchmark, side):
    configs = [RunConfig("bench", ProblemSpec("beale"), OptimizerSpec("adam", {"lr": 0.05}), s, "cpu",
                         Budget(SEED_STEPS, make_problem("beale").budget.eval_every)) for s in range(SEEDS)]
    benchmark.group = "seeds"
    if side == "vectorized":
        benchmark.extra_info["ratio_of"] = "test_seeds[loop]"
        benchmark.pedantic(run_seeds, args=(configs,), rounds=3, warmup_rounds=1)
    else:
        benchmark.pedantic(lambda: [run_one(c) for c in configs], rounds=1, warmup_rounds=0)


@pytest.fixture(scope="module")
def fixture_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("report") / "r.sqlite"
    with Store(db) as store:
        for problem in ("beale", "illcond_regression"):
            for key, lr in (("sgd", 0.001), ("adam", 0.01)):
                for seed in range(3):
                    store.append(run_one(RunConfig("fixture", ProblemSpec(problem), OptimizerSpec(key, {"lr": lr}),
                                                   seed, "cpu", Budget(50, 10))))
    return db


def test_report(benchmark, fixture_db):
    """Paired with five ``sgd`` steps of the MLP of ``test_step_cost`` (its unit of time)."""
    benchmark.group = "report"
    sgd_step = _training_step("sgd", "mlp", torch.device("cpu"))[0]

    def five_sgd_steps():
        for _ in range(5):
            sgd_step()

    paired(benchmark, lambda: leaderboard_markdown(load_runs(fixture_db)), five_sgd_steps, "5 sgd steps (mlp, cpu)",
           rounds=7)
