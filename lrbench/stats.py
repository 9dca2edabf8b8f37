"""Statistics: pure functions from the runs DataFrame (:func:`lrbench.load_runs`) to tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["summary_table", "threshold_columns"]


def threshold_columns(runs: pd.DataFrame) -> list[str]:
    """The ``steps_to_<threshold>`` columns of the given runs that hold any threshold of
    theirs, ordered easy to hard (the problem's declaration order)."""
    order: list[float] = []
    for ts in runs["thresholds"]:
        for t in ts:
            if t not in order:
                order.append(t)
    return [f"steps_to_{t}" for t in order if f"steps_to_{t}" in runs.columns]


def summary_table(runs: pd.DataFrame, headline: str | None = None) -> pd.DataFrame:
    """Per optimizer (name) on one problem: seeds, final train loss mean and std, best
    headline metric (mean over seeds), steps to each threshold (median over the seeds that
    reached it, and how many did), median step time, peak memory, diverged and failed
    counts. Runs that failed count in ``failed`` only; diverged runs keep their last
    finite values out of the loss statistics."""
    rows = []
    tcols = threshold_columns(runs)
    for name, g in runs.groupby("optimizer_name", sort=True):
        ok = g[g["status"] == "ok"]
        loss = ok["final_train_loss"].astype(float) if "final_train_loss" in ok else pd.Series(dtype=float)
        row = {
            "optimizer": name,
            "seeds": len(g),
            "final_train_loss_mean": loss.mean() if len(loss) else math.nan,
            "final_train_loss_std": loss.std(ddof=1) if len(loss) > 1 else math.nan,
        }
        if headline is not None:
            col = f"best_{headline}"
            row[col] = ok[col].astype(float).mean() if col in ok and len(ok) else math.nan
        for c in tcols:
            reached = g[c].dropna()
            row[f"{c}_median"] = float(np.median(reached)) if len(reached) else math.nan
            row[f"{c}_reached"] = int(len(reached))
        row["median_step_s"] = float(g["median_step_s"].median())
        row["peak_memory_bytes"] = float(g["peak_memory_bytes"].max())
        row["diverged"] = int((g["status"] == "diverged").sum())
        row["failed"] = int((g["status"] == "failed").sum())
        rows.append(row)
    return pd.DataFrame(rows)
