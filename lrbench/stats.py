"""Statistics: pure functions from the runs DataFrame (:func:`lrbench.load_runs`) to tables.

The comparison tables (:func:`metric_table`, :func:`threshold_table`, :func:`ecdf_table`,
:func:`significance_table`, :func:`rank_table`, :func:`performance_profile`,
:func:`cost_table`) name an optimizer by its ``optimizer_name`` (e.g. ``adam[lr=0.001]``, or
``adam*`` when tuned) in their ``optimizer`` column. They accept partial tables: a missing
column gives ``NaN`` (or a ``reason``) rather than an exception. Conventions shared by them:

* Status. ``metric_table`` leaves diverged and failed runs out of the metric statistics and
  reports how many there were. The comparisons (``significance_table``, ``rank_table``) count a
  diverged or failed run, or a non-finite value, as the worst possible value (``inf`` when
  minimising), as :func:`select_best` does, so an optimizer cannot win on its good seeds alone.
  The threshold statistics use every run as a trial: a run that stopped early (diverged or
  failed) before reaching a threshold is an unsuccessful trial that spent its ``steps``.
* Time to threshold. The runs table has no time-to-threshold column, so the seconds to reach a
  threshold are ``steps_to_<t> * median_step_s`` (an approximation: it ignores the spread of
  step times and evaluation overhead is not timed anyway), unless a ``seconds_to_<t>`` column is
  present (e.g. read off the ``time_s`` curve of :func:`lrbench.load_curves`), which is then used.
  An unsuccessful trial spends its ``wall_time_s`` (the summed step time).
* ``steps_to_<t>`` is the first *evaluated* step at or below ``t``: resolution ``eval_every``.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as st

__all__ = [
    "summary_table", "threshold_columns", "select_best", "lr_robustness",
    "metric_table", "threshold_table", "ecdf_table", "significance_table", "rank_table", "RankResult",
    "performance_profile", "cost_table",
]


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
        row["failed"] = int(g["status"].isin(NOT_FINISHED).sum())
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


# --- shared helpers of the comparison tables -------------------------------------------------

NOT_FINISHED = ("failed", "timeout")
"""Statuses of runs that did not finish (counted as ``failed`` in the tables)."""

_VERDICT_SYMBOLS = {"better": "▲", "worse": "▼", "no significant difference": "≈",
                    "too few seeds": "?", "no reference": ""}
# scipy >= 1.15 calls the bootstrap's generator ``rng``; older releases ``random_state``
_RNG_KW = "rng" if "rng" in inspect.signature(st.bootstrap).parameters else "random_state"


def _check_sense(sense: str) -> None:
    if sense not in ("min", "max"):
        raise ValueError(f"invalid sense: {sense!r} (must be 'min' or 'max')")


def _prepare(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs with the grouping columns a partial table may lack filled with defaults."""
    missing = {c: d for c, d in (("problem", ""), ("optimizer", ""), ("status", "ok"), ("seed", math.nan))
               if c not in runs.columns}
    df = runs.assign(**missing)
    if "optimizer_name" not in df.columns:
        df = df.assign(optimizer_name=df["optimizer"])
    return df


def _num(g: pd.DataFrame, col: str) -> pd.Series:
    """Column ``col`` as floats (``NaN`` where missing or not a number)."""
    if col not in g.columns:
        return pd.Series(math.nan, index=g.index, dtype=float)
    return pd.to_numeric(g[col], errors="coerce").astype(float)


def _thresholds(g: pd.DataFrame) -> list[tuple[float, str]]:
    """(threshold, ``steps_to_`` column) of the runs, easy to hard; without a ``thresholds``
    column, the ``steps_to_`` columns in column order."""
    if "thresholds" not in g.columns:
        out = []
        for c in (c for c in g.columns if str(c).startswith("steps_to_")):
            try:
                out.append((float(c[len("steps_to_"):]), c))
            except ValueError:
                pass
        return out
    order: list[float] = []
    for ts in g["thresholds"]:
        for t in ts if isinstance(ts, (tuple, list)) else ():
            if t not in order:
                order.append(t)
    return [(float(t), f"steps_to_{t}") for t in order if f"steps_to_{t}" in g.columns]


def _lower_better(g: pd.DataFrame, metric: str, sense: str) -> pd.Series:
    """Per run, ``metric`` oriented so that lower is better; diverged, failed, missing or
    non-finite values are ``+inf`` (the worst)."""
    v = _criterion_values(g, metric, sense)
    return v if sense == "min" else -v


def _median(x) -> float:
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    return float(np.median(x)) if len(x) else math.nan


def _holm(p) -> np.ndarray:
    """Holm's step-down adjusted p-values (``NaN`` entries are left out of the family).

    Written out because statsmodels (``multipletests``) is not a dependency and the
    procedure is a sort and a running maximum: the i-th smallest of m p-values is multiplied
    by ``m - i`` (0-based), kept monotone and capped at 1.
    """
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, math.nan)
    idx = np.flatnonzero(~np.isnan(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


# --- 1. metric statistics ---------------------------------------------------------------------


def _bootstrap_ci(x: np.ndarray, confidence: float, n_resamples: int, seed: int, method: str):
    """Bootstrap CI of the mean of ``x``; ``NaN`` below 2 values, the point for constant data."""
    if len(x) < 2:
        return math.nan, math.nan
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BCa warns (and gives NaN) on degenerate resamples
        res = st.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                           method=method, **{_RNG_KW: np.random.default_rng(seed)})
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def metric_table(runs: pd.DataFrame, metric: str = "final_train_loss", confidence: float = 0.95,
                 n_resamples: int = 9999, seed: int = 0, method: str = "BCa") -> pd.DataFrame:
    """Per problem and optimizer (name): statistics of ``metric`` over the ``ok`` runs.

    Args:
        runs: the runs table of :func:`lrbench.load_runs`.
        metric: a column, e.g. ``final_train_loss`` or ``best_test_accuracy``.
        confidence: level of the bootstrap confidence interval of the mean.
        n_resamples: bootstrap resamples.
        seed: seeds a fresh ``numpy`` Generator for each row, so the table is reproducible
            and a row does not depend on the others.
        method: :func:`scipy.stats.bootstrap` method (``BCa``, ``percentile``, ``basic``).

    Returns:
        One row per (problem, optimizer): ``runs`` (all), ``n`` (finite values of ok runs),
        ``mean``, ``std`` (ddof 1), ``median``, ``ci_low``/``ci_high`` (``NaN`` below two values;
        the value itself when all are equal), ``diverged``, ``failed`` and ``diverged_rate``
        (diverged / all runs). Diverged and failed runs are left out of the metric statistics.
    """
    cols = ["problem", "optimizer", "metric", "runs", "n", "mean", "std", "median", "ci_low", "ci_high",
            "diverged", "failed", "diverged_rate"]
    df = _prepare(runs)
    rows = []
    for (problem, name), g in df.groupby(["problem", "optimizer_name"], sort=True):
        x = _num(g, metric)[g["status"] == "ok"].to_numpy()
        x = x[np.isfinite(x)]
        lo, hi = _bootstrap_ci(x, confidence, n_resamples, seed, method)
        diverged = int((g["status"] == "diverged").sum())
        rows.append({
            "problem": problem, "optimizer": name, "metric": metric, "runs": len(g), "n": len(x),
            "mean": float(x.mean()) if len(x) else math.nan,
            "std": float(x.std(ddof=1)) if len(x) > 1 else math.nan,
            "median": _median(x), "ci_low": lo, "ci_high": hi, "diverged": diverged,
            "failed": int(g["status"].isin(NOT_FINISHED).sum()), "diverged_rate": diverged / len(g),
        })
    return pd.DataFrame(rows, columns=cols)


# --- 2. thresholds: success, aRT, ECDF ----------------------------------------------------------


def _seconds_to(g: pd.DataFrame, col: str) -> pd.Series:
    """Seconds to reach ``t`` per run: a ``seconds_to_<t>`` column, else steps × median step time."""
    exact = f"seconds_to_{col[len('steps_to_'):]}"
    return _num(g, exact) if exact in g.columns else _num(g, col) * _num(g, "median_step_s")


def _art(reached: pd.Series, to_t: pd.Series, spent: pd.Series) -> float:
    """COCO's average running time: everything all trials spent / number of successes."""
    if not len(reached):
        return math.nan
    n = int(reached.sum())
    return float(to_t[reached].sum() + spent[~reached].sum()) / n if n else math.inf


def threshold_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per problem, optimizer (name) and threshold of the problem: success and running time.

    Every run is a trial; it succeeds when its ``steps_to_<t>`` is finite (a censored seed,
    ``NaN``, did not reach ``t`` within its ``steps``). The average running time (aRT, as in
    COCO) is the total spent by all trials, successful ones up to ``t`` and unsuccessful ones
    their whole run, divided by the number of successes; ``inf`` without success.

    Args:
        runs: the runs table of :func:`lrbench.load_runs`.

    Returns:
        One row per (problem, optimizer, threshold): ``level`` (0 = easiest of the problem),
        ``seeds``, ``successes``, ``success_rate``, ``median_steps`` and ``median_seconds`` (over
        the successes), ``art_steps`` and ``art_seconds``. Seconds follow the module
        convention (``steps_to_<t> * median_step_s`` unless ``seconds_to_<t>`` exists;
        unsuccessful trials spend ``wall_time_s``).
    """
    cols = ["problem", "optimizer", "threshold", "level", "seeds", "successes", "success_rate",
            "median_steps", "art_steps", "median_seconds", "art_seconds"]
    df = _prepare(runs)
    rows = []
    for problem, gp in df.groupby("problem", sort=True):
        levels = _thresholds(gp)
        for name, g in gp.groupby("optimizer_name", sort=True):
            spent_s = _num(g, "wall_time_s").fillna(_num(g, "steps") * _num(g, "median_step_s"))
            for level, (t, col) in enumerate(levels):
                to_t, secs = _num(g, col), _seconds_to(g, col)
                hit = to_t.notna() & np.isfinite(to_t)
                rows.append({
                    "problem": problem, "optimizer": name, "threshold": t, "level": level,
                    "seeds": len(g), "successes": int(hit.sum()), "success_rate": float(hit.mean()),
                    "median_steps": _median(to_t[hit]), "art_steps": _art(hit, to_t, _num(g, "steps")),
                    "median_seconds": _median(secs[hit]), "art_seconds": _art(hit, secs, spent_s),
                })
    return pd.DataFrame(rows, columns=cols)


def ecdf_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per problem and optimizer (name): the empirical CDF of (seed, threshold) pairs reached
    against steps, as COCO's runtime distributions.

    A pair is reached by step ``s`` when that seed's ``steps_to_<t> <= s``; the denominator is
    all pairs (seeds × the problem's thresholds), so censored pairs keep the curve below 1.

    Args:
        runs: the runs table of :func:`lrbench.load_runs`.

    Returns:
        Rows ``problem, optimizer, step, reached, pairs, fraction``: one per distinct step at
        which a pair is first reached (ties make one row with a larger jump), plus a final row at
        the budget (largest ``budget_steps``) when it lies beyond the last of them, so the curve
        runs to the end of the budget. Problems without thresholds give no rows.
    """
    cols = ["problem", "optimizer", "step", "reached", "pairs", "fraction"]
    df = _prepare(runs)
    rows = []
    for problem, gp in df.groupby("problem", sort=True):
        tcols = [c for _, c in _thresholds(gp)]
        for name, g in gp.groupby("optimizer_name", sort=True) if tcols else ():
            hits = np.sort(np.concatenate([_num(g, c).to_numpy() for c in tcols]))
            pairs, hits = len(hits), hits[np.isfinite(hits)]
            steps = np.unique(hits).tolist()
            budget = _num(g, "budget_steps").max()
            if np.isfinite(budget) and (not steps or budget > steps[-1]):
                steps.append(float(budget))
            reached = np.searchsorted(hits, steps, side="right")
            rows += [{"problem": problem, "optimizer": name, "step": s, "reached": int(r), "pairs": pairs,
                      "fraction": r / pairs} for s, r in zip(steps, reached)]
    return pd.DataFrame(rows, columns=cols)


# --- 4. pairwise significance against a reference ----------------------------------------------


def _default_reference(vals: pd.Series, names: pd.Series) -> str:
    """The tuned name (ending in ``*``) with the best mean; without tuned names, the best mean."""
    means = vals.groupby(names).mean().sort_index()
    tuned = means[[str(n).endswith("*") for n in means.index]]
    return str((tuned if len(tuned) else means).idxmin())


def _by_seed(vals: pd.Series, seeds: pd.Series) -> pd.Series | None:
    """The values indexed by seed, or ``None`` when seeds are missing or repeated."""
    if seeds.isna().any() or seeds.duplicated().any():
        return None
    return pd.Series(vals.to_numpy(), index=seeds.to_numpy()).sort_index()


def _a12(x: np.ndarray, y: np.ndarray) -> float:
    """Vargha–Delaney A12 for lower-is-better values: P(x < y) + P(x = y) / 2."""
    return float((np.less.outer(x, y).sum() + 0.5 * np.equal.outer(x, y).sum()) / (len(x) * len(y)))


def _compare(x: pd.Series, sx: pd.Series, y: pd.Series, sy: pd.Series) -> dict:
    """Test lower-is-better values ``x`` (seeds ``sx``) against the reference ``y`` (``sy``).

    Paired Wilcoxon signed-rank when both have the same set of distinct seeds, else
    Mann–Whitney U; both two-sided. ``direction`` > 0 when ``x`` is better: the signed-rank
    sum of ``y - x`` (paired) or ``A12 - 1/2``. ``min_p`` is the smallest p-value the test
    can give at these sample sizes (all pairs one way; complete separation).
    """
    px, py = _by_seed(x, sx), _by_seed(y, sy)
    out = {"n": len(x), "n_ref": len(y), "a12": _a12(x.to_numpy(), y.to_numpy())}
    if px is not None and py is not None and px.index.equals(py.index):
        d = np.array(py - px, dtype=float)
        d[np.isnan(d)] = 0.0  # both runs diverged: a tie
        nz = d[d != 0]
        out.update(test="wilcoxon", min_p=min(1.0, 2.0 / 2.0 ** len(d)),
                   direction=float(np.sum(np.sign(nz) * st.rankdata(np.abs(nz)))))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["p"] = float(st.wilcoxon(d).pvalue) if len(nz) else 1.0
    else:
        out.update(test="mannwhitneyu", min_p=min(1.0, 2.0 / math.comb(len(x) + len(y), len(x))),
                   direction=out["a12"] - 0.5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["p"] = float(st.mannwhitneyu(x, y, alternative="two-sided").pvalue)
    return out


def _verdict(row: pd.Series, alpha: float) -> str:
    if row["test"] == "":
        return "no reference"
    if row["min_p"] >= alpha:
        return "too few seeds"
    if row["p_holm"] < alpha and row["direction"] != 0:
        return "better" if row["direction"] > 0 else "worse"
    return "no significant difference"


def significance_table(runs: pd.DataFrame, metric: str = "final_train_loss", sense: str = "min",
                       reference: str | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """Per problem: each optimizer (name) against a reference optimizer on ``metric``.

    Paired Wilcoxon signed-rank test (:func:`scipy.stats.wilcoxon`) when the optimizer and the
    reference have the same set of seeds (equal seeds share initialisation and batch order),
    Mann–Whitney U (:func:`scipy.stats.mannwhitneyu`) otherwise; both two-sided. A diverged or
    failed run, or a non-finite value, counts as the worst value (``inf`` when minimising; two
    such paired runs tie). The p-values are Holm-corrected over all comparisons of the table.

    Args:
        runs: the runs table of :func:`lrbench.load_runs`.
        metric: the column compared.
        sense: ``"min"`` or ``"max"``: which values are better.
        reference: the optimizer name compared against; by default, per problem, the tuned
            baseline (name ending in ``*``) with the best mean, or the best mean of all
            names when none is tuned.
        alpha: significance level (family-wise, through Holm).

    Returns:
        One row per (problem, optimizer other than the reference): ``reference``, ``n`` and
        ``n_ref`` (runs), ``test``, ``p``, ``p_holm``, ``min_p`` (the smallest p the test can give at
        these sizes: ``2 / 2**n`` paired, ``2 / C(n + n_ref, n)`` unpaired), ``a12`` (Vargha–Delaney:
        probability that a run of the optimizer beats one of the reference, ties counting 1/2),
        ``verdict`` and its ``symbol``: ``better`` ▲ / ``worse`` ▼ when ``p_holm < alpha``,
        ``no significant difference`` ≈, ``too few seeds`` ? when ``min_p >= alpha`` (the test
        could not have rejected, so no difference is claimed), ``no reference`` when the
        reference has no run on the problem.
    """
    _check_sense(sense)
    cols = ["problem", "optimizer", "reference", "n", "n_ref", "test", "p", "p_holm", "min_p", "a12",
            "direction", "verdict", "symbol"]
    df = _prepare(runs)
    rows = []
    for problem, gp in df.groupby("problem", sort=True):
        vals = _lower_better(gp, metric, sense)
        ref = reference if reference is not None else _default_reference(vals, gp["optimizer_name"])
        is_ref = gp["optimizer_name"] == ref
        for name, g in gp[~is_ref].groupby("optimizer_name", sort=True):
            row = {"problem": problem, "optimizer": name, "reference": ref, "n": len(g), "n_ref": 0,
                   "test": "", "p": math.nan, "min_p": math.nan, "a12": math.nan, "direction": math.nan}
            if is_ref.any():
                row.update(_compare(vals[g.index], g["seed"], vals[is_ref], gp.loc[is_ref, "seed"]))
            rows.append(row)
    table = pd.DataFrame(rows, columns=cols)
    table["p_holm"] = _holm(table["p"].to_numpy(dtype=float))
    table["verdict"] = [_verdict(r, alpha) for _, r in table.iterrows()] if len(table) else []
    table["symbol"] = table["verdict"].map(_VERDICT_SYMBOLS)
    return table


# --- 5. ranks across problems ---------------------------------------------------------------------


@dataclass
class RankResult:
    """The outcome of :func:`rank_table`.

    Attributes:
        table: per (problem, optimizer): ``value`` (mean metric over seeds, failures as the
            worst value) and ``rank`` on that problem (1 = best, ties share the average rank).
        mean_ranks: per optimizer: ``mean_rank`` over problems, best first.
        problems: N, the number of problems ranked.
        optimizers: k, the optimizers present on every problem.
        statistic: Friedman's chi-square (tie-corrected), ``NaN`` when not computed.
        p: its p-value.
        cd: Nemenyi's critical difference of mean ranks at ``alpha``.
        alpha: the level.
        reason: why the Friedman test is ``NaN`` (empty when it was computed).
    """

    table: pd.DataFrame
    mean_ranks: pd.DataFrame
    problems: int = 0
    optimizers: int = 0
    statistic: float = math.nan
    p: float = math.nan
    cd: float = math.nan
    alpha: float = 0.05
    reason: str = ""
    dropped: list[str] = field(default_factory=list)


def _nemenyi_cd(k: int, n: int, alpha: float) -> float:
    """Nemenyi's CD = q_alpha sqrt(k (k + 1) / (6 N)), q_alpha the studentized range / sqrt 2."""
    if k < 2 or n < 1:
        return math.nan
    q = st.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(k * (k + 1) / (6 * n)))


def _friedman(means: pd.DataFrame) -> tuple[float, float, str]:
    n, k = means.shape
    if k < 3 or n < 2:
        return math.nan, math.nan, f"Friedman needs >= 3 optimizers and >= 2 problems (have {k} and {n})"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = st.friedmanchisquare(*means.to_numpy().T)
    if not np.isfinite(res.pvalue):
        return math.nan, math.nan, "all optimizers tie on every problem"
    return float(res.statistic), float(res.pvalue), ""


def rank_table(runs: pd.DataFrame, metric: str = "final_train_loss", sense: str = "min",
               alpha: float = 0.05) -> RankResult:
    """Ranks of the optimizers (names) across problems, Friedman test and Nemenyi CD.

    Per problem, each optimizer's mean ``metric`` over its runs (a diverged or failed run, or a
    missing value, counts as the worst value, so the mean is then the worst) is ranked with
    :func:`scipy.stats.rankdata` (ties: average rank). Only names present on every problem
    are ranked (the others are listed in ``dropped``). :func:`scipy.stats.friedmanchisquare`
    tests whether the mean ranks differ (it needs >= 3 optimizers and >= 2 problems); two
    optimizers differ by Nemenyi's post-hoc test when their mean ranks differ by more than
    ``cd``, with ``q_alpha`` from :func:`scipy.stats.studentized_range` at infinite degrees of
    freedom (Demšar, 2006).

    Args:
        runs: the runs table of :func:`lrbench.load_runs`.
        metric: the column ranked.
        sense: ``"min"`` or ``"max"``.
        alpha: level of the Nemenyi critical difference.

    Returns:
        A :class:`RankResult`.
    """
    _check_sense(sense)
    df = _prepare(runs)
    vals = _lower_better(df, metric, sense)
    wide = vals.groupby([df["problem"], df["optimizer_name"]]).mean().unstack()
    means = wide.dropna(axis=1)
    ranks = means.copy()
    if means.size:  # scipy.stats.rankdata, problem by problem
        ranks[:] = np.apply_along_axis(st.rankdata, 1, means.to_numpy())
    sign = 1.0 if sense == "min" else -1.0
    table = pd.DataFrame({"value": sign * means.stack(), "rank": ranks.stack()}).reset_index()
    table.columns = ["problem", "optimizer", "value", "rank"]
    mean_ranks = ranks.mean(axis=0).sort_values().rename("mean_rank").rename_axis("optimizer").reset_index()
    stat, p, reason = _friedman(means)
    n, k = means.shape
    return RankResult(table=table, mean_ranks=mean_ranks, problems=n, optimizers=k, statistic=stat, p=p,
                      cd=_nemenyi_cd(k, n, alpha), alpha=alpha, reason=reason,
                      dropped=sorted(set(wide.columns) - set(means.columns)))


# --- 6. performance profiles ------------------------------------------------------------------------


def performance_profile(runs: pd.DataFrame, measure: str = "steps", level: int | None = 0,
                        taus=None) -> pd.DataFrame:
    """Dolan–Moré performance profiles on the cost of reaching a threshold.

    An *instance* is a problem and one of its thresholds. The cost of an optimizer (name) on
    an instance is its aRT (:func:`threshold_table`): it uses every seed, censored ones
    included, and is ``inf`` only when no seed reached the threshold (a median over seeds
    would ignore how many seeds failed as long as half succeeded). The ratio ``r`` is the
    cost over the best cost on the instance (``inf`` when unsolved, or when the optimizer has no
    run there); ``rho(tau)`` is the fraction of instances with ``r <= tau``. Instances that no
    optimizer solved stay in the denominator.

    Args:
        runs: the runs table of :func:`lrbench.load_runs`.
        measure: ``"steps"`` (steps to threshold) or ``"seconds"`` (time to threshold, see the
            module notes).
        level: which threshold of each problem: 0 the easiest, -1 the hardest; ``None`` uses
            every threshold of every problem as an instance.
        taus: the grid of ``tau``; by default every distinct finite ratio (and 1), i.e. the
            steps of the profile.

    Returns:
        A long table ``optimizer, tau, rho, measure, instances``.
    """
    if measure not in ("steps", "seconds"):
        raise ValueError(f"invalid measure: {measure!r} (must be 'steps' or 'seconds')")
    cols = ["optimizer", "tau", "rho", "measure", "instances"]
    tt = threshold_table(runs)
    if level is not None and len(tt):
        depth = tt.groupby("problem")["level"].transform("max") + 1
        tt = tt[tt["level"] == (level if level >= 0 else depth + level)]
    if tt.empty:
        return pd.DataFrame(columns=cols)
    cost = tt.pivot_table(index=["problem", "threshold"], columns="optimizer", values=f"art_{measure}",
                          aggfunc="first", dropna=False).fillna(math.inf)
    c, best = cost.to_numpy(), cost.min(axis=1).to_numpy()[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(~np.isfinite(c), math.inf, np.where(c == best, 1.0, c / best))
    grid = np.unique(np.append(ratio[np.isfinite(ratio)], 1.0)) if taus is None else np.asarray(taus, float)
    rho = (ratio[:, :, None] <= grid[None, None, :]).mean(axis=0)
    return pd.DataFrame([{"optimizer": name, "tau": float(t), "rho": float(r), "measure": measure,
                          "instances": len(c)}
                         for name, row in zip(cost.columns, rho) for t, r in zip(grid, row)], columns=cols)


# --- 7. cost -----------------------------------------------------------------------------------------


def cost_table(runs: pd.DataFrame, baseline: str = "sgd", n_params: Mapping[str, int] | None = None) -> pd.DataFrame:
    """Per problem and optimizer (name): what a step costs.

    Args:
        runs: the runs table of :func:`lrbench.load_runs`.
        baseline: the optimizer *key* whose step time is the unit (``sgd``).
        n_params: optional problem key -> number of trainable parameters, for the optimizer
            state per parameter (the runs table does not record it); ``NaN`` without it.

    Returns:
        One row per (problem, optimizer): ``runs``, ``median_step_s`` (median over runs of
        their median step time), ``step_time_ratio`` (over the same for the baseline's runs on
        the problem; ``NaN`` without them), ``forward_per_step`` and ``backward_per_step``
        (pooled: total oracle calls / total steps of the runs that record them),
        ``peak_memory_bytes`` and ``state_bytes`` (largest over runs),
        ``state_bytes_per_param``. Step times are only comparable on one device.
    """
    cols = ["problem", "optimizer", "runs", "median_step_s", "step_time_ratio", "forward_per_step",
            "backward_per_step", "peak_memory_bytes", "state_bytes", "state_bytes_per_param"]
    df = _prepare(runs)
    rows = []
    for problem, gp in df.groupby("problem", sort=True):
        base = _median(_num(gp, "median_step_s")[gp["optimizer"] == baseline])
        n = (n_params or {}).get(problem, math.nan)
        for name, g in gp.groupby("optimizer_name", sort=True):
            step_s, steps, state = _median(_num(g, "median_step_s")), _num(g, "steps"), _num(g, "state_bytes").max()
            rows.append({"problem": problem, "optimizer": name, "runs": len(g), "median_step_s": step_s,
                         "step_time_ratio": step_s / base if base > 0 else math.nan,
                         "forward_per_step": _per_step(_num(g, "forward"), steps),
                         "backward_per_step": _per_step(_num(g, "backward"), steps),
                         "peak_memory_bytes": _num(g, "peak_memory_bytes").max(), "state_bytes": state,
                         "state_bytes_per_param": state / n if n and n > 0 else math.nan})
    return pd.DataFrame(rows, columns=cols)


def _per_step(calls: pd.Series, steps: pd.Series) -> float:
    ok = np.isfinite(calls) & np.isfinite(steps) & (steps > 0)
    return float(calls[ok].sum() / steps[ok].sum()) if ok.any() else math.nan
