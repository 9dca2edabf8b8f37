"""Tuning selection and LR robustness on hand-built result tables."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from lrbench.stats import lr_robustness, select_best


def _runs(rows):
    """rows: (optimizer, lr, seed, status, final_train_loss, steps_to_1.0, wall_time_s)."""
    out = []
    for opt, lr, seed, status, loss, reached, wall in rows:
        out.append({
            "problem": "p", "optimizer": opt, "optimizer_name": f"{opt}[lr={lr}]", "hparams": {"lr": lr},
            "seed": seed, "status": status, "final_train_loss": loss, "thresholds": (1.0, 0.1),
            "steps_to_1.0": reached, "steps_to_0.1": None, "wall_time_s": wall,
        })
    return pd.DataFrame(out)


def test_select_best_picks_the_lowest_mean_and_counts_the_cost():
    df = _runs([
        ("sgd", 0.1, 0, "ok", 0.30, 5, 1.0), ("sgd", 0.1, 1, "ok", 0.50, 5, 1.0),    # mean 0.40
        ("sgd", 1.0, 0, "ok", 0.05, 2, 1.0), ("sgd", 1.0, 1, "diverged", 0.0, None, 0.5),  # a divergence loses
        ("sgd", 0.01, 0, "ok", 0.45, 9, 2.0), ("sgd", 0.01, 1, "ok", 0.33, 9, 2.0),  # mean 0.39: best
        ("adam", 0.001, 0, "ok", 0.2, 3, 1.0),
    ])
    best = select_best(df).set_index("optimizer")
    assert best.loc["sgd", "best_name"] == "sgd[lr=0.01]"
    assert best.loc["sgd", "best_hparams"] == {"lr": 0.01}
    assert best.loc["sgd", "value"] == pytest.approx(0.39)
    assert best.loc["sgd", "tuning_runs"] == 6 and best.loc["sgd", "tuning_seconds"] == pytest.approx(7.5)
    assert best.loc["adam", "best_name"] == "adam[lr=0.001]"
    # a maximised criterion flips the choice
    df["acc"] = [0.9, 0.9, 0.99, 0.99, 0.5, 0.5, 0.7]
    assert select_best(df, "acc", "max").set_index("optimizer").loc["sgd", "best_name"] == "sgd[lr=0.1]"
    with pytest.raises(ValueError, match="invalid sense"):
        select_best(df, sense="low")


def test_lr_robustness_width_and_divergence():
    # grid 1e-4 … 1 at two points per decade; works (both seeds reach) on 1e-3 … 1e-1.5 and
    # at 1 alone; 10^-0.5 diverges on both seeds
    grid = [10 ** (-4 + k / 2) for k in range(9)]
    works = {grid[2], grid[3], grid[4], grid[5], grid[8]}
    rows = []
    for lr in grid:
        for seed in (0, 1):
            if lr == grid[7]:
                rows.append(("sgd", lr, seed, "diverged", math.nan, None, 1.0))
            else:
                rows.append(("sgd", lr, seed, "ok", 0.1, 7 if lr in works else None, 1.0))
    # seed 1 misses at grid[5]: one of two seeds is not a majority, so the run is 1e-3 … 10^-2
    rows = [(o, lr, s, st, l, (None if (lr == grid[5] and s == 1) else r), w) for o, lr, s, st, l, r, w in rows]
    table = lr_robustness(_runs(rows)).set_index("optimizer")
    row = table.loc["sgd"]
    assert row["grid_points"] == 9
    assert row["width_decades"] == pytest.approx(1.5)  # 3 consecutive cells of half a decade
    assert row["lr_low"] == pytest.approx(1e-3) and row["lr_high"] == pytest.approx(1e-2)
    assert row["diverged_fraction"] == pytest.approx(2 / 18)
