"""Hyper-parameter validation shared by every optimizer in the registry.

Each check raises ``ValueError("invalid <name>: <value> (<rule>)")``. Comparisons are
written so that NaN fails every range check (``not lo <= v``), which the conformance
tests rely on: every numeric hyper-parameter in ``defaults`` must reject NaN.
"""

from __future__ import annotations

import math


def _num(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"invalid {name}: {value!r} (must be a number)")
    return float(value)


def nonneg(name: str, value) -> float:
    """Check ``0 <= value < inf``."""
    v = _num(name, value)
    if not (0.0 <= v < math.inf):
        raise ValueError(f"invalid {name}: {value!r} (must be >= 0)")
    return v


def positive(name: str, value) -> float:
    """Check ``0 < value < inf``."""
    v = _num(name, value)
    if not (0.0 < v < math.inf):
        raise ValueError(f"invalid {name}: {value!r} (must be > 0)")
    return v


def in_range(name: str, value, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> float:
    """Check ``lo <= value <= hi`` (either end optionally open)."""
    v = _num(name, value)
    ok_lo = lo < v if lo_open else lo <= v
    ok_hi = v < hi if hi_open else v <= hi
    if not (ok_lo and ok_hi):
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ValueError(f"invalid {name}: {value!r} (must be in {left}{lo}, {hi}{right})")
    return v


def positive_int(name: str, value) -> int:
    """Check ``value`` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"invalid {name}: {value!r} (must be an integer >= 1)")
    return value
