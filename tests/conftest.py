"""Fixtures shared by the command-line tests, and the README's third-party method.

The README's "Adding a method" example is executed here, as a user's module would be, so it is
registered before the test modules are collected: every registry-wide test
(``test_optimizer_conformance.py``, ``test_optimizer_core.py``, ...) runs it too.
"""

from __future__ import annotations

import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

from lrbench.cli import main


def _readme_example() -> types.ModuleType:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    code = re.search(r"<!-- example: .*? -->\n```python\n(.*?)```", text, re.S).group(1)
    module = types.ModuleType("mypkg_normalized_momentum")
    sys.modules[module.__name__] = module
    exec(compile(code, "README.md (Adding a method)", "exec"), module.__dict__)  # noqa: S102
    return module


README_EXAMPLE = _readme_example()


@dataclass
class Done:
    """What one ``lrbench`` call returned and printed."""

    returncode: int
    stdout: str
    stderr: str

    def error_line(self) -> str:
        """The one line of a bad-input exit (status 2, one line on stderr, no traceback)."""
        assert self.returncode == 2, (self.returncode, self.stderr)
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1, self.stderr
        assert lines[0].startswith("lrbench: error: ") and "Traceback" not in self.stderr
        return lines[0]


@pytest.fixture
def lrbench_cli(capsys, monkeypatch):
    """``lrbench ARGS`` in this process (a subprocess costs a full torch import)."""

    def call(*args, cwd):
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        rc = main(list(args))
        out = capsys.readouterr()
        return Done(rc, out.out, out.err)

    return call
