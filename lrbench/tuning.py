"""The tuning protocol and the LR-robustness sweep, expressed as runs.

What every seed paper does for its baselines ("we tuned the learning rate of Adam on a
grid"), made explicit and costed:

1. :func:`tuning_configs`: each suite entry that declares a search space runs every point of
   it with the tuning seeds (disjoint from the main seeds), in the suite ``<name>/tune``.
   Those runs are stored like any other run; the suite name marks them as tuning runs.
2. :func:`picks`: per entry, :func:`lrbench.stats.select_best` over its tuning runs, by the
   protocol's criterion (the problem's own by default: final train loss, or a validation
   metric for classification). A diverged or failed tuning run counts as the worst value.
3. :func:`main_configs`: the suite's runs, where a tuned entry runs twice: with its
   hyper-parameters as declared (the default result) and with the pick, named ``key*``.

:func:`robustness_configs` is the LR-robustness sweep: each optimizer of the suite at every
point of a log grid of its (initial) learning rate, in the suite ``<name>/robustness``;
:func:`lrbench.stats.lr_robustness` reduces those runs to a width in decades.

Every function here is pure: suites and DataFrames in, run configs or tables out.
"""

from __future__ import annotations

import inspect
import itertools

import pandas as pd

from lrbench.registry import RegistryError, optimizer_class, problem_class
from lrbench.spec import OptimizerSpec, RunConfig, Suite, SuiteEntry
from lrbench.stats import select_best

__all__ = [
    "TUNE_SUFFIX", "ROBUSTNESS_SUFFIX", "TuningError", "lr_param", "criterion_for", "grid_points",
    "tuning_configs", "picks", "main_configs", "robustness_configs", "tuning_costs",
]

TUNE_SUFFIX = "/tune"
ROBUSTNESS_SUFFIX = "/robustness"
DEFAULT_CRITERION = ("final_train_loss", "min")


class TuningError(ValueError):
    """Tuning cannot decide (its runs are missing); ``str()`` is one line."""


def lr_param(cls: type) -> str | None:
    """The hyper-parameter that is the optimizer's (initial) learning rate: the class
    attribute ``lr_param`` when it sets one (``None`` for a method without a learning rate),
    else ``"lr"`` when ``__init__`` takes it."""
    declared = getattr(cls, "lr_param", ...)
    if declared is not ...:
        return declared
    return "lr" if "lr" in inspect.signature(cls.__init__).parameters else None


def criterion_for(problem_key: str, suite: Suite) -> tuple[str, str]:
    """The tuning criterion and its sense on a problem: the suite's, else the problem's
    ``tune_criterion``, else final train loss (min)."""
    if suite.tuning.criterion is not None:
        return suite.tuning.criterion, suite.tuning.sense or "min"
    try:
        return tuple(getattr(problem_class(problem_key), "tune_criterion", DEFAULT_CRITERION))  # type: ignore[return-value]
    except RegistryError:
        return DEFAULT_CRITERION


def grid_points(space: dict[str, tuple]) -> list[dict]:
    """The cross product of a search space, hyper-parameters in sorted order."""
    names = sorted(space)
    return [dict(zip(names, values)) for values in itertools.product(*(space[n] for n in names))]


def _entry_tuning(suite: Suite, e: SuiteEntry) -> list[RunConfig]:
    out = []
    for point in grid_points(e.tune or {}):
        spec = OptimizerSpec(e.optimizer.key, {**e.optimizer.hparams, **point})
        out += [RunConfig(suite.name + TUNE_SUFFIX, e.problem, spec, seed, suite.device, e.budget)
                for seed in suite.tuning.seeds]
    return out


def tuning_configs(suite: Suite) -> list[RunConfig]:
    """Every tuning run of the suite (grid points × tuning seeds), without duplicates."""
    return list(dict.fromkeys(c for e in suite.entries if e.tune for c in _entry_tuning(suite, e)))


def picks(suite: Suite, runs: pd.DataFrame) -> dict[SuiteEntry, pd.Series]:
    """For each tuned entry, the :func:`~lrbench.stats.select_best` row of its tuning runs
    (``best_hparams``, ``value``, ``tuning_runs``, ``tuning_seconds``, ...).

    Raises:
        TuningError: some tuning run of an entry is not in ``runs``.
    """
    out = {}
    by_key = runs.set_index("run_key", drop=False) if len(runs) else runs
    for e in suite.entries:
        if not e.tune:
            continue
        keys = [c.run_key for c in _entry_tuning(suite, e)]
        missing = [k for k in keys if k not in by_key.index]
        if missing:
            raise TuningError(f"tuning of {e.optimizer.key} on {e.problem.name}: {len(missing)} of "
                              f"{len(keys)} tuning runs are not recorded")
        criterion, sense = criterion_for(e.problem.key, suite)
        if criterion not in by_key.columns:
            raise TuningError(f"tuning of {e.optimizer.key} on {e.problem.name}: no recorded metric "
                              f"{criterion!r} to select by")
        best = select_best(by_key.loc[keys].reset_index(drop=True), criterion, sense)
        out[e] = best.iloc[0]
    return out


def main_configs(suite: Suite, runs: pd.DataFrame) -> list[RunConfig]:
    """The suite's main runs: :meth:`Suite.configs`, plus for each tuned entry its pick under
    the name ``key*`` (the pick comes from the tuning runs in ``runs``)."""
    chosen = picks(suite, runs)
    configs = []
    for e in suite.entries:
        specs = [e.optimizer]
        if e in chosen:
            specs.append(OptimizerSpec(e.optimizer.key, dict(chosen[e]["best_hparams"]), tuned=True))
        configs += [RunConfig(suite.name, e.problem, s, seed, suite.device, e.budget)
                    for s in specs for seed in suite.seeds]
    return list(dict.fromkeys(configs))


def robustness_configs(suite: Suite) -> list[RunConfig]:
    """The LR-robustness sweep of the suite (empty when it asks for none): each entry's
    optimizer, its other hyper-parameters as declared, at every grid value of its (initial)
    learning rate (:func:`lr_param`); optimizers without one are left out."""
    sweep = suite.robustness
    if sweep is None:
        return []
    configs = []
    for e in suite.entries:
        param = lr_param(optimizer_class(e.optimizer.key))
        if param is None:
            continue
        for lr in sweep.grid:
            spec = OptimizerSpec(e.optimizer.key, {**e.optimizer.hparams, param: lr})
            configs += [RunConfig(suite.name + ROBUSTNESS_SUFFIX, e.problem, spec, seed, suite.device, e.budget)
                        for seed in sweep.seeds]
    return list(dict.fromkeys(configs))


def tuning_costs(runs: pd.DataFrame) -> pd.DataFrame:
    """What each tuned result cost, from a runs DataFrame holding main and tuning runs.

    One row per (suite, problem name, optimizer key) that has tuning runs: ``tuning_runs``
    (grid points × tuning seeds), ``tuning_seconds`` (their summed step time), ``grid_points``
    and ``picked`` (the hyper-parameters of the ``key*`` main runs, as a name)."""
    tune = runs[runs["suite"].str.endswith(TUNE_SUFFIX)]
    rows = []
    for (suite, problem, key), g in tune.groupby(["suite", "problem_name", "optimizer"], sort=True):
        main_suite = suite[: -len(TUNE_SUFFIX)]
        tuned = runs[(runs["suite"] == main_suite) & (runs["problem_name"] == problem)
                     & (runs["optimizer_name"] == f"{key}*")]
        picked = OptimizerSpec(key, tuned["hparams"].iloc[0]).name if len(tuned) else None
        rows.append({"suite": main_suite, "problem_name": problem, "optimizer": key,
                     "tuning_runs": int(len(g)), "tuning_seconds": float(g["wall_time_s"].sum()),
                     "grid_points": int(g["optimizer_name"].nunique()), "picked": picked})
    return pd.DataFrame(rows, columns=["suite", "problem_name", "optimizer", "tuning_runs", "tuning_seconds",
                                       "grid_points", "picked"])
