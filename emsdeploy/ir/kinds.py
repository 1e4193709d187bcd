"""Value kinds: what travels on an IR edge (DESIGN.md §6)."""

from __future__ import annotations

from enum import Enum

__all__ = ["Kind"]


class Kind(str, Enum):
    """``spike``: binary events. ``integer``: integer-valued spikes 0..D (SpikeYOLO's I-LIF):
    a synapse group multiplies the weight by the value, or a spike-driven core receives it as
    D binary spikes. ``current``: real-valued input to a neuron (a sum of synaptic outputs and
    biases). ``analog``: input data and non-spiking activations."""

    SPIKE = "spike"
    INTEGER = "integer"
    CURRENT = "current"
    ANALOG = "analog"

    def __str__(self) -> str:
        return self.value
