"""Fixtures shared by the command-line tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lrbench.cli import main


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
