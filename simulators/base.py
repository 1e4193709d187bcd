"""The interface every simulator implements; the run contract itself is :mod:`emsdeploy.ir.runtime`.

Backends (the float and fixed-point reference simulators, the ONNX runtime, Lava) all answer
``run(x, time_steps=None, record=None) -> Trace``, so verification can compare any two.
"""

from __future__ import annotations

import abc
from typing import Any

from emsdeploy.ir.runtime import RecordSpec, Trace

__all__ = ["Backend"]


class Backend(abc.ABC):
    """A way to run an IR graph for T steps."""

    name: str = "backend"

    @abc.abstractmethod
    def run(self, x: Any, time_steps: int | None = None, record: RecordSpec = None) -> Trace:
        """Run on ``x`` (direct: ``[B, C, H, W]``; frames: ``[B, T, C, H, W]``)."""
