"""ref-float: the IR run in floating point with zero latency per step (DESIGN.md §7).

Every node is evaluated once per step in topological order, so a value produced at step t is
consumed at step t, as in the PyTorch model. Only the current step's values are kept, plus
what ``record`` asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from emsdeploy.errors import SimulationError
from emsdeploy.ir import DECODES, LIF, Graph, Input, IntegerLIF, Node, SiLUNeuron
from emsdeploy.ir.runtime import RecordSpec, Trace, decode_boxes, graph_steps, record_set

from .base import Backend
from .float_kernels import make_kernel

__all__ = ["RefFloat", "StepObserver"]

# Called after each node's step with (t, node, its inputs at t, its output at t, its state
# after the step). It must not modify the tensors. Used to measure a run without storing it
# (e.g. synaptic-operation counting in :mod:`.sops`).
StepObserver = Callable[[int, Node, Sequence[torch.Tensor], torch.Tensor, object], None]


class RefFloat(Backend):
    """Float reference simulator of an IR graph.

    Args:
        graph: a validated IR graph.
        dtype: ``torch.float32`` (as the model runs) or ``torch.float64`` (for tie-free comparisons).
    """

    name = "ref-float"

    def __init__(self, graph: Graph, dtype: torch.dtype = torch.float32) -> None:
        self.graph = graph.validate()
        self.dtype = dtype
        self._input = graph.input_node().name
        self._steps = [n for n in graph if not isinstance(n.op, (Input, *DECODES))]  # readouts accumulate per step
        self._timeless = [n for n in graph if n.op.timeless]
        # Graph outputs that run every step are returned stacked over time, [T, B, ...].
        self._step_outputs = [o for o in graph.outputs if not graph[o].op.timeless]
        self._kernels = {n.name: make_kernel(n.op, dtype) for n in graph if not isinstance(n.op, (Input, *DECODES))}
        users = graph.users()
        # Free a step value after its last reader (outputs and timeless readers keep theirs).
        self._last_use: dict[str, list[str]] = {}
        order = {n.name: i for i, n in enumerate(graph)}
        for name, readers in users.items():
            if readers and name not in graph.outputs:
                last = max(readers, key=order.__getitem__)
                self._last_use.setdefault(last, []).append(name)

    @torch.no_grad()
    def run(
        self,
        x: torch.Tensor,
        time_steps: int | None = None,
        record: RecordSpec = None,
        observer: StepObserver | None = None,
        reference: Trace | None = None,
    ) -> Trace:
        """Run for T steps. ``observer``, if given, sees every node's step as it happens.

        ``reference`` makes the run node-isolated (DESIGN.md §7): after each neuron's step, its
        output and state are replaced by the reference's (spikes ``s`` and membrane ``u`` of a
        LIF or an I-LIF, value ``y`` of a SiLU neuron), so every neuron computes step t from the reference's
        own inputs and state, and a mismatch belongs to that node and step alone. The records
        keep this run's own outputs.
        """
        T, frame = graph_steps(self.graph, x, time_steps)
        wanted = record_set(self.graph, record)
        pins = self._pins(reference, T) if reference is not None else {}
        state: dict[str, object] = {}
        recs: dict[str, dict[str, list[torch.Tensor]]] = {n: {} for n in wanted}
        per_step: dict[str, list[torch.Tensor]] = {o: [] for o in self._step_outputs}
        for t in range(T):
            values: dict[str, torch.Tensor] = {self._input: frame(t).to(self.dtype)}
            if self._input in wanted:
                recs[self._input].setdefault("y", []).append(values[self._input])
            for node in self._steps:
                kernel = self._kernels[node.name]
                xs = [values[i] for i in node.inputs]
                try:
                    y, state[node.name] = kernel.step(xs, state.get(node.name))
                except RuntimeError as e:
                    raise SimulationError(f"{node.name} ({node.op.type_name}) at step {t}: {e}") from None
                values[node.name] = y
                if observer is not None:
                    observer(t, node, xs, y, state[node.name])
                if node.name in wanted and not node.op.timeless:
                    r = recs[node.name]
                    if kernel.records_u:
                        r.setdefault("s", []).append(y)
                        r.setdefault("u", []).append(state[node.name][0])  # type: ignore[index]
                    else:
                        r.setdefault("y", []).append(y)
                if node.name in pins:
                    values[node.name], state[node.name] = pins[node.name](t, state[node.name])
                if node.name in per_step:
                    per_step[node.name].append(y)
                for done in self._last_use.get(node.name, ()):
                    if done != self._input:
                        values.pop(done, None)
        outputs: dict[str, torch.Tensor] = {o: torch.stack(v) for o, v in per_step.items()}
        for node in self._timeless:
            if isinstance(node.op, DECODES):
                outputs[node.name] = decode_boxes([outputs[i] for i in node.inputs], node.op)
            else:
                finish = self._kernels[node.name].finish
                if finish is None:
                    raise SimulationError(f"{node.name}: a timeless {node.op.type_name} kernel needs a finish step")
                outputs[node.name] = finish(state[node.name], T)
        records = {n: {k: torch.stack(v) for k, v in r.items()} for n, r in recs.items()}
        return Trace({o: outputs[o] for o in self.graph.outputs}, records, T)

    def _pins(self, reference: Trace, T: int) -> dict[str, Callable]:
        """Per neuron node: ``(t, own state) -> (reference output at t, state rebuilt from the reference)``."""
        pins: dict[str, Callable] = {}
        for node in self.graph.of_type(LIF, IntegerLIF, SiLUNeuron):
            rec = reference.records.get(node.name, {})
            if isinstance(node.op, (LIF, IntegerLIF)):
                if not {"s", "u"} <= set(rec):
                    raise SimulationError(f"{node.name}: the reference has no spikes and membrane (s, u) to isolate it")
                s_ref, u_ref = rec["s"].to(self.dtype), rec["u"].to(self.dtype)
                pins[node.name] = lambda t, _own, s=s_ref, u=u_ref: (s[t], (u[t], s[t]))
            else:
                if "y" not in rec:
                    raise SimulationError(f"{node.name}: the reference has no SiLU output (y) to isolate it")
                y_ref = rec["y"].to(self.dtype)
                # The in-place recurrence needs only s; a non-in-place one keeps its own m.
                pins[node.name] = lambda t, own, y=y_ref: (y[t], (own[0], y[t]))
            if (rec["s"] if "s" in rec else rec["y"]).shape[0] < T:
                raise SimulationError(f"{node.name}: the reference has fewer than {T} steps")
        return pins
