"""Vectorised seeds versus the per-seed loop, measured in one process.

    OMP_NUM_THREADS=1 python bench/vectorized_seeds.py [--seeds 100] [--steps 500] [--problem beale]

Both sides are the runner's whole work for the runs (building each seed's task, the steps,
the evaluations, assembling the results), timed with ``time.perf_counter``; nothing is
stored. Prints both times and their ratio, and checks that the two give the same final
losses (float tolerance).
"""

from __future__ import annotations

import argparse
import math
import time

from lrbench.runner import run_one
from lrbench.spec import Budget, OptimizerSpec, ProblemSpec, RunConfig
from lrbench.vectorized import run_seeds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--eval-every", type=int, default=None, help="default: the problem's")
    ap.add_argument("--problem", default="beale")
    ap.add_argument("--optimizer", default="adam")
    ap.add_argument("--lr", type=float, default=0.05)
    args = ap.parse_args()
    from lrbench.registry import make_problem

    every = args.eval_every or make_problem(args.problem).budget.eval_every
    configs = [RunConfig("bench", ProblemSpec(args.problem), OptimizerSpec(args.optimizer, {"lr": args.lr}), s,
                         "cpu", Budget(args.steps, every)) for s in range(args.seeds)]
    run_seeds(configs[:2])  # warm-up: imports, first vmap trace
    run_one(configs[0])
    t0 = time.perf_counter()
    batched = run_seeds(configs)
    t_vec = time.perf_counter() - t0
    t0 = time.perf_counter()
    alone = [run_one(c) for c in configs]
    t_loop = time.perf_counter() - t0
    worst = max(abs(a.final["train_loss"] - b.final["train_loss"]) / max(abs(b.final["train_loss"]), 1e-6)
                for a, b in zip(batched, alone))  # relative, or absolute below 1e-6
    print(f"{args.seeds} seeds of {args.problem} x {args.steps} steps ({args.optimizer}, lr={args.lr}, "
          f"evaluated every {every}):")
    print(f"  per-seed loop: {t_loop:8.2f} s")
    print(f"  vectorised:    {t_vec:8.2f} s")
    print(f"  speed-up:      {t_loop / t_vec:8.1f}x   (largest relative difference of final losses: {worst:.1e})")
    assert math.isfinite(worst) and worst < 1e-3


if __name__ == "__main__":
    main()
