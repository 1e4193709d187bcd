"""Simulators of the IR: float reference, Loihi fixed point, and synaptic-operation counting.

They stand on :mod:`emsdeploy.ir` and never import the exporters.
"""

from emsdeploy.ir.runtime import Trace

from .base import Backend
from .ref_fixed import RefFixed
from .ref_float import RefFloat

__all__ = ["Backend", "RefFixed", "RefFloat", "Trace"]
