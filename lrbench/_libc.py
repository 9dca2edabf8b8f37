"""The C library, for the few glibc and Linux calls lrbench makes (``mallopt``, ``malloc_trim``,
``prctl``); no other module of lrbench loads it."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def libc() -> ctypes.CDLL | None:
    """The C library, loaded once per process (``find_library`` runs ``ldconfig``), or None."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"))
    except (OSError, TypeError):
        return None
