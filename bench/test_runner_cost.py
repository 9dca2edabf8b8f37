"""What the harness costs, what vectorised seeds save, and how long a report takes.

* ``test_harness[runner]`` vs ``test_harness[bare]``: N steps of ``mnist_logreg`` with ``sgd``
  through :func:`lrbench.runner.run_one` (closure, oracle counting, timing, divergence checks,
  the evaluations at step 0 and N, assembling the result) versus a hand-written loop doing the
  same steps on the same tensors (target ratio <= 1.03). The runner side builds its task, the
  bare side gets it built.
* ``test_seeds[vectorized]`` vs ``test_seeds[loop]``: 100 seeds of ``beale`` × 500 steps as one
  batch versus one run per seed (target >= 30×). Marked ``full``: minutes on a small CPU.
* ``test_report``: the Markdown leaderboard of a fixture database (2 problems × 2 optimizers ×
  3 seeds).

Each records ``ratio_of`` (the benchmark it is compared with) so that ``bench/gate.py`` gates
the ratio itself; the report's ratio is to the ``sgd`` step on the MLP.
"""

from __future__ import annotations

import pytest
import torch

from lrbench.registry import make_problem
from lrbench.report import leaderboard_markdown
from lrbench.runner import _Batches, _seed_everything, run_one
from lrbench.spec import Budget, OptimizerSpec, ProblemSpec, RunConfig
from lrbench.store import Store, load_runs
from lrbench.vectorized import run_seeds

HARNESS_STEPS = 400


def _harness_config() -> RunConfig:
    return RunConfig("bench", ProblemSpec("mnist_logreg"), OptimizerSpec("sgd", {"lr": 0.5}), 0, "cpu",
                     Budget(HARNESS_STEPS, HARNESS_STEPS))


@pytest.mark.parametrize("side", ["runner", "bare"])
def test_harness(benchmark, side):
    config = _harness_config()
    benchmark.group = "harness"
    if side == "runner":
        run_one(config)  # warm: data cached, first optimizer built
        benchmark.extra_info["ratio_of"] = "test_harness[bare]"
        benchmark.pedantic(run_one, args=(config,), rounds=5, warmup_rounds=1)
        return
    problem = make_problem("mnist_logreg")

    def bare():
        _seed_everything(0)
        task = problem.build(0, torch.device("cpu"))
        params = list(task.model.parameters())
        opt = torch.optim.SGD(params, lr=0.5)
        batches = _Batches(task.n_train, task.batch_size, 0, torch.device("cpu"))

        def loop():
            for _ in range(HARNESS_STEPS):
                idx = batches.next()

                def closure():
                    opt.zero_grad()
                    loss = task.loss(idx)
                    loss.backward()
                    return loss

                opt.step(closure)

        return (loop,), {}

    benchmark.pedantic(lambda loop: loop(), setup=bare, rounds=5, warmup_rounds=1)


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
    benchmark.group = "report"
    benchmark.extra_info["reference_group"] = "step/mlp/cpu"
    benchmark.pedantic(lambda: leaderboard_markdown(load_runs(fixture_db)), rounds=5, warmup_rounds=1)
