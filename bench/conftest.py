"""Shared settings of the timing benchmarks (``pytest bench``; see the README's "Timing")."""

from __future__ import annotations

import os

import pytest

from lrbench.memory import steady_heap

os.environ.setdefault("OMP_NUM_THREADS", "1")


steady_heap()  # step times from the heap, as in lrbench's workers (see lrbench.memory.steady_heap)

# The quick subset that .ci/run gates on every submission (`-m "not full"`): step costs on the
# MLP on the CPU (the larger model: its ratios depend least on the machine's Python speed) for
# these optimizers, the harness overhead and the report. Everything else is marked `full`.
# No Adam-family step here: its ratio to an sgd step is the CPU's, not lrbench's (torch's own
# Adam was 1.23 sgd steps on the development VM and 1.55 on the CI machine, 2026-12-03); their
# floors below (each method against torch's Adam step) gate them instead.
QUICK_KEYS = {"sgd", "sgd_hd", "lqa", "tlr", "fd_first_order", "_fixture:FixtureSGD"}
# ... and the cost floors of one method of each family (bench/test_cost_floor.py), on the MLP
QUICK_FLOORS = {"sgd_hd", "adam_hd", "l4_adam", "sps", "sls", "lqa", "fd_first_order", "fd_newton", "tlr",
                "tlr_naive", "marthe"}


def pytest_configure(config):
    config.addinivalue_line("markers", "full: left out of the quick CI subset (-m 'not full')")


def pytest_collection_modifyitems(items):
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "key" not in params:
            continue
        if item.originalname == "test_floor":
            quick = params["key"] in QUICK_FLOORS and params["model_name"] == "mlp"
        else:
            quick = params["key"] in QUICK_KEYS and params.get("model_name") == "mlp" and params.get("device") == "cpu"
        if not quick:
            item.add_marker(pytest.mark.full)
