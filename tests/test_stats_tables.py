"""The comparison tables of lrbench.stats on hand-built runs tables.

Expectations are computed by hand (noted next to them) or by calling scipy directly on the
fixture values; the fixtures include censored seeds, ties, diverged and failed runs.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from lrbench.stats import (
    cost_table,
    ecdf_table,
    metric_table,
    performance_profile,
    rank_table,
    significance_table,
    threshold_table,
)
from lrbench.store import RUN_COLUMNS

NAN = math.nan
DEFAULTS = {
    "suite": "s", "problem": "p", "problem_name": "P", "hparams": {}, "seed": 0, "status": "ok",
    "steps": 100, "budget_steps": 100, "wall_time_s": 1.0, "median_step_s": 0.01,
    "peak_memory_bytes": 1000, "state_bytes": 0, "forward": 100, "backward": 100,
    "thresholds": (1.0, 0.1), "final_train_loss": NAN, "steps_to_1.0": NAN, "steps_to_0.1": NAN,
}


def _frame(*rows: dict) -> pd.DataFrame:
    """Runs from partial rows: ``name`` is the optimizer name, its key the part before ``[``/``*``."""
    out = []
    for r in rows:
        r = dict(r)
        name = r.pop("name")
        key = name.split("[")[0].rstrip("*")
        out.append({**DEFAULTS, "optimizer": key, "optimizer_name": name, **r})
    return pd.DataFrame(out)


def _row(table: pd.DataFrame, **match) -> pd.Series:
    sel = np.logical_and.reduce([table[k] == v for k, v in match.items()])
    assert sel.sum() == 1, f"{match}: {sel.sum()} rows"
    return table[sel].iloc[0]


# --- metric_table -----------------------------------------------------------------------------


def test_metric_table_statistics_ci_and_divergence():
    a = [0.5, 0.3, 0.3, 0.9]  # a tie; mean 0.5, median 0.4, std sqrt(0.24 / 3)
    runs = _frame(
        *[{"name": "a", "seed": i, "final_train_loss": v} for i, v in enumerate(a)],
        {"name": "a", "seed": 4, "status": "diverged", "final_train_loss": 0.01},  # left out
        {"name": "a", "seed": 5, "status": "failed", "final_train_loss": 0.0},     # left out
        {"name": "b", "seed": 0, "final_train_loss": 0.7},
        {"name": "c", "seed": 0, "final_train_loss": 0.2}, {"name": "c", "seed": 1, "final_train_loss": 0.2},
        {"name": "d", "seed": 0, "status": "diverged", "final_train_loss": 1e9},
    )
    table = metric_table(runs, n_resamples=999, seed=7)
    ra = _row(table, optimizer="a")
    assert (ra["runs"], ra["n"], ra["diverged"], ra["failed"]) == (6, 4, 1, 1)
    assert ra["mean"] == pytest.approx(0.5) and ra["median"] == pytest.approx(0.4)
    assert ra["std"] == pytest.approx(math.sqrt(0.08))
    assert ra["diverged_rate"] == pytest.approx(1 / 6)
    ci = st.bootstrap((np.array(a),), np.mean, n_resamples=999, method="BCa",
                      rng=np.random.default_rng(7)).confidence_interval
    assert (ra["ci_low"], ra["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert ra["ci_low"] < 0.5 < ra["ci_high"]
    again = metric_table(runs, n_resamples=999, seed=7)
    assert _row(again, optimizer="a")["ci_low"] == ra["ci_low"]  # seeded: reproducible
    rb = _row(table, optimizer="b")  # one value: no spread, no interval
    assert rb["n"] == 1 and rb["mean"] == 0.7 and math.isnan(rb["std"]) and math.isnan(rb["ci_low"])
    rc = _row(table, optimizer="c")  # constant values: the interval is the point
    assert (rc["ci_low"], rc["ci_high"], rc["std"]) == (0.2, 0.2, 0.0)
    rd = _row(table, optimizer="d")  # all diverged
    assert rd["n"] == 0 and math.isnan(rd["mean"]) and rd["diverged_rate"] == 1.0


def test_metric_table_of_a_missing_metric_is_nan():
    runs = _frame({"name": "a", "final_train_loss": 0.1})
    row = metric_table(runs, metric="best_test_accuracy").iloc[0]
    assert row["n"] == 0 and math.isnan(row["mean"]) and row["metric"] == "best_test_accuracy"


# --- threshold_table and ecdf_table -------------------------------------------------------------


def _censored_runs() -> pd.DataFrame:
    return _frame(
        {"name": "a", "seed": 0, "steps_to_1.0": 10, "steps_to_0.1": 50, "median_step_s": 0.01, "wall_time_s": 1.0},
        {"name": "a", "seed": 1, "steps_to_1.0": 20, "median_step_s": 0.02, "wall_time_s": 2.0},
        {"name": "a", "seed": 2, "status": "diverged", "steps": 60, "wall_time_s": 0.6},  # censored at 60
        {"name": "b", "seed": 0},  # never reaches anything
    )


def test_threshold_table_success_and_average_running_time():
    table = threshold_table(_censored_runs())
    easy = _row(table, optimizer="a", threshold=1.0)
    assert (easy["level"], easy["seeds"], easy["successes"]) == (0, 3, 2)
    assert easy["success_rate"] == pytest.approx(2 / 3)
    assert easy["median_steps"] == 15
    assert easy["art_steps"] == pytest.approx((10 + 20 + 60) / 2)       # censored seed adds its 60 steps
    assert easy["median_seconds"] == pytest.approx((10 * 0.01 + 20 * 0.02) / 2)
    assert easy["art_seconds"] == pytest.approx((0.1 + 0.4 + 0.6) / 2)  # censored seed adds its wall time
    hard = _row(table, optimizer="a", threshold=0.1)
    assert (hard["level"], hard["successes"], hard["median_steps"]) == (1, 1, 50)
    assert hard["art_steps"] == pytest.approx(50 + 100 + 60)
    assert hard["art_seconds"] == pytest.approx(0.5 + 2.0 + 0.6)
    never = _row(table, optimizer="b", threshold=1.0)
    assert never["successes"] == 0 and never["success_rate"] == 0.0
    assert never["art_steps"] == math.inf and math.isnan(never["median_steps"])


def test_threshold_table_prefers_measured_seconds():
    runs = _censored_runs().assign(**{"seconds_to_1.0": [0.3, 0.5, NAN, NAN]})
    easy = _row(threshold_table(runs), optimizer="a", threshold=1.0)
    assert easy["median_seconds"] == pytest.approx(0.4)
    assert easy["art_seconds"] == pytest.approx((0.3 + 0.5 + 0.6) / 2)


def test_ecdf_table_counts_seed_threshold_pairs():
    runs = pd.concat([_censored_runs(), _frame({"name": "a", "seed": 3, "steps_to_1.0": 10})], ignore_index=True)
    table = ecdf_table(runs)
    a = table[table["optimizer"] == "a"]
    # 4 seeds x 2 thresholds = 8 pairs; hits at 10, 10 (a tie: one row), 20, 50; the budget row at 100
    assert a["step"].tolist() == [10, 20, 50, 100]
    assert a["reached"].tolist() == [2, 3, 4, 4]
    assert a["fraction"].tolist() == pytest.approx([2 / 8, 3 / 8, 4 / 8, 4 / 8])
    assert set(a["pairs"]) == {8}
    b = table[table["optimizer"] == "b"]
    assert b[["step", "reached", "pairs", "fraction"]].values.tolist() == [[100, 0, 2, 0.0]]


# --- significance_table -------------------------------------------------------------------------


def _significance_runs() -> pd.DataFrame:
    ref = [1.0 + 0.1 * i for i in range(8)]
    rows = []
    for i, r in enumerate(ref):  # problem p, seeds 0..7
        rows += [{"name": "sgd*", "seed": i, "final_train_loss": r},
                 {"name": "adam*", "seed": i, "final_train_loss": 2.0},       # tuned, worse on every seed
                 {"name": "low[lr=1]", "seed": i, "final_train_loss": 0.5},   # lowest mean but not tuned
                 {"name": "other", "seed": 100 + i, "final_train_loss": 0.2 + 0.01 * i}]  # unpaired seeds
        if i < 7:
            rows.append({"name": "new", "seed": i, "final_train_loss": r - 0.01 * (i + 1)})
    rows.append({"name": "new", "seed": 7, "status": "diverged", "final_train_loss": 0.0})  # counts as inf
    for i in range(5):  # problem q, seeds 0..4
        rows += [{"problem": "q", "name": "sgd*", "seed": i, "final_train_loss": 1.0 + 0.1 * i},
                 {"problem": "q", "name": "new", "seed": i, "final_train_loss": 0.5 + 0.09 * i}]
    rows += [{"problem": "q", "name": "tiny", "seed": s, "final_train_loss": v} for s, v in ((0, 5.0), (1, 6.0))]
    return _frame(*rows)


def test_significance_tests_pairs_directions_and_holm():
    table = significance_table(_significance_runs())
    assert set(table["reference"]) == {"sgd*"}  # the best tuned, not the lower untuned low[lr=1]
    assert len(table) == 6
    adam, low = _row(table, problem="p", optimizer="adam*"), _row(table, problem="p", optimizer="low[lr=1]")
    new, other = _row(table, problem="p", optimizer="new"), _row(table, problem="p", optimizer="other")
    qnew, tiny = _row(table, problem="q", optimizer="new"), _row(table, problem="q", optimizer="tiny")
    # exact two-sided p-values by hand: all 8 paired differences one way -> 2 / 2**8; complete
    # separation of 8 vs 8 -> 2 / C(16, 8); 5 pairs -> 2 / 2**5; 2 vs 5 -> 2 / C(7, 2)
    assert [adam["test"], low["test"], new["test"], qnew["test"]] == ["wilcoxon"] * 4
    assert [other["test"], tiny["test"]] == ["mannwhitneyu"] * 2
    assert adam["p"] == pytest.approx(2 / 256) and low["p"] == pytest.approx(2 / 256)
    assert other["p"] == pytest.approx(2 / 12870) and qnew["p"] == pytest.approx(2 / 32)
    assert tiny["p"] == pytest.approx(2 / 21)
    # new: 7 seeds better by 0.01 .. 0.07 (ranks 1..7), seed 7 diverged (inf, rank 8, worse):
    # P(T <= 8) over 2**8 sign patterns = 25 subsets of 1..8 with sum <= 8 -> p = 50 / 256
    assert new["p"] == pytest.approx(50 / 256)
    runs = _significance_runs()
    pnew = runs[(runs.problem == "p") & (runs.optimizer_name == "new")].sort_values("seed")
    pref = runs[(runs.problem == "p") & (runs.optimizer_name == "sgd*")].sort_values("seed")
    x = np.where(pnew["status"] == "ok", pnew["final_train_loss"], np.inf)
    assert new["p"] == pytest.approx(st.wilcoxon(pref["final_train_loss"].to_numpy() - x).pvalue)
    poth = runs[(runs.problem == "p") & (runs.optimizer_name == "other")]["final_train_loss"]
    assert other["p"] == pytest.approx(st.mannwhitneyu(poth, pref["final_train_loss"]).pvalue)
    # Holm by hand, m = 6: sorted p = other, adam/low (tied), qnew, tiny, new
    assert other["p_holm"] == pytest.approx(6 * 2 / 12870)
    assert adam["p_holm"] == pytest.approx(5 * 2 / 256)
    assert low["p_holm"] == pytest.approx(5 * 2 / 256)     # 4 * 2/256 is lifted to the running max
    assert qnew["p_holm"] == pytest.approx(3 * 2 / 32)
    assert tiny["p_holm"] == pytest.approx(2 * 2 / 21)
    assert new["p_holm"] == pytest.approx(50 / 256)
    assert (table.sort_values("p")["p_holm"].diff().dropna() >= 0).all()
    # A12 (probability of beating the reference): new_i < ref_j iff j >= i, so 8+7+...+2 = 35 of 64
    assert new["a12"] == pytest.approx(35 / 64)
    assert (adam["a12"], low["a12"], other["a12"], tiny["a12"]) == (0.0, 1.0, 1.0, 0.0)
    verdicts = {(r.problem, r.optimizer): (r.verdict, r.symbol) for r in table.itertuples()}
    assert verdicts == {
        ("p", "adam*"): ("worse", "▼"), ("p", "low[lr=1]"): ("better", "▲"),
        ("p", "new"): ("no significant difference", "≈"), ("p", "other"): ("better", "▲"),
        ("q", "new"): ("too few seeds", "?"), ("q", "tiny"): ("too few seeds", "?"),
    }
    assert qnew["min_p"] == pytest.approx(2 / 32) and tiny["min_p"] == pytest.approx(2 / 21)
    assert _row(table, problem="p", optimizer="adam*")["min_p"] == pytest.approx(2 / 256)


def test_significance_ties_given_reference_and_sense():
    runs = _frame(*[{"name": "a", "seed": s, "final_train_loss": v} for s, v in ((0, 1.0), (1, 2.0), (2, 3.0))],
                  *[{"name": "b", "seed": s, "final_train_loss": v} for s, v in ((3, 2.0), (4, 2.0), (5, 4.0))])
    row = significance_table(runs, reference="b").iloc[0]
    # a < b in 5 of 9 pairs (1<2, 1<2, 1<4, 2<4, 3<4), ties 2 (2=2 twice): (5 + 2/2) / 9
    assert (row["optimizer"], row["test"], row["a12"]) == ("a", "mannwhitneyu", pytest.approx(6 / 9))
    assert row["p"] == pytest.approx(st.mannwhitneyu([1.0, 2.0, 3.0], [2.0, 2.0, 4.0]).pvalue)
    assert row["verdict"] == "too few seeds"  # 2 / C(6, 3) = 0.1
    up = significance_table(runs, sense="max", reference="b").iloc[0]
    assert up["a12"] == pytest.approx(3 / 9)  # a > b: 3 > 2 twice, plus the two ties
    assert significance_table(runs).iloc[0]["reference"] == "a"  # nothing tuned: best mean
    missing = significance_table(runs, reference="nope")
    assert set(missing["verdict"]) == {"no reference"} and missing["p"].isna().all()


def test_significance_identical_runs_and_shared_divergence_tie():
    rows = [{"name": n, "seed": s, "final_train_loss": 1.0 + s} for n in ("a*", "b") for s in range(7)]
    rows += [{"name": n, "seed": 7, "status": "diverged"} for n in ("a*", "b")]  # inf vs inf: a tie
    row = significance_table(_frame(*rows)).iloc[0]
    assert (row["reference"], row["test"], row["p"], row["a12"]) == ("a*", "wilcoxon", 1.0, 0.5)
    assert row["verdict"] == "no significant difference"


# --- rank_table ---------------------------------------------------------------------------------


def _rank_runs() -> pd.DataFrame:
    means = {"P1": {"A": 1.0, "B": 2.0, "C": 3.0, "D": 0.5}, "P2": {"A": 1.0, "B": 1.0, "C": 2.0},
             "P3": {"A": 2.0, "B": 1.0, "C": 0.1}}
    rows = [{"problem": p, "name": n, "final_train_loss": v} for p, d in means.items() for n, v in d.items()]
    rows.append({"problem": "P3", "name": "C", "seed": 1, "status": "diverged"})  # C's mean on P3: inf
    return _frame(*rows)


def test_rank_table_ranks_friedman_and_nemenyi():
    res = rank_table(_rank_runs())
    assert (res.problems, res.optimizers, res.dropped, res.reason) == (3, 3, ["D"], "")
    ranks = {(r.problem, r.optimizer): r.rank for r in res.table.itertuples()}
    assert ranks == {("P1", "A"): 1, ("P1", "B"): 2, ("P1", "C"): 3, ("P2", "A"): 1.5, ("P2", "B"): 1.5,
                     ("P2", "C"): 3, ("P3", "A"): 2, ("P3", "B"): 1, ("P3", "C"): 3}
    assert _row(res.table, problem="P3", optimizer="C")["value"] == math.inf
    assert dict(zip(res.mean_ranks["optimizer"], res.mean_ranks["mean_rank"])) == {"A": 1.5, "B": 1.5, "C": 3.0}
    # Friedman by hand: 12N/(k(k+1)) sum R^2 - 3N(k+1) = 3 * 13.5 - 36 = 4.5; tie correction
    # 1 - (2^3 - 2) / (N k (k^2 - 1)) = 11/12; chi-square with 2 df: sf(x) = exp(-x / 2)
    assert res.statistic == pytest.approx(4.5 * 12 / 11)
    assert res.p == pytest.approx(math.exp(-4.5 * 12 / 11 / 2))
    assert res.statistic == pytest.approx(st.friedmanchisquare([1, 1, 2], [2, 1, 1], [3, 2, 1e9]).statistic)
    # Nemenyi: q_0.05 for k = 3 is 2.343 in Demsar (2006), Table 5
    assert res.cd == pytest.approx(2.343 * math.sqrt(3 * 4 / (6 * 3)), rel=1e-3)


def test_rank_table_reasons_and_sense():
    runs = _rank_runs()
    two = rank_table(runs[runs["optimizer_name"].isin(["A", "B"])])
    assert two.optimizers == 2 and math.isnan(two.statistic) and ">= 3 optimizers" in two.reason
    one = rank_table(runs[runs["problem"] == "P1"])
    assert one.problems == 1 and math.isnan(one.p) and ">= 2 problems" in one.reason
    assert one.mean_ranks["optimizer"].tolist() == ["D", "A", "B", "C"]
    up = rank_table(runs[runs["problem"] == "P1"], sense="max")
    assert up.mean_ranks["optimizer"].tolist() == ["C", "B", "A", "D"]
    assert _row(up.table, optimizer="C")["value"] == 3.0


# --- performance_profile ------------------------------------------------------------------------


def _profile_runs() -> pd.DataFrame:
    one = {"thresholds": (1.0,)}
    return _frame(
        {"problem": "P1", "name": "A", "steps_to_1.0": 10, "median_step_s": 0.1, **one},
        {"problem": "P1", "name": "B", "steps_to_1.0": 20, "median_step_s": 0.5, **one},
        {"problem": "P1", "name": "C", "median_step_s": 0.01, **one},  # unsolved
        {"problem": "P2", "name": "A", "steps_to_1.0": 20, "median_step_s": 0.1, **one},
        {"problem": "P2", "name": "A", "seed": 1, "status": "diverged", "steps": 20, "wall_time_s": 2.0, **one},
        {"problem": "P2", "name": "B", "steps_to_1.0": 20, "median_step_s": 0.5, **one},
        {"problem": "P2", "name": "C", "steps_to_1.0": 30, "median_step_s": 0.01, **one},
    )


def _rho(profile: pd.DataFrame, name: str) -> list[float]:
    return profile[profile["optimizer"] == name].sort_values("tau")["rho"].tolist()


def test_performance_profile_on_steps_and_seconds():
    runs = _profile_runs()
    steps = performance_profile(runs)
    # aRT steps: P1 A 10, B 20, C inf; P2 A (20 + 20) / 1 = 40, B 20, C 30
    # ratios: P1 A 1, B 2, C inf; P2 A 2, B 1, C 1.5
    assert sorted(set(steps["tau"])) == [1.0, 1.5, 2.0]
    assert _rho(steps, "A") == [0.5, 0.5, 1.0]
    assert _rho(steps, "B") == [0.5, 0.5, 1.0]
    assert _rho(steps, "C") == [0.0, 0.5, 0.5]
    secs = performance_profile(runs, measure="seconds")
    # aRT seconds: P1 A 1, B 10, C inf; P2 A (2 + 2) / 1 = 4, B 10, C 0.3
    assert sorted(set(secs["tau"])) == pytest.approx([1.0, 10.0, 4 / 0.3, 10 / 0.3])
    assert _rho(secs, "A") == [0.5, 0.5, 1.0, 1.0]
    assert _rho(secs, "B") == [0.0, 0.5, 0.5, 1.0]
    assert _rho(secs, "C") == [0.5, 0.5, 0.5, 0.5]
    grid = performance_profile(runs, level=None, taus=[1.0, 1.75])
    assert _rho(grid, "C") == [0.0, 0.5] and set(grid["instances"]) == {2}
    with pytest.raises(ValueError, match="invalid measure"):
        performance_profile(runs, measure="joules")


def test_performance_profile_picks_the_level_per_problem():
    runs = _censored_runs()  # thresholds (1.0, 0.1): a reaches both, b neither
    hard = performance_profile(runs, level=-1)
    assert _rho(hard, "a") == [1.0] and _rho(hard, "b") == [0.0]


# --- cost_table --------------------------------------------------------------------------------


def test_cost_table_ratios_oracle_calls_and_state():
    runs = _frame(
        {"name": "sgd[lr=0.1]", "seed": 0, "median_step_s": 0.01},
        {"name": "sgd[lr=0.1]", "seed": 1, "median_step_s": 0.02},
        {"name": "sgd[lr=0.1]", "seed": 2, "median_step_s": 0.06},  # median 0.02, mean 0.03
        {"name": "adam", "seed": 0, "median_step_s": 0.03, "forward": 100, "backward": 100, "steps": 100,
         "peak_memory_bytes": 1000, "state_bytes": 80},
        {"name": "adam", "seed": 1, "median_step_s": 0.05, "forward": 100, "backward": 50, "steps": 50,
         "peak_memory_bytes": 3000, "state_bytes": 80},
        {"problem": "q", "name": "adam", "median_step_s": 0.05, "forward": NAN},
    )
    table = cost_table(runs, n_params={"p": 10})
    adam = _row(table, problem="p", optimizer="adam")
    assert adam["median_step_s"] == pytest.approx(0.04)
    assert adam["step_time_ratio"] == pytest.approx(0.04 / 0.02)  # sgd's median step time: 0.02
    assert adam["forward_per_step"] == pytest.approx(200 / 150)
    assert adam["backward_per_step"] == pytest.approx(150 / 150)
    assert (adam["peak_memory_bytes"], adam["state_bytes"], adam["state_bytes_per_param"]) == (3000, 80, 8.0)
    assert _row(table, problem="p", optimizer="sgd[lr=0.1]")["step_time_ratio"] == pytest.approx(1.0)
    q = _row(table, problem="q", optimizer="adam")  # no sgd, no forward count, no parameter count
    assert math.isnan(q["step_time_ratio"]) and math.isnan(q["forward_per_step"])
    assert math.isnan(q["state_bytes_per_param"]) and q["backward_per_step"] == 1.0


# --- partial tables ----------------------------------------------------------------------------


def _all_tables(runs: pd.DataFrame) -> list:
    return [metric_table(runs, n_resamples=99), threshold_table(runs), ecdf_table(runs), significance_table(runs),
            rank_table(runs), performance_profile(runs), performance_profile(runs, measure="seconds"),
            cost_table(runs)]


def test_empty_runs_give_empty_tables():
    empty = pd.DataFrame(columns=RUN_COLUMNS)
    out = _all_tables(empty)
    for t in out[:4] + out[5:]:
        assert isinstance(t, pd.DataFrame) and t.empty
    assert out[4].table.empty and out[4].reason


def test_partial_runs_do_not_raise():
    bare = pd.DataFrame({"optimizer_name": ["a", "a", "b"], "final_train_loss": [1.0, 2.0, None]})
    metric, thr, ecdf, sig, ranks, prof, _, cost = _all_tables(bare)
    assert metric["n"].tolist() == [2, 0]
    assert thr.empty and ecdf.empty and prof.empty
    assert _row(sig, optimizer="b")["reference"] == "a" and ranks.reason
    assert cost["median_step_s"].isna().all()
    single = _frame({"name": "a*", "final_train_loss": 0.3, "steps_to_1.0": 5},
                    {"name": "b", "status": "failed", "final_train_loss": NAN})
    metric, thr, ecdf, sig, ranks, prof, _, cost = _all_tables(single)
    assert _row(sig, optimizer="b")["verdict"] == "too few seeds"
    assert _row(thr, optimizer="b", threshold=1.0)["art_steps"] == math.inf
