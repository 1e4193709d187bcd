"""Giving freed memory back to the system between the phases of a long command.

After a phase frees hundreds of MB of mid-sized arrays (the float fan-in of the lowering), glibc
keeps the pages in its heap: they are reused only by allocations of a similar size, and the next
phase (a ref-fixed run of large, mmap-sized tensors) stacks on top of them. ``malloc_trim(0)``
returns every free page, so a command's peak resident set is its largest phase's, not their sum
(at 640×640 `emsdeploy fit` shed 0.6 GB this way). Elsewhere than glibc it only collects cycles.
"""

from __future__ import annotations

import ctypes
import gc
from functools import cache

__all__ = ["release_freed"]


@cache
def _trim():  # glibc's malloc_trim among the process's symbols, or None (musl, macOS, Windows)
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)
    except (OSError, TypeError):
        return None


def release_freed() -> None:
    """Collect reference cycles, then hand the allocator's free pages back to the system."""
    gc.collect()
    trim = _trim()
    if trim is not None:
        trim(0)
