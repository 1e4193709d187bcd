"""Exact synaptic-operation (SOP) counting on the IR (DESIGN.md §10).

A *synaptic operation* is one weight applied to one nonzero input value. Every ``Conv2d`` is a
synapse group: an input element at ``(c, y, x)`` that is nonzero at step ``t`` reaches exactly

    fanout(c, y, x) = (C_out / groups) · fy[y] · fx[x]

weights, where ``fy[y]`` counts the (output row, kernel row) pairs whose tap lands on input row
``y`` (stride, padding, dilation and borders respected; padded taps reach no input and count
nothing) and ``fx`` likewise for columns. So at each step

    SOP_t = Σ_{b, c, y, x} 1[x_t(b, c, y, x) ≠ 0] · fanout(c, y, x).

Zero weights count (they are still stored and applied). The kind of the conv's *input* decides
the price: ``spike`` inputs cost accumulates (AC); ``current``/``analog`` inputs (pixels,
currents, SiLU outputs) cost multiply-accumulates (MAC), counted over nonzero inputs the same way.

``integer`` inputs (SpikeYOLO's I-LIF, values 0..D) are counted both ways, because the two ways
of running them differ exactly: **spike-driven** (each integer s sent as s binary spikes over D
sub-steps) costs ``s · fanout`` accumulates (``value_sops``: Σ s·fanout, the SpikeYOLO paper's
"virtual time steps"); **graded** (the integer sent once as a graded spike) costs one synaptic
event per nonzero value (``sops``: Σ 1[s ≠ 0]·fanout). For binary spikes the two are equal.

Every op type has an explicit rule in :data:`RULES` (a missing rule is an error, never zero):

=============  ============  ==============================================================
op             category      counted per step and sample
=============  ============  ==============================================================
Conv2d         synapse       exact AC or MAC events (above; integer inputs: graded and spike-driven);
                             dense FLOPs kept for comparison
LIF            neuron        one update per neuron; *active* updates; (n−1)·size fan-in adds
IntegerLIF     neuron        as LIF; *nonzero_out* sums the integers (unit spikes)
SiLUNeuron     neuron        as LIF (a stateful, non-spiking population)
Add            elementwise   (n−1) adds per output element
MaxPool2d      elementwise   (k²−1) comparisons per output element
Readout        elementwise   one add per element (the running sum; the final ÷T is not counted)
Affine         folded        0: folded into the Conv2d that feeds it (the ``fold_affine`` pass);
                             an Affine not fed by a Conv2d has no rule and is an error
Concat         routing       0: a channel re-indexing, no arithmetic
Upsample       routing       0: each value is sent to scale² targets, no arithmetic
Input          source        0
Decode         host          0: box decoding after the network, once per frame
DFLDecode      host          0: as Decode (anchor-free, DFL)
=============  ============  ==============================================================

A neuron update at step ``t`` is *active* when the neuron received a nonzero input at ``t``
(any of its inputs) or its membrane ``U[t]`` (pre-reset) is nonzero: it has state to leak or
it spikes. Otherwise the update is a no-op that event-driven hardware can skip.

Counting runs beside the float simulator (:class:`~.ref_float.RefFloat`'s observer): one step
at a time, nothing stored but the per-step sums, so memory does not grow with T or with the
number of samples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from emsdeploy.errors import SimulationError
from emsdeploy.ir import (
    LIF,
    Add,
    Affine,
    Concat,
    Conv2d,
    Decode,
    DFLDecode,
    Graph,
    Input,
    IntegerLIF,
    Kind,
    MaxPool2d,
    Node,
    Op,
    Readout,
    SiLUNeuron,
    Upsample,
)
from emsdeploy.ir.runtime import graph_steps

from .ref_float import RefFloat

__all__ = [
    "FIXED_POINT_MODULE",
    "RULES",
    "ElementwiseCount",
    "NeuronCount",
    "SOPCounter",
    "SOPCounts",
    "SynapseCount",
    "axis_fanout",
    "conv_dense_sops",
    "conv_fanout",
    "conv_flops",
    "count_sops",
    "graph_flops",
]


# --- shapes only: fan-out maps and FLOPs ---------------------------------------------------
def axis_fanout(size_in: int, size_out: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> np.ndarray:
    """For each input index along one axis, how many (output index, kernel tap) pairs read it.

    Output ``o`` with tap ``k`` reads input ``o·stride − padding + k·dilation``; taps that land in
    the zero padding read nothing and are not counted.
    """
    counts = np.zeros(size_in, dtype=np.int64)
    out = np.arange(size_out) * stride - padding
    for k in range(kernel):
        pos = out + k * dilation
        pos = pos[(pos >= 0) & (pos < size_in)]
        counts[pos] += 1  # positions are distinct for one k, so plain fancy-index adds are exact
    return counts


def conv_fanout(op: Conv2d, in_shape: Sequence[int]) -> np.ndarray:
    """Spatial fan-out ``[H, W]`` (int64): output positions one input pixel reaches per output channel.

    Multiply by ``C_out / groups`` for the weights one input element is applied to.
    """
    _, h, w = in_shape
    _, ho, wo = op.output_shape([tuple(in_shape)])
    fy = axis_fanout(h, ho, op.kernel_size[0], op.stride[0], op.padding[0], op.dilation[0])
    fx = axis_fanout(w, wo, op.kernel_size[1], op.stride[1], op.padding[1], op.dilation[1])
    return np.outer(fy, fx)


def conv_flops(op: Conv2d, in_shape: Sequence[int]) -> int:
    """Dense MACs of one step, the papers' FLOPs: ``kH·kW·(C_in/groups)·C_out·H_out·W_out``.

    Padded taps are included (as in the papers and syops); the bias is not.
    """
    c_out, ho, wo = op.output_shape([tuple(in_shape)])
    kh, kw = op.kernel_size
    return kh * kw * (op.in_channels // op.groups) * c_out * ho * wo


def conv_dense_sops(op: Conv2d, in_shape: Sequence[int]) -> int:
    """Synaptic operations of one step if every input were nonzero (padded taps excluded)."""
    return int(conv_fanout(op, in_shape).sum()) * in_shape[0] * (op.out_channels // op.groups)


def graph_flops(graph: Graph) -> dict[str, int]:
    """Dense MACs per step of every Conv2d (node name -> FLOPs); needs shapes only, no simulation."""
    return {n.name: conv_flops(n.op, graph.shape(n.inputs[0])) for n in graph.of_type(Conv2d)}  # type: ignore[arg-type]


# --- counters --------------------------------------------------------------------------------
@dataclass
class SynapseCount:
    """One synapse group (a Conv2d). Arrays are ``[T]``, summed over every counted sample.

    Attributes:
        input_kind: the kind of the conv's input: ``spike`` -> AC, ``integer`` -> AC per unit
            (spike-driven) or one graded event per nonzero, else MAC.
        input_size: input elements of one sample at one step (C·H·W).
        flops: dense MACs of one step (padded taps included): the papers' FLOPs.
        dense_sops: synaptic ops of one step if every input were nonzero (padded taps excluded).
        nonzero: nonzero input elements per step.
        sops: exact synaptic operations per step (one per weight and nonzero input value).
        value_sum: sum of the input values per step (spikes and integers; the mean integer is
            the SpikeYOLO paper's firing rate). Zeros for current and analog inputs.
        value_sops: Σ value·fanout per step: the accumulates of spike-driven execution (equal to
            ``sops`` for binary spikes). Zeros for current and analog inputs.
    """

    name: str
    source: str
    input_kind: Kind
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    flops: int
    dense_sops: int
    nonzero: np.ndarray
    sops: np.ndarray
    value_sum: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    value_sops: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def input_size(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def is_ac(self) -> bool:
        """Accumulate-only: binary or integer spikes (an integer s is s accumulates, or one
        graded event; never a multiply by a real value)."""
        return self.input_kind in (Kind.SPIKE, Kind.INTEGER)

    @property
    def is_integer(self) -> bool:
        return self.input_kind is Kind.INTEGER


@dataclass
class NeuronCount:
    """One neuron population (LIF or SiLUNeuron). Arrays are ``[T]``, summed over samples.

    Attributes:
        size: neurons of one sample (C·H·W).
        fanin: number of inputs summed into the population each step.
        active: active updates per step (nonzero input or nonzero membrane, see the module doc).
        nonzero_out: nonzero outputs per step (spikes for a LIF; for an I-LIF the sum of its
            integers, i.e. unit spikes).
        nonzero: neurons with a nonzero output per step (equal to ``nonzero_out`` for a LIF).
    """

    name: str
    op: str
    shape: tuple[int, ...]
    fanin: int
    spiking: bool
    active: np.ndarray
    nonzero_out: np.ndarray
    nonzero: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class ElementwiseCount:
    """A weightless op that computes on every element (Add, MaxPool2d, Readout): dense, so its
    count per step follows from shapes alone."""

    name: str
    op: str
    ops_per_step: int  # one sample
    rule: str


@dataclass
class SOPCounts:
    """What :class:`SOPCounter` measured over ``samples`` inputs of ``time_steps`` steps.

    ``uncounted`` names every node that costs nothing by rule, with the rule.
    Per-sample values are sums divided by ``samples``.
    """

    time_steps: int
    samples: int
    synapses: list[SynapseCount]
    neurons: list[NeuronCount]
    elementwise: list[ElementwiseCount]
    uncounted: dict[str, str] = field(default_factory=dict)


Observe = Callable[[int, Sequence[torch.Tensor], torch.Tensor, object], None]
Rule = Callable[["SOPCounter", Graph, Node], "Observe | None"]


def _conv_rule(counter: SOPCounter, graph: Graph, node: Node) -> Observe:
    op: Conv2d = node.op  # type: ignore[assignment]
    src = node.inputs[0]
    in_shape = tuple(graph.shape(src))
    fan = conv_fanout(op, in_shape).reshape(-1)
    # Columns: spatial fan-out, and ones (to count the nonzero inputs in the same product).
    # Every partial sum is an integer no larger than C_in·max(Σfan, H·W) per sample: float32
    # holds it exactly below 2**24, float64 below 2**53 (far beyond any layer).
    exact32 = in_shape[0] * max(int(fan.sum()), fan.size) < 2**24
    dtype = torch.float32 if exact32 else torch.float64
    weights = torch.from_numpy(np.stack([fan, np.ones_like(fan)], 1)).to(dtype)
    per_group = op.out_channels // op.groups
    row = SynapseCount(
        node.name,
        src,
        graph.kind(src),
        in_shape,
        tuple(graph.shape(node.name)),
        conv_flops(op, in_shape),
        conv_dense_sops(op, in_shape),
        counter._steps_array(),
        counter._steps_array(),
    )
    counter._synapses.append(row)
    # Spike values are exactly 0 or 1 (a LIF emits (U > V_th) as 0./1.; pooling, upsampling and
    # concatenation keep that), so a channel sum counts them, and it is ~10x cheaper than
    # count_nonzero. Graded values need the explicit nonzero test; integer spikes need both.
    binary = row.input_kind is Kind.SPIKE
    integer = row.is_integer
    if integer:  # Σ s·fanout ≤ D·C_in·Σfan: the exactness bound above grows by D ≤ 255
        dtype = (
            torch.float32 if exact32 and in_shape[0] * max(int(fan.sum()), fan.size) * 255 < 2**24 else torch.float64
        )
        weights = weights.to(dtype)

    dense = (int(fan.sum()) * in_shape[0] * per_group, int(np.prod(in_shape)))  # (sops, nonzero) of a full input

    def per_sample(nz: torch.Tensor, b: int) -> list[list[float]]:
        if nz.dtype != dtype:
            nz = nz.to(dtype)
        return (nz.reshape(b, -1) @ weights).tolist()  # one row per sample: (Σ nz·fan, Σ nz)

    def observe(t: int, xs: Sequence[torch.Tensor], y: torch.Tensor, state: object) -> None:
        x = xs[0]
        b = x.shape[0]
        if not (binary or integer) and int(torch.count_nonzero(x)) == x.numel():  # graded values are rarely 0
            row.sops[t] += dense[0] * b
            row.nonzero[t] += dense[1] * b
            return
        nz = x.sum(1) if binary else torch.count_nonzero(x, dim=1)  # [B, H, W]: nonzero channels per pixel
        for sops, nonzero in per_sample(nz, b):
            row.sops[t] += int(sops) * per_group
            row.nonzero[t] += int(nonzero)
        if binary:
            row.value_sops[t] = row.sops[t]
            row.value_sum[t] = row.nonzero[t]
        elif integer:  # the values themselves: s accumulates per integer s in spike-driven mode
            for vsops, vsum in per_sample(x.sum(1), b):
                row.value_sops[t] += int(vsops) * per_group
                row.value_sum[t] += int(vsum)

    return observe


def _neuron_rule(counter: SOPCounter, graph: Graph, node: Node) -> Observe:
    row = NeuronCount(
        node.name,
        node.op.type_name,
        tuple(graph.shape(node.name)),
        len(node.inputs),
        isinstance(node.op, LIF | IntegerLIF),
        counter._steps_array(),
        counter._steps_array(),
    )
    counter._neurons.append(row)
    if row.fanin > 1:
        counter._elementwise.append(
            ElementwiseCount(node.name, f"{row.op} fan-in", (row.fanin - 1) * row.size, "(n−1) adds per neuron")
        )

    def observe(t: int, xs: Sequence[torch.Tensor], y: torch.Tensor, state: object) -> None:
        membrane = state[0]  # type: ignore[index]  # LIF: pre-reset U[t]; SiLU: m[t]
        active = int(torch.count_nonzero(membrane))
        if active < membrane.numel():  # where U[t] = 0 the update is active only if an input was nonzero
            idle = membrane == 0
            received = xs[0][idle] != 0
            for x in xs[1:]:
                received |= x[idle] != 0
            active += int(received.sum())
        row.active[t] += active
        nonzero = int(torch.count_nonzero(y))
        row.nonzero[t] += nonzero
        row.nonzero_out[t] += int(y.sum()) if row.spiking else nonzero

    return observe


def _elementwise(per_element: Callable[[Graph, Node], int], rule: str) -> Rule:
    def make(counter: SOPCounter, graph: Graph, node: Node) -> None:
        size = int(np.prod(graph.shape(node.name)))
        counter._elementwise.append(
            ElementwiseCount(node.name, node.op.type_name, per_element(graph, node) * size, rule)
        )
        return None

    return make


def _free(rule: str) -> Rule:
    def make(counter: SOPCounter, graph: Graph, node: Node) -> None:
        counter._uncounted[node.name] = rule
        return None

    return make


def _affine_rule(counter: SOPCounter, graph: Graph, node: Node) -> None:
    src = graph[node.inputs[0]]
    if not isinstance(src.op, Conv2d):
        raise SimulationError(
            f"{node.name} (Affine): no counting rule for an Affine fed by {src.name} ({src.op.type_name}); "
            "only an Affine right after a Conv2d is counted (as folded into its weights). "
            "Fold it away first (emsdeploy.passes.fold_affine) or feed it from a Conv2d."
        )
    counter._uncounted[node.name] = f"folded into {src.name}"
    return None


# The counting rule of every op type (module docstring table). No entry = an error.
RULES: dict[type[Op], Rule] = {
    Conv2d: _conv_rule,
    LIF: _neuron_rule,
    IntegerLIF: _neuron_rule,
    SiLUNeuron: _neuron_rule,
    Add: _elementwise(lambda g, n: len(n.inputs) - 1, "(n−1) adds per element"),
    MaxPool2d: _elementwise(lambda g, n: n.op.kernel**2 - 1, "(k²−1) compares per output"),  # type: ignore[attr-defined]
    Readout: _elementwise(lambda g, n: 1, "1 add per element (running sum)"),
    Affine: _affine_rule,
    Concat: _free("routing: channel concatenation, no arithmetic"),
    Upsample: _free("routing: nearest-neighbour copies, no arithmetic"),
    Input: _free("source"),
    Decode: _free("host: box decoding after the network"),
    DFLDecode: _free("host: anchor-free DFL box decoding after the network"),
}


# Loihi fixed-point ops (the quantize pass's output) run in the fixed-point simulator, not in
# ref-float: they have no rule here, and a graph holding them is refused with this advice.
FIXED_POINT_MODULE = "emsdeploy.ir.ops.loihi"


class SOPCounter:
    """Counts synaptic operations, neuron updates and elementwise ops while RefFloat runs.

    Use :meth:`run` once per batch of inputs, then :meth:`counts`. All inputs must run for the
    same number of steps (counts are kept per step).

    Args:
        graph: a validated IR graph; every op type needs a rule in :data:`RULES`.
        dtype: the float simulator's dtype.

    Raises:
        SimulationError: an op type without a counting rule (named with its node).
    """

    def __init__(self, graph: Graph, dtype: torch.dtype = torch.float32) -> None:
        self.graph = graph.validate()
        self.sim = RefFloat(graph, dtype)
        self.time_steps: int | None = None
        self.samples = 0
        self._synapses: list[SynapseCount] = []
        self._neurons: list[NeuronCount] = []
        self._elementwise: list[ElementwiseCount] = []
        self._uncounted: dict[str, str] = {}
        missing = sorted({n.op.type_name for n in graph if type(n.op) not in RULES})
        if missing:
            first = next(n for n in graph if type(n.op) not in RULES)
            fix = (
                "Count the float graph, before the quantize pass: quantization changes no synaptic event."
                if type(first.op).__module__ == FIXED_POINT_MODULE
                else "Add one to RULES in simulators/sops.py."
            )
            raise SimulationError(
                f"{first.name} ({first.op.type_name}): no SOP counting rule for {', '.join(missing)}; "
                f"rules exist for {', '.join(sorted(t.__name__ for t in RULES))}. {fix}"
            )
        self._observers: dict[str, Observe] = {}
        for node in graph:
            obs = RULES[type(node.op)](self, graph, node)
            if obs is not None:
                self._observers[node.name] = obs

    def _steps_array(self) -> np.ndarray:
        return np.zeros(0, dtype=np.int64)  # sized by the first run, when T is known

    def _allocate(self, time_steps: int) -> None:
        self.time_steps = time_steps
        for row in self._synapses:
            for f in ("nonzero", "sops", "value_sum", "value_sops"):
                setattr(row, f, np.zeros(time_steps, np.int64))
        for n in self._neurons:
            for f in ("active", "nonzero_out", "nonzero"):
                setattr(n, f, np.zeros(time_steps, np.int64))

    def __call__(self, t: int, node: Node, xs: Sequence[torch.Tensor], y: torch.Tensor, state: object) -> None:
        obs = self._observers.get(node.name)
        if obs is not None:
            obs(t, xs, y, state)

    def run(self, x: torch.Tensor, time_steps: int | None = None):
        """Simulate ``x`` (a batch; see :meth:`RefFloat.run`) and add its counts. Returns the Trace."""
        T, _ = graph_steps(self.graph, x, time_steps)
        if self.time_steps is None:
            self._allocate(T)
        elif T != self.time_steps:
            raise SimulationError(
                f"counts are kept per step for T = {self.time_steps}; this input runs T = {T}. "
                "Count inputs of different T separately."
            )
        out = self.sim.run(x, time_steps, observer=self)
        self.samples += int(x.shape[0])
        return out

    def counts(self) -> SOPCounts:
        if self.time_steps is None or self.samples == 0:
            raise SimulationError("nothing counted yet: call run() on at least one input")
        # Copies: later runs keep adding to the counter's own arrays, not to a returned result.
        return SOPCounts(
            self.time_steps,
            self.samples,
            [
                replace(
                    r,
                    nonzero=r.nonzero.copy(),
                    sops=r.sops.copy(),
                    value_sum=r.value_sum.copy(),
                    value_sops=r.value_sops.copy(),
                )
                for r in self._synapses
            ],
            [
                replace(n, active=n.active.copy(), nonzero_out=n.nonzero_out.copy(), nonzero=n.nonzero.copy())
                for n in self._neurons
            ],
            list(self._elementwise),
            dict(self._uncounted),
        )


def count_sops(
    graph: Graph,
    inputs: Iterable[torch.Tensor],
    time_steps: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> SOPCounts:
    """Count over every input batch of ``inputs`` (each as :meth:`RefFloat.run` takes it)."""
    counter = SOPCounter(graph, dtype)
    for x in inputs:
        counter.run(x, time_steps)
    return counter.counts()
