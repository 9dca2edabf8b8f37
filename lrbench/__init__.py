"""lrbench: a benchmarking and comparison suite for learning-rate adaptation.

The public names are re-exported lazily (PEP 562), so that importing a light submodule such
as :mod:`lrbench.cli` does not import torch.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "OracleCounter": "lrbench.closure",
    "make_closure": "lrbench.closure",
    "load_curves": "lrbench.store",
    "load_runs": "lrbench.store",
    "make_optimizer": "lrbench.registry",
    "make_problem": "lrbench.registry",
    "optimizer_keys": "lrbench.registry",
    "problem_keys": "lrbench.registry",
    "register_optimizer": "lrbench.registry",
    "register_problem": "lrbench.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lrbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
