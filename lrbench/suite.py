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

    [execution]               # how the sweep runs (optional; not part of any run key)
    workers = 2               # runs at a time (default: one per core, or per GPU on CUDA)
    # threads = 1             # torch threads per run (default: the cores shared out)
    # backend = "ray"         # local (default) | ray, with address = "auto" | "HOST:PORT"
    timeout_s = 600           # per-run wall-time limit: status timeout
    max_memory_mb = 4096      # per-run resident-memory limit: failed, "memory limit ..."
    # resources = { cpu = 1, gpu = 0.25 }   # Ray resources of one run

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
import difflib
import inspect
import math
import re
import sys
from pathlib import Path
from typing import Any, Iterable

import torch

from lrbench.registry import RegistryError, optimizer_class, problem_class
from lrbench.core import build_optimizer
from lrbench.spec import (
    Budget,
    OptimizerSpec,
    ProblemSpec,
    Execution,
    RobustnessSweep,
    RunConfig,
    MAX_GRID,
    Suite,
    canonical_json,
    SuiteEntry,
    TuningProtocol,
    log_grid,
)
from lrbench.tuning import grid_points

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["SuiteError", "load_suite", "suite_names", "select", "check_configs", "with_execution", "MAX_SEEDS",
           "MAX_RUNS"]

DEFAULT = "default"
MAX_SEEDS = 10_000
"""The most seeds a suite, its tuning or its robustness sweep may list."""
MAX_SEED = 2**63 - 1
"""The largest seed (what SQLite's INTEGER and torch's generators hold)."""
MAX_RUNS = 100_000
"""The most runs one suite may plan (every run is planned before the first starts)."""
MAX_NAME = 200
"""The longest suite name, in characters."""
MAX_DEPTH = 32
"""How deeply hyper-parameter values may nest (lists and tables)."""


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
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SuiteError(f"cannot read suite file {ref}: {exc}") from None
        stem, where = path.stem, str(path)
    else:
        shipped = _packaged()
        if ref not in shipped:
            raise SuiteError(f"unknown suite {ref!r}; shipped suites: {', '.join(sorted(shipped))}")
        text, stem, where = shipped[ref].read_text(), ref, f"suite {ref}"
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{where}: malformed TOML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise SuiteError(f"{where}: malformed TOML: nested too deeply") from None
    return parse_suite(doc, stem, where, validate)


def _shown(value: Any, width: int = 60) -> str:
    """``repr(value)``, cut to ``width`` characters for a one-line message."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _seeds(value: Any, where: str, first: int = 0) -> tuple[int, ...]:
    """A count N (seeds ``first .. first+N-1``) or a list of seeds; a seed listed twice runs once."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_SEEDS:
        return tuple(range(first, first + value))
    if (isinstance(value, list) and 1 <= len(value) <= MAX_SEEDS
            and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEED for s in value)):
        return tuple(dict.fromkeys(value))
    raise SuiteError(f"{where}: invalid seeds: {_shown(value)} (a count from 1 to {MAX_SEEDS:,}, or a list of at most "
                     f"{MAX_SEEDS:,} integers from 0 to 2**63-1)")


def _check_name(name: Any, where: str) -> str:
    if (not isinstance(name, str) or not name.strip() or "/" in name or len(name) > MAX_NAME
            or not name.isprintable()):
        raise SuiteError(f"{where}: invalid name: {_shown(name)} (1 to {MAX_NAME} printable characters, no '/')")
    return name


def _check_value(name: str, value: Any, where: str, depth: int = 0) -> None:
    """A hyper-parameter or option value must be plain data (what a run key's JSON holds)."""
    if depth > MAX_DEPTH:
        raise SuiteError(f"{where}: {name}: nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, (bool, int, float, str)):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SEED:
            raise SuiteError(f"{where}: {name}: the integer {value} is out of range (|value| < 2**63)")
        return
    if isinstance(value, list):
        for item in value:
            _check_value(name, item, where, depth + 1)
        return
    if isinstance(value, dict):
        for k, item in value.items():
            _check_value(f"{name}.{k}", item, where, depth + 1)
        return
    kind = "a TOML date or time" if hasattr(value, "isoformat") else type(value).__name__
    raise SuiteError(f"{where}: {name}: {kind} is not a valid value (numbers, strings, booleans, lists, tables)")


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
    unknown = set(doc) - {"name", "seeds", "device", "problems", "optimizers", "tune", "robustness", "execution"}
    if unknown:
        raise SuiteError(f"{where}: unknown top-level key {sorted(unknown)[0]!r}")
    name = _check_name(doc.get("name", stem), where)
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
        for k, value in {**o, **{f"on.{p}": t for p, t in on.items()}}.items():
            _check_value(f"optimizer {key}: {k}", value, where)
        optimizers.append((key, o, on))
    suite = build_suite(name, problems, optimizers, seeds, device, validate)
    return _check_size(dataclasses.replace(suite, tuning=_tuning(doc.get("tune", {}), where),
                                           robustness=_robustness(doc.get("robustness"), where),
                                           execution=_execution(doc.get("execution", {}), where)))


_EXECUTION_KEYS = {"workers", "threads", "backend", "address", "timeout_s", "max_memory_mb", "resources"}


def _execution(table: Any, where: str) -> Execution:
    t = dict(_fields(table, _EXECUTION_KEYS, where, "execution"))
    return with_execution(Execution(), where=f"{where} [execution]", **t)


def with_execution(execution: Execution, where: str = "", **changes: Any) -> Execution:
    """``execution`` with the given fields replaced (None: keep), validated: the suite file's
    ``[execution]`` table, then the command line's ``--workers`` etc. on top."""
    changes = {k: v for k, v in changes.items() if v is not None}
    if "resources" in changes:
        res = changes["resources"]
        if not isinstance(res, dict):
            raise SuiteError(f"{where}: invalid resources: {_shown(res)} (a table such as {{ cpu = 1, gpu = 0.25 }})")
        changes["resources"] = tuple(sorted(res.items()))
    try:
        return dataclasses.replace(execution, **changes)
    except (TypeError, ValueError) as exc:
        prefix = f"{where}: " if where else ""
        raise SuiteError(f"{prefix}{exc}") from None


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
        space[name] = tuple({canonical_json(x): x for x in values}.values())  # a value listed twice runs once
    return space


def _problem(p: dict, where: str) -> tuple[ProblemSpec, Budget]:
    p = dict(p)
    key = p.pop("key")
    for k, value in p.items():
        _check_value(f"problem {key}: {k}", value, where)
    budget_over = {k: p.pop(k) for k in ("steps", "eval_every") if k in p}
    problem = _build_problem(ProblemSpec(key, p))
    base = problem.budget
    try:
        budget = Budget(budget_over.get("steps", base.steps), budget_over.get("eval_every", base.eval_every))
    except ValueError as exc:
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
    # an entry listed twice ([[problems]] or [[optimizers]] repeated) runs once
    return _check_size(Suite(name, tuple(dict.fromkeys(entries)), tuple(seeds), device))


def _check_size(suite: Suite) -> Suite:
    """``suite``, or :class:`SuiteError` when it would plan more than :data:`MAX_RUNS` runs."""
    n = len(suite.entries) * len(suite.seeds)
    for e in suite.entries:
        if e.tune:
            points = math.prod(len(v) for v in e.tune.values())
            if points > MAX_GRID:
                raise SuiteError(f"optimizer {e.optimizer.key}: tune crosses {points:,} points (at most {MAX_GRID:,})")
            n += len(suite.seeds) + points * len(suite.tuning.seeds)
        if suite.robustness is not None:
            n += len(suite.robustness.grid) * len(suite.robustness.seeds)
    if n > MAX_RUNS:
        raise SuiteError(f"suite {suite.name}: {n:,} runs planned (at most {MAX_RUNS:,}; fewer seeds, "
                         "problems, optimizers or grid points)")
    return suite


_RUNNER_ARGS = {"self", "params", "steps_per_epoch", "total_steps"}


def _explain(exc: Exception, cls: type, what: str) -> str:
    """One line for an exception of ``cls(**kwargs)``: for an unknown keyword, the valid
    names and the closest one; else the exception's own first line."""
    msg = str(exc).replace("__init__() ", "").splitlines()[0] if str(exc) else type(exc).__name__
    m = re.search(r"(?:unexpected keyword argument|takes no option) '([^']*)'", msg)
    if not isinstance(exc, TypeError) or m is None:
        return msg if isinstance(exc, (TypeError, ValueError)) else f"{type(exc).__name__}: {msg}"
    valid = [n for n, p in inspect.signature(cls.__init__).parameters.items()
             if n not in _RUNNER_ARGS and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if what == "hyper-parameter":
        valid.append("schedule")
    close = difflib.get_close_matches(m.group(1), valid, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (f"unknown {what} {m.group(1)!r} (valid: {', '.join(sorted(valid)) or 'none'}){hint}")


def check_optimizer(spec: OptimizerSpec) -> torch.optim.Optimizer:
    """The optimizer of ``spec`` built on a dummy parameter, or :class:`SuiteError` if its key
    or hyper-parameters are invalid (an unknown one is named with the valid names)."""
    reserved = sorted(set(spec.hparams) & _RUNNER_ARGS)
    if reserved:
        raise SuiteError(f"optimizer {spec.name}: {reserved[0]!r} is set by the runner, not a hyper-parameter")
    try:
        cls = optimizer_class(spec.key)
        opt, _ = build_optimizer(spec.key, [torch.zeros(1, requires_grad=True)], spec.hparams, steps_per_epoch=1,
                                 total_steps=1)
    except RegistryError as exc:
        raise SuiteError(str(exc)) from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plug-in's __init__ may raise anything
        raise SuiteError(f"optimizer {spec.name}: {_explain(exc, cls, 'hyper-parameter')}") from None
    return opt


def check_configs(configs: Iterable[RunConfig]) -> None:
    """Check the runs about to start, before the first one does: :func:`check_optimizer` for
    each distinct optimizer spec; a method that needs a validation batch on a problem without
    one; and each distinct problem's data (:meth:`~lrbench.problems._base.Problem.prepare`:
    missing data is a :class:`SuiteError` that says how to get it)."""
    built: dict[OptimizerSpec, Any] = {}
    problems: dict[ProblemSpec, Any] = {}
    for config in configs:
        if config.optimizer not in built:
            built[config.optimizer] = check_optimizer(config.optimizer)
        if config.problem not in problems:
            problems[config.problem] = _build_problem(config.problem)
        if getattr(built[config.optimizer], "uses_validation", False) and not problems[config.problem].has_validation:
            raise SuiteError(f"optimizer {config.optimizer.name} needs a validation batch, which problem "
                             f"{config.problem.name} does not have (for MARTHE / RTHO set objective = \"train\")")
    for spec, problem in problems.items():
        try:
            problem.prepare()
        except FileNotFoundError as exc:
            raise SuiteError(f"problem {spec.name}: {exc}") from None


def _build_problem(spec: ProblemSpec):
    """The problem instance of ``spec``, or :class:`SuiteError` naming what is wrong."""
    try:
        return problem_class(spec.key)(**spec.options)
    except RegistryError as exc:
        raise SuiteError(str(exc)) from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plug-in's __init__ may raise anything
        raise SuiteError(f"problem {spec.name}: {_explain(exc, problem_class(spec.key), 'option')}") from None


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
    new_seeds = _seeds(seeds, "--seeds") if seeds is not None else suite.seeds
    return _check_size(dataclasses.replace(suite, entries=tuple(dict.fromkeys(entries)), seeds=new_seeds,
                                           device=device or suite.device))
