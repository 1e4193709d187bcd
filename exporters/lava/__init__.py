"""Lava exporter: a quantized IR graph as a lava-nc process network in Loihi fixed point.

    float IR -> simplify -> partition(lava) -> quantize -> align_delays -> DRC ->
        a chain:        network.net (netx.hdf5.Network loads it) + host.lava.h5
        anything else:  network.lava.h5 (format emsdeploy.lava-dag) + :func:`load`
    plus quantized.emsir, mapping.{txt,json} and quantization.{txt,json}

Entry points (imported on first use, so that Lava's worker processes, forked from
:mod:`.runner`, never import torch): :func:`lower`, :func:`build`, :func:`export`,
:func:`load`, :func:`export_cli`. See docs/lava.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build", "export", "export_cli", "load", "lower"]


def lower(*args: Any, **kwargs: Any) -> Any:
    """See :func:`.api.lower`."""
    from .api import lower as f

    return f(*args, **kwargs)


def build(*args: Any, **kwargs: Any) -> Any:
    """See :func:`.api.build`."""
    from .api import build as f

    return f(*args, **kwargs)


def export(*args: Any, **kwargs: Any) -> Any:
    """See :func:`.api.export`."""
    from .api import export as f

    return f(*args, **kwargs)


def load(*args: Any, **kwargs: Any) -> Any:
    """See :func:`.loader.load`."""
    from .loader import load as f

    return f(*args, **kwargs)


def export_cli(*args: Any, **kwargs: Any) -> Any:
    """See :func:`.api.export_cli`."""
    from .api import export_cli as f

    return f(*args, **kwargs)
