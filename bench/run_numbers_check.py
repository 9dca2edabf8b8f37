"""Stored numbers of runs, between two versions of the run code (issue 16: "numbers of existing
runs do not change").

``save`` runs a fixed set of configs on the CPU through :func:`lrbench.runner.run_one` (10
problems at their smoke sizes, the CIFAR networks on synthetic data, × 9 methods) and through
:func:`lrbench.vectorized.run_seeds` (2-seed batches of the 4 problems whose seeds batch), and
writes every stored number but times, memory and the environment (status, message, steps,
final and best metrics, steps to thresholds, oracle counts, state bytes, every curve but
``time_s``, the batch size) as JSON. ``compare`` re-runs the current code and lists every run
whose numbers differ; same machine, same numbers, so the expected answer is none. Run the old
code from its own checkout (``LRBENCH_SRC``, as ``bench/trajectory_check.py``)::

    git worktree add /tmp/lrbench-old 2de6707
    LRBENCH_SRC=/tmp/lrbench-old OMP_NUM_THREADS=1 python bench/run_numbers_check.py save /tmp/runs.json
    OMP_NUM_THREADS=1 python bench/run_numbers_check.py compare /tmp/runs.json

About 1.5-2 min per side on 2 cores (126 entries; 0 differ between 2de6707 and the run core of issue 16, 2026-12-03).
"""

from __future__ import annotations

import os
import sys

if os.environ.get("LRBENCH_SRC"):  # run another checkout's code: put it before the editable install
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
    sys.path.insert(0, os.environ["LRBENCH_SRC"])

import json

from lrbench.runner import run_one
from lrbench.spec import Budget, OptimizerSpec, ProblemSpec, RunConfig
from lrbench.vectorized import run_seeds

SMOKE = {"size": "smoke"}
SYNTHETIC = {"size": "smoke", "source": "synthetic"}
PROBLEMS = [("beale", {}), ("bukin6", {}), ("rosenbrock", {}), ("illcond_regression", SMOKE),
            ("boston_linreg", SMOKE), ("mnist_logreg", SMOKE), ("mnist_mlp_300_100", SMOKE),
            ("mnist_lenet5", SMOKE), ("cifar10_vgg11bn", SYNTHETIC), ("cifar10_resnet18", SYNTHETIC)]
METHODS = [("sgd", {"lr": 0.01}), ("adam", {"lr": 0.01}), ("sgd_hd", {}), ("marthe", {}), ("lqa", {}),
           ("sls", {}), ("l4_adam", {}), ("tlr", {}), ("fd_newton", {})]
BATCHED = ("beale", "illcond_regression", "boston_linreg", "mnist_logreg")


def _numbers(r) -> dict:
    return {"status": r.status, "message": r.message, "steps": r.steps, "final": r.final, "best": r.best,
            "steps_to_threshold": r.steps_to_threshold, "forward": r.forward, "backward": r.backward,
            "state_bytes": r.state_bytes, "vectorized": r.vectorized,
            "curves": {k: v for k, v in r.curves.items() if k != "time_s"}}


def collect() -> dict[str, object]:
    out: dict[str, object] = {}
    for problem, options in PROBLEMS:
        steps = 20 if problem.startswith("cifar") else 40
        for key, hparams in METHODS:
            configs = [RunConfig("numbers", ProblemSpec(problem, options), OptimizerSpec(key, hparams), seed, "cpu",
                                 Budget(steps, 10)) for seed in (0, 1)]
            out[f"{problem}/{key}/alone"] = _numbers(run_one(configs[0]))
            if problem in BATCHED:
                out[f"{problem}/{key}/batch"] = [_numbers(r) for r in run_seeds(configs)]
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("save", "compare"):
        print("usage: run_numbers_check.py save|compare FILE.json", file=sys.stderr)
        return 2
    mode, path = argv
    now = json.loads(json.dumps(collect(), sort_keys=True))  # as the file holds them (floats via JSON)
    if mode == "save":
        with open(path, "w") as f:
            json.dump(now, f, sort_keys=True)
        print(f"{len(now)} entries saved to {path}")
        return 0
    with open(path) as f:
        saved = json.load(f)
    differ = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
    for k in differ:
        print(f"differs: {k}")
    print(f"{len(now)} entries, {len(differ)} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
