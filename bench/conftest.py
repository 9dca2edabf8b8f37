"""Shared settings of the timing benchmarks (``pytest bench``; see the README's "Timing")."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

# The quick subset that .ci/run gates on every submission (`-m "not full"`): step costs on the
# MLP on the CPU (the larger model: its ratios depend least on the machine's Python speed) for
# these optimizers, the harness overhead and the report. Everything else is marked `full`.
QUICK_KEYS = {"sgd", "adam", "sgd_hd", "l4_adam", "lqa", "tlr", "fd_first_order", "_fixture:FixtureSGD"}


def pytest_configure(config):
    config.addinivalue_line("markers", "full: left out of the quick CI subset (-m 'not full')")


def pytest_collection_modifyitems(items):
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "key" in params and not (params["key"] in QUICK_KEYS and params["model_name"] == "mlp"
                                    and params["device"] == "cpu"):
            item.add_marker(pytest.mark.full)
