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

import statistics
import time

import pytest
import torch
from _paired import paired
from test_step_cost import _training_step

from lrbench.registry import make_problem, optimizer_class, optimizer_keys
from lrbench.report import leaderboard_markdown
from lrbench.core import Batches, seed_everything
from lrbench.runner import run_one
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
    seed_everything(0)
    task = problem.build(0, torch.device("cpu"))
    params = list(task.model.parameters())
    opt = torch.optim.SGD(params, lr=0.5)
    batches = Batches(task.n_train, task.batch_size, 0, torch.device("cpu"))
    first = task.evaluate(None)
    for _ in range(HARNESS_STEPS):
        idx = batches.next()

        def closure():
            opt.zero_grad()
            loss = task.loss(None, idx)
            loss.backward()
            return loss

        opt.step(closure)
    return {"first": first, "last": task.evaluate(None)}


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


# ---- issue 15: every method's vectorised seeds, and its step through the runner

VECTOR_KEYS = [k for k in optimizer_keys() if getattr(optimizer_class(k), "available", True)
               and getattr(getattr(optimizer_class(k), "facts", None), "vectorizable", False)]
LOOP_SEEDS = 5  # the per-seed loop is linear in the seeds: 5 of the 100 are timed and scaled
#: settings that run all 500 steps of Beale from its start (the defaults of these methods, made
#: for large networks, diverge within 50 steps there, which would time 50 steps, not 500)
BEALE_HPARAMS = {"sgd_hd": {"lr": 1e-3, "hypergrad_lr": 1e-7}, "fd_first_order": {"lr": 1e-3, "alpha": 1e-7},
                 "fd_newton": {"lr": 1e-3, "rel_eps": 0.1}, "marthe": {"lr": 1e-3, "beta": 1e-12, "adapt_beta": False},
                 "tlr": {"lr": 3e-5, "c": 0.1}, "tlr_pl": {"lr": 3e-5, "c": 0.1}, "tlr_naive": {"lr": 1e-4, "eta": 1e-8},
                 "sgdr": {"lr": 1e-3}, "sgd_step": {"lr": 1e-3}, "sgd_exp": {"lr": 1e-3}}


@pytest.mark.full
@pytest.mark.parametrize("key", VECTOR_KEYS)
def test_seeds_every_method(benchmark, key):
    """100 seeds × 500 steps of ``beale`` as one batch against the per-seed loop (timed on
    ``LOOP_SEEDS`` seeds, per seed); ``paired_ratio`` = batched / loop time per seed (target
    <= 1/30)."""
    configs = [RunConfig("bench", ProblemSpec("beale"), OptimizerSpec(key, BEALE_HPARAMS.get(key, {})), s, "cpu",
                         Budget(SEED_STEPS, make_problem("beale").budget.eval_every)) for s in range(SEEDS)]
    run_seeds(configs[:2])
    assert run_one(configs[0]).steps == SEED_STEPS, f"{key} stops early on beale: give it settings that do not"
    benchmark.group = "seeds/every method"
    batch = benchmark.pedantic(run_seeds, args=(configs,), rounds=1, warmup_rounds=0)
    t0 = time.perf_counter()
    alone = [run_one(c) for c in configs[:LOOP_SEEDS]]
    loop = (time.perf_counter() - t0) / LOOP_SEEDS
    batched = benchmark.stats.stats.median / SEEDS
    # A seed that diverges stops early alone, while the batch steps every seed until the last
    # one stops: the like-for-like unit is a step of one seed. (Equal to the ratio of whole
    # runs when every run takes the 500 steps.)
    loop_steps, batch_steps = sum(r.steps for r in alone) / LOOP_SEEDS, max(r.steps for r in batch)
    speedup = (loop / loop_steps) / (batched / batch_steps)
    benchmark.extra_info.update({"paired_ratio": 1 / speedup, "paired_with": f"per-seed loop ({LOOP_SEEDS} seeds)",
                                 "speedup": speedup, "loop_s_per_seed": loop, "batched_s_per_seed": batched,
                                 "loop_steps": loop_steps, "batch_steps": batch_steps})


ONE_PASS_KEYS = ["sgd_hd", "adam_hd", "sps", "fd_first_order", "tlr", "tlr_pl", "l4_mom", "l4_adam"]
RUNNER_STEPS = 300


def _runner_step_s(key: str) -> float:
    r = run_one(RunConfig("bench", ProblemSpec("mnist_logreg"), OptimizerSpec(key, {}), 0, "cpu",
                          Budget(RUNNER_STEPS, RUNNER_STEPS)))
    return r.curves["time_s"][-1] / r.steps  # the runner's step region (optimizer.step(closure)) only


def _bare_step_s(key: str) -> float:
    """The same step on the same shapes without the runner: a softmax regression 784→10 on
    random data, batch 128, with lrbench's closure."""
    from lrbench.closure import make_closure
    from lrbench.core import build_optimizer

    torch.manual_seed(0)
    model = torch.nn.Linear(784, 10)
    x, y = torch.rand(128, 784), torch.randint(0, 10, (128,))
    closure = make_closure(lambda: torch.nn.functional.cross_entropy(model(x), y), list(model.parameters()))
    opt, _ = build_optimizer(key, list(model.parameters()), {}, steps_per_epoch=27, total_steps=10**6)
    for _ in range(5):
        opt.step(closure)
    t0 = time.perf_counter()
    for _ in range(RUNNER_STEPS):
        opt.step(closure)
    return (time.perf_counter() - t0) / RUNNER_STEPS


@pytest.mark.full
@pytest.mark.parametrize("key", ONE_PASS_KEYS)
def test_runner_step(benchmark, key):
    """A solo step of ``key`` on ``mnist_logreg`` through the runner against ``sgd``'s there
    (``paired_ratio``, rounds alternating), beside the same ratio for the bare optimizers on the
    same shapes (``bare_ratio``): the runner should add nothing a method pays more for."""
    _runner_step_s("sgd")
    runner, bare = [], []
    for _ in range(5):
        s, k = _runner_step_s("sgd"), _runner_step_s(key)
        runner.append(k / s)
        bare.append(_bare_step_s(key) / _bare_step_s("sgd"))
    benchmark.group = "runner step/mnist_logreg"
    benchmark.pedantic(_runner_step_s, args=(key,), rounds=1, warmup_rounds=0)
    benchmark.extra_info.update({"paired_ratio": statistics.median(runner), "paired_with": "sgd through the runner",
                                 "bare_ratio": statistics.median(bare)})
