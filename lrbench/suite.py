"""Suite files: declarative TOML naming problems × optimizers × hyper-parameters × seeds.

Format (``problems/default.toml`` is the embedded default)::

    name = "default"          # optional; the file's stem otherwise
    seeds = 5                 # N (seeds 0..N-1) or an explicit list [0, 1, 7]
    device = "auto"           # auto | cpu | cuda

    [[problems]]
    key = "mnist_logreg"      # a registered problem; other keys are its options,
    steps = 600               # except steps / eval_every, which override its budget

    [[optimizers]]
    key = "sgd"               # a registered optimizer (or package.module:Class);
    lr = 0.1                  # other keys are its hyper-parameters
    tune = { lr = [1e-3, 1e-2, 1e-1] }        # a search space: the run named sgd* uses the
    [optimizers.on.beale]     # per-problem overrides of those hyper-parameters
    lr = 0.001                # (and of tune)

    [tune]                    # the tuning protocol (optional; these are its defaults)
    seeds = [1000, 1001, 1002]          # a count N means 1000 .. 1000+N-1
    # criterion = "final_train_loss"    # default: each problem's own; sense = "min" | "max"

    [robustness]              # the LR-robustness sweep (optional; defaults shown)
    low = 1e-4
    high = 1.0
    per_decade = 2
    seeds = [2000, 2001, 2002]          # a count N means 2000 .. 2000+N-1

A search space maps a hyper-parameter to a list of values, or to a log grid
``{ low = 1e-4, high = 1.0, per_decade = 2 }``; several hyper-parameters are crossed.

Every name is checked before anything runs: an unknown key, a malformed file or a
hyper-parameter an optimizer rejects raises :class:`SuiteError` with a one-line message.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Iterable

import torch

from lrbench.registry import RegistryError, optimizer_class, problem_class
from lrbench.runner import build_optimizer
from lrbench.spec import (
    Budget,
    OptimizerSpec,
    ProblemSpec,
    RobustnessSweep,
    RunConfig,
    Suite,
    SuiteEntry,
    TuningProtocol,
    log_grid,
)
from lrbench.tuning import grid_points

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["SuiteError", "load_suite", "suite_names", "select", "check_configs"]

DEFAULT = "default"


class SuiteError(ValueError):
    """A suite that cannot be run; ``str()`` is one line."""


def _suite_dir() -> Path:
    """``lrbench/suites`` in an installed wheel (pyproject maps ``problems/`` there), else
    the checkout's ``problems/`` beside the package (source tree or editable install)."""
    here = Path(__file__).resolve().parent
    installed = here / "suites"
    return installed if installed.is_dir() else here.parent / "problems"


def _packaged() -> dict[str, Path]:
    return {p.stem: p for p in sorted(_suite_dir().glob("*.toml"))}


def suite_names() -> list[str]:
    """Names of the suites that ship with lrbench."""
    return sorted(_packaged())


def load_suite(ref: str | None = None, validate: bool = True) -> Suite:
    """Load a suite by name (a shipped suite) or by the path of a TOML file.

    With ``validate=False`` the optimizer keys are looked up but no optimizer is built; call
    :func:`check_configs` on the runs about to start instead (building the first
    ``torch.optim`` optimizer imports ``torch._dynamo``, seconds that a re-run which has
    nothing left to do should not pay)."""
    ref = ref or DEFAULT
    path = Path(ref)
    if ref.endswith(".toml") or path.exists():
        if not path.is_file():
            raise SuiteError(f"no suite file {ref}")
        text, stem, where = path.read_text(), path.stem, str(path)
    else:
        shipped = _packaged()
        if ref not in shipped:
            raise SuiteError(f"unknown suite {ref!r}; shipped suites: {', '.join(sorted(shipped))}")
        text, stem, where = shipped[ref].read_text(), ref, f"suite {ref}"
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{where}: malformed TOML: {exc}") from None
    return parse_suite(doc, stem, where, validate)


def _seeds(value: Any, where: str, first: int = 0) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return tuple(range(first, first + value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value):
        return tuple(value)
    raise SuiteError(f"{where}: invalid seeds: {value!r} (a count >= 1 or a list of integers >= 0)")


def _table_list(doc: dict, name: str, where: str) -> list[dict]:
    items = doc.get(name)
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise SuiteError(f"{where}: needs at least one [[{name}]] table")
    for item in items:
        if not isinstance(item.get("key"), str):
            raise SuiteError(f"{where}: every [[{name}]] table needs key = \"...\"")
    return items


def parse_suite(doc: dict, stem: str, where: str, validate: bool = True) -> Suite:
    """Turn a parsed TOML document into a validated :class:`Suite`."""
    unknown = set(doc) - {"name", "seeds", "device", "problems", "optimizers", "tune", "robustness"}
    if unknown:
        raise SuiteError(f"{where}: unknown top-level key {sorted(unknown)[0]!r}")
    name = doc.get("name", stem)
    if not isinstance(name, str) or not name or "/" in name:
        raise SuiteError(f"{where}: invalid name: {name!r} (a non-empty string without '/')")
    seeds = _seeds(doc.get("seeds", 5), where)
    device = doc.get("device", "auto")
    if device not in ("auto", "cpu", "cuda"):
        raise SuiteError(f"{where}: invalid device: {device!r} (auto, cpu or cuda)")
    problems = [_problem(p, where) for p in _table_list(doc, "problems", where)]
    optimizers = []
    for o in _table_list(doc, "optimizers", where):
        o = dict(o)
        key, on = o.pop("key"), o.pop("on", {})
        if not isinstance(on, dict) or not all(isinstance(v, dict) for v in on.values()):
            raise SuiteError(f"{where}: [optimizers.on.<problem>] must be tables")
        optimizers.append((key, o, on))
    suite = build_suite(name, problems, optimizers, seeds, device, validate)
    return dataclasses.replace(suite, tuning=_tuning(doc.get("tune", {}), where),
                               robustness=_robustness(doc.get("robustness"), where))


def _fields(table: Any, allowed: set[str], where: str, what: str) -> dict:
    if not isinstance(table, dict):
        raise SuiteError(f"{where}: [{what}] must be a table")
    unknown = set(table) - allowed
    if unknown:
        raise SuiteError(f"{where}: unknown key {sorted(unknown)[0]!r} in [{what}]")
    return table


def _tuning(table: Any, where: str) -> TuningProtocol:
    t = _fields(table, {"seeds", "criterion", "sense"}, where, "tune")
    seeds = _seeds(t["seeds"], f"{where} [tune]", first=1000) if "seeds" in t else TuningProtocol.seeds
    criterion, sense = t.get("criterion"), t.get("sense")
    if criterion is not None and not (isinstance(criterion, str) and criterion.startswith(("final_", "best_"))):
        raise SuiteError(f"{where}: invalid criterion: {criterion!r} (final_<metric> or best_<metric>)")
    if sense is not None and (sense not in ("min", "max") or criterion is None):
        raise SuiteError(f"{where}: invalid sense: {sense!r} ('min' or 'max', with a criterion)")
    return TuningProtocol(seeds, criterion, sense)


def _robustness(table: Any, where: str) -> RobustnessSweep | None:
    if table is None:
        return None
    t = dict(_fields(table, {"low", "high", "per_decade", "seeds"}, where, "robustness"))
    if "seeds" in t:
        t["seeds"] = _seeds(t["seeds"], f"{where} [robustness]", first=2000)
    try:
        sweep = RobustnessSweep(**t)
        sweep.grid  # noqa: B018 - validates low, high, per_decade
    except (TypeError, ValueError) as exc:
        raise SuiteError(f"{where} [robustness]: {exc}") from None
    return sweep


def _space(key: str, table: Any) -> dict[str, tuple] | None:
    """A search space from TOML: name -> list of values, or -> {low, high, per_decade}."""
    if table is None:
        return None
    if not isinstance(table, dict) or not table:
        raise SuiteError(f"optimizer {key}: tune must be a table of hyper-parameter = [values]")
    space = {}
    for name, values in table.items():
        if isinstance(values, dict):
            bad = set(values) - {"low", "high", "per_decade"}
            if bad or not {"low", "high"} <= set(values):
                raise SuiteError(f"optimizer {key}: tune.{name} must be a list or {{low, high, per_decade}}")
            try:
                values = list(log_grid(values["low"], values["high"], values.get("per_decade", 2)))
            except (TypeError, ValueError) as exc:
                raise SuiteError(f"optimizer {key}: tune.{name}: {exc}") from None
        if not isinstance(values, list) or not values:
            raise SuiteError(f"optimizer {key}: tune.{name} must be a non-empty list of values")
        space[name] = tuple(dict.fromkeys(values))
    return space


def _problem(p: dict, where: str) -> tuple[ProblemSpec, Budget]:
    p = dict(p)
    key = p.pop("key")
    budget_over = {k: p.pop(k) for k in ("steps", "eval_every") if k in p}
    try:
        problem = problem_class(key)(**p)
        base = problem.budget
        budget = Budget(budget_over.get("steps", base.steps), budget_over.get("eval_every", base.eval_every))
    except RegistryError as exc:
        raise SuiteError(str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise SuiteError(f"problem {key}: {exc}") from None
    return problem.spec, budget


def build_suite(name: str, problems: Iterable[tuple[ProblemSpec, Budget]],
                optimizers: Iterable[tuple[str, dict, dict]], seeds: tuple[int, ...], device: str,
                validate: bool = True) -> Suite:
    """Cross problems with optimizers (applying per-problem overrides); look up each key and,
    with ``validate``, check each optimizer spec by building it on a dummy parameter."""
    problems = list(problems)
    entries = []
    for key, hparams, on in optimizers:
        stray = set(on) - {p.key for p, _ in problems}
        if stray:
            raise SuiteError(f"optimizer {key}: overrides for {sorted(stray)[0]!r}, which is not a problem of the suite")
        for prob, budget in problems:
            merged = {**hparams, **on.get(prob.key, {})}
            space = _space(key, merged.pop("tune", None))
            spec = OptimizerSpec(key, merged)
            if validate:
                check_optimizer(spec)
                for point in grid_points(space or {}):
                    check_optimizer(OptimizerSpec(key, {**merged, **point}))
            else:
                try:
                    optimizer_class(key)
                except RegistryError as exc:
                    raise SuiteError(str(exc)) from None
            entries.append(SuiteEntry(prob, budget, spec, space))
    return Suite(name, tuple(entries), tuple(seeds), device)


def check_optimizer(spec: OptimizerSpec) -> None:
    """Raise :class:`SuiteError` if the spec's key or hyper-parameters are invalid."""
    try:
        build_optimizer(spec.key, [torch.zeros(1, requires_grad=True)], spec.hparams, steps_per_epoch=1,
                        total_steps=1)
    except RegistryError as exc:
        raise SuiteError(str(exc)) from None
    except (TypeError, ValueError) as exc:
        msg = str(exc).replace("__init__() ", "")
        raise SuiteError(f"optimizer {spec.name}: {msg}") from None


def check_configs(configs: Iterable[RunConfig]) -> None:
    """:func:`check_optimizer` for each distinct optimizer spec among ``configs``."""
    seen = set()
    for config in configs:
        if config.optimizer not in seen:
            seen.add(config.optimizer)
            check_optimizer(config.optimizer)


def select(suite: Suite, problems: list[str] | None = None, optimizers: list[str] | None = None,
           seeds: int | None = None, device: str | None = None) -> Suite:
    """Restrict a suite to some problem / optimizer keys (a registered key that the suite
    lacks is added with its defaults), and override its seeds or device."""
    entries = list(suite.entries)
    if problems:
        have = {e.problem.key for e in entries}
        for key in problems:
            if key not in have:
                spec, budget = _problem({"key": key}, "--problems")
                opts = list(dict.fromkeys(e.optimizer.key for e in suite.entries))
                entries += [SuiteEntry(spec, budget, OptimizerSpec(o)) for o in opts]
        entries = [e for e in entries if e.problem.key in problems]
    if optimizers:
        have = {e.optimizer.key for e in entries}
        cells = list(dict.fromkeys((e.problem, e.budget) for e in entries))
        for key in optimizers:
            if key not in have:
                check_optimizer(OptimizerSpec(key))
                entries += [SuiteEntry(p, b, OptimizerSpec(key)) for p, b in cells]
        entries = [e for e in entries if e.optimizer.key in optimizers]
    new_seeds = tuple(range(seeds)) if seeds is not None else suite.seeds
    if seeds is not None and seeds < 1:
        raise SuiteError(f"invalid --seeds: {seeds} (must be >= 1)")
    return dataclasses.replace(suite, entries=tuple(entries), seeds=new_seeds, device=device or suite.device)
