"""lrbench: a benchmarking and comparison suite for learning-rate adaptation."""

from lrbench.closure import OracleCounter, make_closure
from lrbench.store import load_curves, load_runs
from lrbench.registry import (
    make_optimizer,
    make_problem,
    optimizer_keys,
    problem_keys,
    register_optimizer,
    register_problem,
)

__version__ = "0.1.0"

__all__ = [
    "OracleCounter",
    "load_curves",
    "load_runs",
    "make_closure",
    "make_optimizer",
    "make_problem",
    "optimizer_keys",
    "problem_keys",
    "register_optimizer",
    "register_problem",
]
