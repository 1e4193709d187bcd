"""Value kinds: what travels on an IR edge (DESIGN.md §6)."""

from __future__ import annotations

from enum import Enum

__all__ = ["Kind"]


class Kind(str, Enum):
    """``spike``: binary events. ``current``: real-valued input to a neuron (a sum of synaptic
    outputs and biases). ``analog``: input data and non-spiking activations."""

    SPIKE = "spike"
    CURRENT = "current"
    ANALOG = "analog"

    def __str__(self) -> str:
        return self.value
