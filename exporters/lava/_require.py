"""Whether lava-nc can be imported here, and the one error that says how to get it.

Lava (lava-nc 0.10.0, lava-dl 0.6.0) was archived upstream and installs on Python 3.10 only, so
it is an optional extra: exporting a Lava folder is data and needs no Lava, building or running
a Lava network does. Every place that imports ``lava`` calls :func:`require_lava` first, so a
missing Lava is one line (exit status 2 from the CLI), never a ``ModuleNotFoundError`` traceback.
This module itself imports nothing from Lava (a test pins where ``lava`` is imported).
"""

from __future__ import annotations

import importlib.util
from functools import cache

from emsdeploy.errors import BackendUnavailableError

__all__ = ["LAVA_MISSING", "lava_available", "prepare_lava_import", "require_lava"]

LAVA_MISSING = (
    "lava-nc is not installed (it runs on Python 3.10 only: `make setup`, "
    "or `pip install 'emsdeploy[lava]'` under Python 3.10)"
)


@cache
def lava_available() -> bool:
    """True when lava-nc's runtime and lava-dl's netx can be found (found, not imported: cheap)."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in ("lava.magma", "lava.lib.dl"))
    except (ImportError, ValueError):  # a parent package that is missing or broken
        return False


def require_lava() -> None:
    """Raise :class:`BackendUnavailableError` (one line, exit 2) unless Lava can be imported."""
    if not lava_available():
        raise BackendUnavailableError(LAVA_MISSING)
    prepare_lava_import()


def prepare_lava_import() -> None:
    """Let lava-nc's first import set the ``fork`` start method it runs with.

    lava-nc calls ``multiprocessing.set_start_method("fork")`` when first imported, which raises
    "context has already been set" in a process that already used multiprocessing (a Queue, a
    DataLoader with workers, a library that asked for the start method). Where that earlier use
    left the platform default, ``fork``, clearing it changes nothing and lets Lava's call pass;
    any other method is the user's choice, and Lava cannot run under it: one line, exit 2.
    """
    import multiprocessing as mp
    import sys

    if "lava.magma.runtime.message_infrastructure.multiprocessing" in sys.modules:
        return  # Lava is imported: it set its method already
    method = mp.get_start_method(allow_none=True)
    if method == "fork":
        mp.set_start_method(None, force=True)
    elif method is not None:
        raise BackendUnavailableError(
            f"lava-nc runs its processes with the 'fork' start method; this process chose {method!r}"
        )
