"""Statistics: pure functions from the runs DataFrame (:func:`lrbench.load_runs`) to tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["summary_table", "threshold_columns", "select_best", "lr_robustness"]


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


def _criterion_values(g: pd.DataFrame, criterion: str, sense: str) -> pd.Series:
    """Per run: the criterion, with diverged / failed / missing runs as the worst value."""
    worst = math.inf if sense == "min" else -math.inf
    vals = g[criterion].astype(float) if criterion in g else pd.Series(math.nan, index=g.index)
    bad = (g["status"] != "ok") | ~np.isfinite(vals)
    return vals.where(~bad, worst)


def select_best(runs: pd.DataFrame, criterion: str = "final_train_loss", sense: str = "min") -> pd.DataFrame:
    """The tuning decision: per problem and optimizer key, the hyper-parameters whose runs have
    the best mean ``criterion`` over seeds (``sense`` "min" or "max"); a diverged or failed run
    counts as the worst value, so a setting that sometimes diverges cannot win on its good
    seeds. Ties go to the first name in sorted order (deterministic).

    Returns one row per (problem, optimizer): ``best_name``, ``best_hparams``, ``criterion``,
    its ``value``, the number of ``tuning_runs`` and their ``tuning_seconds`` (sum of step time),
    the cost a tuned result carries.
    """
    if sense not in ("min", "max"):
        raise ValueError(f"invalid sense: {sense!r} (must be 'min' or 'max')")
    rows = []
    for (problem, key), g in runs.groupby(["problem", "optimizer"], sort=True):
        scores = _criterion_values(g, criterion, sense).groupby(g["optimizer_name"]).mean().sort_index()
        best = scores.idxmin() if sense == "min" else scores.idxmax()
        rows.append({
            "problem": problem, "optimizer": key, "best_name": best,
            "best_hparams": g.loc[g["optimizer_name"] == best, "hparams"].iloc[0],
            "criterion": criterion, "value": float(scores[best]),
            "tuning_runs": int(len(g)), "tuning_seconds": float(g["wall_time_s"].sum()),
        })
    return pd.DataFrame(rows)


def lr_robustness(runs: pd.DataFrame, param: str = "lr", majority: float = 0.5) -> pd.DataFrame:
    """Robustness to the (initial) learning rate, from runs over a log grid of ``param``.

    Per problem and optimizer key: a grid value *works* when more than ``majority`` of its
    seeds reach the problem's first (easiest) threshold. ``width_decades`` is the length, in
    decades, of the longest run of consecutive working grid values, each value standing for a
    cell one grid spacing wide (so two working neighbours at two points per decade give 1.0
    decade; none gives 0). ``diverged_fraction`` is the share of all grid runs that diverged.
    The spacing is the median gap between consecutive grid values in log10.
    """
    tcols = threshold_columns(runs)
    if not tcols:
        raise ValueError("invalid runs: no steps_to_<threshold> column")
    first = tcols[0]
    rows = []
    for (problem, key), g in runs.groupby(["problem", "optimizer"], sort=True):
        lrs = g["hparams"].map(lambda h: h.get(param))
        if lrs.isna().any():
            raise ValueError(f"invalid runs: {key} on {problem} has runs without {param}")
        per_lr = g.assign(_lr=lrs.astype(float)).groupby("_lr")
        works = per_lr[first].apply(lambda c: c.notna().mean() > majority).sort_index()
        grid = np.log10(works.index.to_numpy(dtype=float))
        spacing = float(np.median(np.diff(grid))) if len(grid) > 1 else 1.0
        best = run = 0
        lo = hi = math.nan
        start = None
        for i, ok in enumerate(works.to_numpy()):
            run = run + 1 if ok else 0
            start = i if run == 1 else start
            if run > best:
                best, lo, hi = run, works.index[start], works.index[i]
        rows.append({
            "problem": problem, "optimizer": key, "grid_points": int(len(works)),
            "width_decades": best * spacing, "lr_low": float(lo), "lr_high": float(hi),
            "diverged_fraction": float((g["status"] == "diverged").mean()),
        })
    return pd.DataFrame(rows)
