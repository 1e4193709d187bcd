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

__all__ = ["LAVA_MISSING", "lava_available", "require_lava"]

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
