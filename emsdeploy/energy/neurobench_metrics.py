"""The figures NeuroBench users know, computed from our exact counts and the IR.

NeuroBench (``neurobench`` 2.3) measures a PyTorch model with forward hooks. The same figures
follow from what an energy report already has: the counted run (:class:`SOPCounts`) and the
graph. Where the definitions agree the numbers are equal (``tests/energy/test_neurobench.py``
runs NeuroBench itself on the shipped model); docs/energy.md lists where they differ and why.

=======================  ==============================================================
figure                   here
=======================  ==============================================================
activation sparsity      1 − nonzero outputs / all outputs of every neuron population
                         (LIF and SiLU), over all steps and samples
effective ACs / MACs     synaptic ops per sample on spike / graded inputs: our exact SOPs
dense                    synaptic ops per sample if every input were nonzero (padded taps
                         reach nothing: not counted, as in NeuroBench)
parameter bytes          every stored value of the graph after BatchNorm folding
                         (weights, biases, unfolded scales and shifts, anchors)
state bytes              one membrane per neuron and one running sum per readout element
                         (what the stepwise ONNX graph carries between steps); NeuroBench
                         has no counterpart
connection sparsity      zero weights / all weights of every Conv2d
=======================  ==============================================================

Byte counts price every value at ``value_bytes`` (4: float32, the precision ref-float and the
ONNX export run at), not at the dtype a pass happened to compute in (folding uses float64).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import LIF, Conv2d, Graph, IntegerLIF, Kind, Readout, SiLUNeuron
from ..passes import fold_affine
from ..simulators.sops import SOPCounts

__all__ = ["NEUROBENCH_DEFINITIONS", "NeuroBenchMetrics", "neurobench_metrics"]

FLOAT32_BYTES = 4

NEUROBENCH_DEFINITIONS = {
    "activation_sparsity": "1 − nonzero outputs / all outputs of every neuron population (LIF, SiLU), all steps and samples",
    "effective_acs": "synaptic ops per sample on spike inputs (= total.sop_ac; zero weights count, see docs/energy.md)",
    "effective_macs": "synaptic ops per sample on graded inputs, nonzero inputs only (= total.mac)",
    "dense": "synaptic ops per sample if every input were nonzero; padded kernel taps excluded",
    "parameter_bytes": "every stored value after folding BatchNorm into its conv, at 4 bytes (float32)",
    "state_bytes": "one membrane per neuron and one running sum per readout element, at 4 bytes (float32)",
    "connection_sparsity": "zero weights / all weights of every Conv2d",
}


@dataclass(frozen=True)
class NeuroBenchMetrics:
    """NeuroBench-named figures of one counted run; counts are per sample (one frame of T steps).

    ``effective_acs`` and ``effective_macs`` are exact means over the samples (as NeuroBench
    reports them); :meth:`to_dict` rounds them as the energy report rounds its totals.
    """

    samples: int
    activation_sparsity: float
    effective_acs: float
    effective_macs: float
    dense: int
    parameters: int
    parameter_bytes: int
    state_values: int
    state_bytes: int
    weights: int
    zero_weights: int
    effective_acs_rounded: int
    effective_macs_rounded: int

    @property
    def connection_sparsity(self) -> float:
        return self.zero_weights / self.weights if self.weights else 0.0

    def to_dict(self) -> dict:
        """The ``neurobench`` section of ``energy --json`` (counts are integers)."""
        return {
            "activation_sparsity": self.activation_sparsity,
            "synaptic_operations": {
                "effective_acs": self.effective_acs_rounded,
                "effective_macs": self.effective_macs_rounded,
                "dense": self.dense,
            },
            "footprint": {
                "parameters": self.parameters,
                "parameter_bytes": self.parameter_bytes,
                "state_values": self.state_values,
                "state_bytes": self.state_bytes,
                "bytes": self.parameter_bytes + self.state_bytes,
            },
            "connection_sparsity": self.connection_sparsity,
            "weights": self.weights,
            "zero_weights": self.zero_weights,
            "definitions": dict(NEUROBENCH_DEFINITIONS),
        }


def _stored_values(graph: Graph) -> int:
    """Every array element the ops hold (weights, biases, scales, shifts, anchors)."""
    return sum(int(v.size) for n in graph for v in n.op.params().values() if isinstance(v, np.ndarray))


def neurobench_metrics(graph: Graph, counts: SOPCounts, value_bytes: int = FLOAT32_BYTES) -> NeuroBenchMetrics:
    """The NeuroBench-named figures of ``counts``, measured on ``graph`` (module docstring)."""
    n, T = counts.samples, counts.time_steps
    outputs = sum(nr.size * T * n for nr in counts.neurons)
    nonzero = sum(int(nr.nonzero.sum()) for nr in counts.neurons)  # neurons, not unit spikes of an I-LIF
    # NeuroBench's rule: only binary spikes are ACs; integer spikes (SpikeYOLO) are MACs on the
    # nonzero pairs (docs/energy.md), whatever emsdeploy's own report calls them
    ac = [r for r in counts.synapses if r.input_kind is Kind.SPIKE]
    mac = [r for r in counts.synapses if r.input_kind is not Kind.SPIKE]

    def rounded(rows: list) -> int:  # the energy report's rule: each step's mean, rounded, summed
        return int(sum(int(np.rint(r.sops / n).sum()) for r in rows))

    parameters = _stored_values(fold_affine(graph))
    state = sum(int(np.prod(graph.shape(x.name))) for x in graph.of_type(LIF, IntegerLIF, SiLUNeuron, Readout))
    convs = [x.op.weight for x in graph.of_type(Conv2d)]  # type: ignore[attr-defined]
    return NeuroBenchMetrics(
        samples=n,
        activation_sparsity=(outputs - nonzero) / outputs if outputs else 0.0,
        effective_acs=sum(int(r.sops.sum()) for r in ac) / n,
        effective_macs=sum(int(r.sops.sum()) for r in mac) / n,
        dense=int(sum(r.dense_sops for r in counts.synapses) * T),
        parameters=parameters,
        parameter_bytes=parameters * value_bytes,
        state_values=state,
        state_bytes=state * value_bytes,
        weights=int(sum(w.size for w in convs)),
        zero_weights=int(sum(np.count_nonzero(w == 0) for w in convs)),
        effective_acs_rounded=rounded(ac),
        effective_macs_rounded=rounded(mac),
    )
