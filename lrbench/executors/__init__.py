"""Executors of a sweep: in this process, a pool of local worker processes, or Ray.

:func:`make_executor` picks one from a suite's :class:`~lrbench.spec.Execution`.
"""

from lrbench.executors._base import Executor, Task, cpu_cores
from lrbench.executors._choose import default_workers, make_executor

__all__ = ["Executor", "Task", "cpu_cores", "default_workers", "make_executor"]
