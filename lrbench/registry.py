"""Registries of optimizers and problems.

Built-in entries register themselves with the decorators below when their module is
imported (``lrbench.optimizers`` and ``lrbench.problems`` import every built-in module).
Third-party packages register through the entry-point groups ``lrbench.optimizers`` and
``lrbench.problems``: each entry point names a class (``key = "package.module:Class"``),
registered under the entry point's name. The CLI also accepts ``package.module:Class``
directly as a key.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from importlib.metadata import entry_points
from typing import Any, Callable, TypeVar

import torch

__all__ = [
    "RegistryError",
    "register_optimizer",
    "register_problem",
    "optimizer_class",
    "problem_class",
    "optimizer_keys",
    "problem_keys",
    "make_optimizer",
    "make_problem",
    "registered_class",
]

T = TypeVar("T")

_OPTIMIZERS: dict[str, type] = {}
_PROBLEMS: dict[str, type] = {}
_GROUPS = {"optimizer": ("lrbench.optimizers", _OPTIMIZERS), "problem": ("lrbench.problems", _PROBLEMS)}
_loaded: set[str] = set()


class RegistryError(KeyError):
    """An unknown or unloadable registry key. ``str()`` is a one-line message."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def _register(kind: str, key: str) -> Callable[[T], T]:
    table = _GROUPS[kind][1]

    def deco(cls: T) -> T:
        if key in table and table[key] is not cls:
            raise ValueError(f"{kind} key {key!r} is already registered to {table[key].__qualname__}")
        table[key] = cls
        cls.registry_key = key  # type: ignore[attr-defined]
        return cls

    return deco


def register_optimizer(key: str, *, adapts_lr: bool = False) -> Callable[[T], T]:
    """Class decorator: register a ``torch.optim.Optimizer`` subclass under ``key``.

    ``adapts_lr=True`` marks a method that sets its own step size (or has a schedule built
    in); the runner then refuses to compose it with a schedule.
    """
    register = _register("optimizer", key)

    def deco(cls: T) -> T:
        cls.adapts_lr = adapts_lr  # type: ignore[attr-defined]
        return register(cls)

    return deco


def register_problem(key: str) -> Callable[[T], T]:
    """Class decorator: register a problem class under ``key``."""
    return _register("problem", key)


def _load(kind: str) -> dict[str, type]:
    group, table = _GROUPS[kind]
    if kind not in _loaded:
        _loaded.add(kind)
        importlib.import_module(group)  # built-ins register on import
        for ep in entry_points(group=group):
            if ep.name not in table:
                try:
                    _register(kind, ep.name)(ep.load())
                except Exception as exc:  # a broken plug-in must not break the suite
                    table.pop(ep.name, None)
                    _BROKEN[(kind, ep.name)] = f"{type(exc).__name__}: {exc}"
    return table


_BROKEN: dict[tuple[str, str], str] = {}


def _base(kind: str) -> type:
    if kind == "optimizer":
        return torch.optim.Optimizer
    from lrbench.problems._base import Problem

    return Problem


def _import_class(kind: str, key: str, table: dict[str, type]) -> type:
    """The class named by ``key`` = ``package.module:Class``, registered under its own
    registry key when it has one (a decorated class), else under ``key`` itself.

    A subclass of a registered class inherits its parent's ``registry_key``; it is registered
    under ``key``, so that it runs (and is reported) as itself, not as its parent. The working
    folder is importable, as it is for ``python -m``, after every installed package (so it
    cannot shadow one). Any exception of the import (``SystemExit`` too) is a
    :class:`RegistryError`.
    """
    mod, _, attr = key.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        obj = getattr(importlib.import_module(mod), attr)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a broken plug-in is bad input, not a crash
        raise RegistryError(f"cannot load {kind} {key!r}: {type(exc).__name__}: {exc}") from None
    base = _base(kind)
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise RegistryError(f"cannot load {kind} {key!r}: {obj!r} is not a subclass of "
                            f"{base.__module__}.{base.__qualname__}")
    own = obj.__dict__.get("registry_key")
    if own is not None and table.get(own) is obj:
        return obj
    if key in table and table[key] is not obj:
        raise RegistryError(f"cannot load {kind} {key!r}: the name is registered to {table[key].__qualname__}")
    if kind == "optimizer":
        register_optimizer(key, adapts_lr=getattr(obj, "adapts_lr", False))(obj)
    else:
        _register(kind, key)(obj)
    return obj


def _lookup(kind: str, key: str) -> type:
    table = _load(kind)
    if key in table:
        return table[key]
    if ":" in key:  # package.module:Class
        return _import_class(kind, key, table)
    if (kind, key) in _BROKEN:
        raise RegistryError(f"{kind} {key!r} failed to load: {_BROKEN[(kind, key)]}")
    close = difflib.get_close_matches(key, table, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"valid keys: {', '.join(sorted(table))}"
    raise RegistryError(f"unknown {kind} {key!r}; {hint}")


def optimizer_class(key: str) -> type[torch.optim.Optimizer]:
    """Return the optimizer class registered under ``key`` (or ``module:Class``)."""
    return _lookup("optimizer", key)


def problem_class(key: str) -> type:
    """Return the problem class registered under ``key`` (or ``module:Class``)."""
    return _lookup("problem", key)


def registered_class(kind: str, key: str) -> type | None:
    """The class registered under ``key`` (built-ins and installed entry points), or ``None``.

    Unlike :func:`optimizer_class` / :func:`problem_class`, a ``module:Class`` key is never
    imported: readers of stored results (the report) use this, so that what a database
    contains cannot decide what code runs.
    """
    return _load(kind).get(key)


def optimizer_keys() -> list[str]:
    """Sorted keys of every registered optimizer."""
    return sorted(_load("optimizer"))


def problem_keys() -> list[str]:
    """Sorted keys of every registered problem."""
    return sorted(_load("problem"))


def make_optimizer(key: str, params: Any, **hparams: Any) -> torch.optim.Optimizer:
    """Build the optimizer registered under ``key`` over ``params``.

    Raises:
        RegistryError: unknown key (the message names the closest valid keys).
        ValueError: an invalid hyper-parameter (the message names it).
        TypeError: a hyper-parameter the optimizer does not take.
    """
    return optimizer_class(key)(params, **hparams)


def make_problem(key: str, **options: Any):
    """Build the problem registered under ``key`` with ``options`` (e.g. ``size="smoke"``)."""
    return problem_class(key)(**options)
