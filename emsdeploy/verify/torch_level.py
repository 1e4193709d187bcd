"""The ``torch`` level: the PyTorch model itself, recorded in the IR's terms.

Each LIF (and I-LIF) module's input current and spikes are recorded; its pre-reset membrane is
recomputed with the model's own recurrence and operation order, so it is the membrane the
model really had. Head outputs are returned in the IR readout layout ``[B, na·no, ny, nx]``
(SpikeYOLO's raw outputs ``[B, 4·reg_max + nc, ny, nx]`` already are).
"""

from __future__ import annotations

import torch

from ..ir import LIF, Graph, IntegerLIF, SiLUNeuron
from ..ir.runtime import Trace
from ..models import EMSYOLO, record_neurons
from ..models import LIF as LIFModule  # noqa: N811
from ..models import IntegerLIF as IntegerLIFModule
from ..models import SiLUNeuron as SiLUModule
from ..models.spikeyolo import SpikeYOLO

__all__ = ["run_torch", "membrane"]


def membrane(current: torch.Tensor, spikes: torch.Tensor, tau: float) -> torch.Tensor:
    """``U[0] = I[0]``; ``U[t] = U[t-1]·τ·(1 − S[t-1]) + I[t]`` in the model's order of operations."""
    u = [current[0]]
    for t in range(1, current.shape[0]):
        u.append(u[-1] * tau * (1.0 - spikes[t - 1]) + current[t])
    return torch.stack(u)


def integer_membrane(current: torch.Tensor, spikes: torch.Tensor, decay: float) -> torch.Tensor:
    """``U[0] = I[0]``; ``U[t] = (U[t-1] − S[t-1])·β + I[t]`` in the I-LIF's order of operations."""
    u = [current[0]]
    for t in range(1, current.shape[0]):
        u.append((u[-1] - spikes[t - 1]) * decay + current[t])
    return torch.stack(u)


@torch.no_grad()
def run_torch(model: EMSYOLO | SpikeYOLO, graph: Graph, x: torch.Tensor, time_steps: int | None = None) -> Trace:
    inputs: dict[str, torch.Tensor] = {}
    with record_neurons(model, (LIFModule, IntegerLIFModule, SiLUModule), inputs=inputs) as rec:
        pred, raws = model.predict(x.to(next(model.parameters()).dtype), time_steps)
    records: dict[str, dict[str, torch.Tensor]] = {}
    for node in graph.of_type(LIF, IntegerLIF, SiLUNeuron):
        if node.name not in rec:
            continue
        if isinstance(node.op, LIF):
            records[node.name] = {
                "s": rec[node.name],
                "i": inputs[node.name],
                "u": membrane(inputs[node.name], rec[node.name], node.op.tau),
            }
        elif isinstance(node.op, IntegerLIF):
            records[node.name] = {
                "s": rec[node.name],
                "i": inputs[node.name],
                "u": integer_membrane(inputs[node.name], rec[node.name], node.op.decay),
            }
        else:
            records[node.name] = {"y": rec[node.name]}
    outputs = {}
    for name, raw in zip(graph.outputs[:-1], raws):
        if raw.dim() == 4:  # SpikeYOLO: already [B, 4·reg_max + nc, ny, nx]
            outputs[name] = raw
            continue
        b, na, ny, nx, no = raw.shape
        outputs[name] = raw.permute(0, 1, 4, 2, 3).reshape(b, na * no, ny, nx)
    outputs[graph.outputs[-1]] = pred
    t = next(iter(records.values()))["s" if "s" in next(iter(records.values())) else "y"].shape[0] if records else 0
    return Trace(outputs, records, t)
