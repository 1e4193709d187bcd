"""IR graph -> NIR 1.0 graph (``nir.NIRGraph``), with every inexpressible op cut to the host.

Steps: the ``nir`` flow: ``simplify`` (tdBN folded into convs, sums flattened into neuron fan-in,
dead nodes removed), then ``partition`` with the ``nir`` target
(``emsdeploy/profiles/targets/nir.toml``), then one lowering per op placed in the graph:

==============================  =============================================================
IR (input kinds)                NIR
==============================  =============================================================
Input                           ``Input`` named after it
Conv2d (any)                    ``Conv2d`` (dense kernel, bias, input shape); one per input
                                channel range when it reads a concatenation
Affine (current, analog)        the same as a 1×1 ``Conv2d`` with a diagonal kernel
Add (current, analog)           no node: its operands' edges go to each reader (NIR sums a
                                node's incoming edges)
Concat (any)                    no node: readers that are convs get sliced kernels; other
                                readers get each part through a 1×1 identity ``Conv2d``
MaxPool2d (spike)               ``SumPool2d`` -> ``Threshold(0)`` (an OR over the window)
LIF (current, analog)           ``LIF`` (or ``IF`` when τ = 1), parameters per neuron
==============================  =============================================================

Every other node runs on the host: readouts and box decoding by design, the rest because
NIR 1.0 has no exact form for it (max-pool of currents, nearest upsampling, SiLU neurons).
A host node ``X`` reads NIR ``Output`` ``X.in`` and, if graph nodes need its value, feeds NIR
``Input`` ``X``; graph metadata ``host_ops`` lists each one with its reason and wiring.
Rewrites are exact in real arithmetic; in floating point a sliced conv or a flattened sum
adds in another order (last-bit differences), and identity and zero weights add nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import nir
import numpy as np
import numpy.typing as npt

from emsdeploy.errors import EmsdeployError, ExportError
from emsdeploy.ir import LIF, Add, Affine, Concat, Conv2d, Graph, Input, MaxPool2d, Node, Op
from emsdeploy.passes import FlowOptions, run_flow
from emsdeploy.passes.flatten_fanin import SUMMING_OPS
from emsdeploy.targets import Target, load_target

from .contract import FORMAT, FORMAT_VERSION, HOST_BY_DESIGN, HostOp, host_ops_to_json, jsonable
from .neurons import DISCRETIZATIONS, nir_from_ems
from .writer import write_nir

__all__ = ["CUT_REASONS", "LOWERED", "LOWERINGS", "NirExport", "NirLowering", "build_nir", "export_nir", "full"]

# Why NIR 1.0.8 has no exact form, by op (for the host_ops metadata and error messages).
CUT_REASONS: dict[str, str] = {
    "MaxPool2d": "max-pool of real values: NIR 1.0 has no max (SumPool2d -> Threshold(0) is an exact max on binary spikes only)",
    "Upsample": "nearest-neighbour upsampling: NIR 1.0 has no upsampling, transposed-convolution or reshape primitive",
    "SiLUNeuron": "SiLU neuron (non-spiking mem_update with SiLU): NIR 1.0 has no SiLU non-linearity",
    "IntegerLIF": "integer LIF (SpikeYOLO's I-LIF, soft reset, spikes 0..D rounded half to even): NIR 1.0 neurons emit binary spikes only",
}

ON_UNSUPPORTED = ("cut", "error")


def full(value: float, shape: tuple[int, ...]) -> npt.NDArray[Any]:
    """A per-neuron parameter array holding one value everywhere: a read-only zero-stride view
    (one scalar in memory, whatever the population's size), float32 when the value is exactly a
    float32 (0, 0.5, integers), else float64 (e.g. 4/3, which must round-trip to 1e-12)."""
    dtype = np.float32 if float(np.float32(value)) == float(value) else np.float64
    return np.broadcast_to(np.asarray(value, dtype=dtype), tuple(int(s) for s in shape))


@dataclass(frozen=True)
class _Piece:
    """Part of an IR value in the NIR graph: NIR node ``src``'s whole output lands in channels
    ``lo:hi`` of the value; a value is the sum of its pieces. ``host``: ``src`` is a host-side
    IR value whose NIR ``Input`` is created when a graph node first reads it."""

    src: str
    lo: int
    hi: int
    host: bool = False


@dataclass
class NirExport:
    """The result of :func:`build_nir`.

    Attributes:
        graph: the NIR graph (type-checked by ``nir``).
        ir: the simplified, partitioned IR graph it was built from.
        host_ops: the IR nodes that run on the host, in topological order.
        discretization, dt: the LIF convention the neuron parameters are written for.
    """

    graph: nir.NIRGraph
    ir: Graph
    host_ops: list[HostOp]
    discretization: str
    dt: float
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def cuts(self) -> list[HostOp]:
        return [h for h in self.host_ops if h.cut]


class _Builder:
    def __init__(self, g: Graph, discretization: str, dt: float) -> None:
        self.g, self.discretization, self.dt = g, discretization, dt
        self.nodes: dict[str, nir.NIRNode] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}  # NIR node -> output shape
        self.incoming: dict[str, list[str]] = {}  # NIR node -> sources, in order, repeats kept
        self.values: dict[str, list[_Piece]] = {}  # IR node -> its pieces
        self.placed: dict[tuple[str, int, int], str] = {}
        self.fed_back: set[str] = set()  # host values with a NIR Input

    # --- nodes and edges ---------------------------------------------------------------
    def add(self, name: str, node: nir.NIRNode, shape: tuple[int, ...], ir_node: str, ir_op: str, **meta: Any) -> str:
        if name in self.nodes:
            raise ExportError(f"{ir_node}: NIR node name {name!r} is already taken; rename the IR node")
        node.metadata = {"ir_node": ir_node, "ir_op": ir_op, **meta}
        self.nodes[name] = node
        self.shapes[name] = tuple(int(s) for s in shape)
        self.incoming[name] = []
        return name

    def edge(self, piece: _Piece, dst: str) -> None:
        if piece.host and piece.src not in self.nodes:
            shape = self.g.shape(piece.src)
            self.add(piece.src, nir.Input(input_type=np.array(shape)), shape, piece.src, self.g[piece.src].op.type_name)
            self.fed_back.add(piece.src)
        self.incoming[dst].append(piece.src)

    def connect(self, value: str, dst: str) -> None:
        """Make ``dst``'s input (the sum of its edges) include the whole of IR value ``value``."""
        pieces = self.values[value]
        channels = self.g.shape(value)[0]
        for lo, hi in _ranges(pieces):
            if (lo, hi) == (0, channels):
                for p in pieces:
                    if (p.lo, p.hi) == (lo, hi):
                        self.edge(p, dst)
                continue
            key = (value, lo, hi)
            if key not in self.placed:
                self.placed[key] = self._place(value, lo, hi, [p for p in pieces if (p.lo, p.hi) == (lo, hi)])
            self.incoming[dst].append(self.placed[key])

    def _place(self, value: str, lo: int, hi: int, pieces: list[_Piece]) -> str:
        """A 1×1 identity conv putting a ``hi − lo``-channel tensor into channels ``lo:hi``."""
        c, h, w = self.g.shape(value)
        weight = np.zeros((c, hi - lo, 1, 1), np.float32)
        weight[np.arange(lo, hi), np.arange(hi - lo), 0, 0] = 1.0
        name = self.add(
            f"{value}.ch{lo}-{hi}",
            _conv(weight, np.zeros(c, np.float32), (h, w), (1, 1), (0, 0), (1, 1)),
            (c, h, w),
            value,
            self.g[value].op.type_name,
            role=f"places a {hi - lo}-channel tensor into channels {lo}:{hi} (1x1 identity kernel, zero bias)",
        )
        for p in pieces:
            self.edge(p, name)
        return name

    # --- lowerings (one per op, found in LOWERINGS) -------------------------------------
    def _input(self, node: Node) -> None:
        self.values[node.name] = [_Piece(node.name, 0, self.g.shape(node.name)[0], host=True)]

    def _concat(self, node: Node) -> None:
        """No node: readers that are convs get sliced kernels, others 1×1 identity convs."""
        pieces, offset = [], 0
        for i in node.inputs:
            pieces += [_Piece(p.src, p.lo + offset, p.hi + offset, p.host) for p in self.values[i]]
            offset += self.g.shape(i)[0]
        self.values[node.name] = pieces

    def _add(self, node: Node) -> None:
        """No node: the sum of its operands' pieces (NIR sums a node's incoming edges)."""
        self.values[node.name] = [p for i in node.inputs for p in self.values[i]]

    def _conv(self, node: Node) -> None:
        op = node.op
        x = node.inputs[0]
        c_in, h, w = self.g.shape(x)
        if isinstance(op, Affine):  # y = a·x + b as a 1x1 conv with kernel diag(a)
            c = c_in
            weight = np.zeros((c, c, 1, 1), dtype=op.scale.dtype)
            weight[np.arange(c), np.arange(c), 0, 0] = op.scale
            bias, stride, padding, dilation = np.asarray(op.shift), (1, 1), (0, 0), (1, 1)
            note: dict[str, Any] = {"role": "per-channel affine a*x + b as a 1x1 conv with a diagonal kernel"}
        else:
            conv = cast(Conv2d, op)
            weight = _dense(conv)
            bias = conv.bias if conv.bias is not None else np.zeros(conv.out_channels, conv.weight.dtype)
            stride, padding, dilation = conv.stride, conv.padding, conv.dilation
            note = {"groups_expanded": conv.groups} if conv.groups > 1 else {}
        pieces = self.values[x]
        ranges = _ranges(pieces)
        shape = self.g.shape(node.name)
        if ranges == [(0, c_in)]:
            self.add(
                node.name,
                _conv(weight, bias, (h, w), stride, padding, dilation),
                shape,
                node.name,
                op.type_name,
                **note,
            )
            self.connect(x, node.name)
            self.values[node.name] = [_Piece(node.name, 0, shape[0])]
            return
        parts = []
        for k, (lo, hi) in enumerate(ranges):
            name = self.add(
                f"{node.name}.ch{lo}-{hi}",
                _conv(weight[:, lo:hi], bias if k == 0 else np.zeros_like(bias), (h, w), stride, padding, dilation),
                shape,
                node.name,
                op.type_name,
                **{
                    **note,
                    "role": f"input channels {lo}:{hi} of the kernel"
                    + (" and the bias" if k == 0 else "")
                    + (f" of the {note['role']}" if "role" in note else ""),
                },
            )
            for p in pieces:
                if (p.lo, p.hi) == (lo, hi):
                    self.edge(_Piece(p.src, 0, hi - lo, p.host), name)
            parts.append(_Piece(name, 0, shape[0]))
        self.values[node.name] = parts

    def _lif(self, node: Node) -> None:
        op: LIF = node.op  # type: ignore[assignment]
        shape = self.g.shape(node.name)
        p = nir_from_ems(op.tau, op.v_th, self.discretization, self.dt)
        if p.model == "IF":
            neuron = nir.IF(r=full(p.r, shape), v_threshold=full(p.v_threshold, shape), v_reset=full(p.v_reset, shape))
        else:
            neuron = nir.LIF(
                tau=full(cast(float, p.tau), shape),  # set whenever the model is LIF
                r=full(p.r, shape),
                v_leak=full(cast(float, p.v_leak), shape),
                v_threshold=full(p.v_threshold, shape),
                v_reset=full(0.0, shape),
            )
        self.add(node.name, neuron, shape, node.name, "LIF", leak_per_step=op.tau, v_th=op.v_th)
        for i in node.inputs:
            self.connect(i, node.name)
        self.values[node.name] = [_Piece(node.name, 0, shape[0])]

    def _spike_pool(self, node: Node) -> None:
        # On binary spikes the max of a window with −inf padding is the OR of its real taps,
        # i.e. (zero-padded sum > 0): stride and padding carry over to SumPool2d unchanged.
        op: MaxPool2d = node.op  # type: ignore[assignment]
        k, st, p = op.kernel, op.stride, op.padding
        shape = self.g.shape(node.name)
        pool = f"{node.name}.sum"
        self.add(
            pool,
            nir.SumPool2d(kernel_size=np.array([k, k]), stride=np.array([st, st]), padding=np.array([p, p])),
            shape,
            node.name,
            "MaxPool2d",
            role="spike count over each window",
        )
        self.connect(node.inputs[0], pool)
        self.add(
            node.name,
            nir.Threshold(threshold=full(0.0, shape)),
            shape,
            node.name,
            "MaxPool2d",
            role="count > 0: the OR of the window's spikes, i.e. their max",
        )
        self.incoming[node.name].append(pool)
        self.values[node.name] = [_Piece(node.name, 0, shape[0])]

    # --- the host side -----------------------------------------------------------------
    def host(self, node: Node, target: Target) -> HostOp:
        kinds = [self.g.kind(i).value for i in node.inputs]
        op = node.op.type_name
        by_design = op in HOST_BY_DESIGN
        reason = HOST_BY_DESIGN.get(op) or CUT_REASONS.get(op)
        if reason is None or (op == "MaxPool2d" and set(kinds) <= {"spike"}):
            reason = f"the target {target.name!r} places {op} on {'/'.join(sorted(set(kinds)))} inputs on the host"
        summing = isinstance(node.op, SUMMING_OPS)
        in_graph = [j for j, i in enumerate(node.inputs) if not self._host_value(i)]
        reads = [{"ir": i, "nir_output": None} for i in node.inputs]
        for j in in_graph:
            if summing or len(in_graph) == 1:
                out = f"{node.name}.in"
            else:
                out = f"{node.name}.in{j}"
            if out not in self.nodes:
                shape = self.g.shape(node.inputs[j])
                self.add(
                    out,
                    nir.Output(output_type=np.array(shape)),
                    shape,
                    node.name,
                    op,
                    role=f"what host-side {op} reads",
                )
            self.connect(node.inputs[j], out)
            reads[j]["nir_output"] = out
        self.values[node.name] = (
            [_Piece(node.name, 0, self.g.shape(node.name)[0], host=True)] if not node.op.timeless else []
        )
        return HostOp(
            node=node.name,
            op=op,
            params={k: jsonable(v) for k, v in node.op.params().items()},
            input_kinds=kinds,
            cut=not by_design,
            reason=reason,
            reads=reads,
            summing=summing,
        )

    def _host_value(self, name: str) -> bool:
        """True for the network input and host-side nodes: the host holds their values itself."""
        return all(p.host and p.src == name for p in self.values[name])

    # --- finish ------------------------------------------------------------------------
    def edges(self) -> list[tuple[str, str]]:
        """All edges; a source that reaches a node k > 1 times goes through ``Scale(k)``."""
        out: list[tuple[str, str]] = []
        for dst, srcs in list(self.incoming.items()):
            counts = Counter(srcs)
            for src in dict.fromkeys(srcs):
                k = counts[src]
                if k > 1:
                    scaled = f"{src}.times{k}"
                    if scaled not in self.nodes:
                        shape = self.shapes[src]
                        self.add(
                            scaled,
                            nir.Scale(scale=full(float(k), shape)),
                            shape,
                            self.nodes[src].metadata.get("ir_node", src),
                            "Add",
                            role=f"a term that appears {k} times in one sum",
                        )
                        out.append((src, scaled))
                    src = scaled
                out.append((src, dst))
        return out


@dataclass(frozen=True)
class NirLowering:
    """How one IR op becomes NIR nodes: ``lower(builder, node)``, for inputs of ``kinds`` only."""

    lower: Callable[[_Builder, Node], None]
    kinds: frozenset[str]


_ANY = frozenset({"spike", "current", "analog"})
_REAL = frozenset({"current", "analog"})

# One lowering per IR op (the nir target must place nothing else in the graph).
LOWERINGS: dict[type[Op], NirLowering] = {
    Input: NirLowering(_Builder._input, frozenset()),
    Conv2d: NirLowering(_Builder._conv, _ANY),
    Affine: NirLowering(_Builder._conv, _REAL),  # a 1x1 conv with a diagonal kernel
    Add: NirLowering(_Builder._add, _REAL),
    Concat: NirLowering(_Builder._concat, _ANY),
    MaxPool2d: NirLowering(_Builder._spike_pool, frozenset({"spike"})),  # exact on binary spikes only
    LIF: NirLowering(_Builder._lif, _REAL),
}

# What this module can lower: IR op name -> input kinds (a view of LOWERINGS).
LOWERED: dict[str, frozenset[str]] = {op.__name__: entry.kinds for op, entry in LOWERINGS.items()}

FLOAT_IR_OPS = (*LOWERED, "Upsample", "SiLUNeuron", "IntegerLIF", "Readout", "Decode", "DFLDecode")


def _ranges(pieces: list[_Piece]) -> list[tuple[int, int]]:
    return sorted({(p.lo, p.hi) for p in pieces})


def _dense(op: Conv2d) -> npt.NDArray[Any]:
    """The kernel with groups expanded to a dense block-diagonal one: NIR 1.0.8 type-checks a
    conv's input as ``weight.shape[1]`` channels, which holds only for ``groups = 1``."""
    if op.groups == 1:
        return np.asarray(op.weight)
    c_out, c_in_g, kh, kw = op.weight.shape
    out_g = c_out // op.groups
    dense = np.zeros((c_out, c_in_g * op.groups, kh, kw), dtype=op.weight.dtype)
    for gi in range(op.groups):
        dense[gi * out_g : (gi + 1) * out_g, gi * c_in_g : (gi + 1) * c_in_g] = op.weight[gi * out_g : (gi + 1) * out_g]
    return dense


def _conv(
    weight: npt.ArrayLike,
    bias: npt.ArrayLike,
    hw: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
) -> nir.Conv2d:
    return nir.Conv2d(
        input_shape=(int(hw[0]), int(hw[1])),
        weight=np.array(weight),
        stride=tuple(int(s) for s in stride),
        padding=tuple(int(p) for p in padding),
        dilation=tuple(int(d) for d in dilation),
        groups=1,
        bias=np.array(bias),
    )


def _supported(target: Target) -> str:
    return ", ".join(f"{op} ({', '.join(sorted(k)) or 'no inputs'})" for op, k in target.chip.items())


def build_nir(
    graph: Graph,
    *,
    target: str | Path | Target = "nir",
    discretization: str = "euler",
    dt: float = 1.0,
    on_unsupported: str = "cut",
) -> NirExport:
    """Lower an IR graph to a NIR graph.

    Args:
        graph: a validated IR graph (traced, or read from an ``.emsir`` file).
        target: the target data (name, TOML path or :class:`Target`) deciding what goes in the graph.
        discretization: ``"euler"`` or ``"exact"``: the convention the LIF parameters are for
            (see :mod:`.neurons`); recorded in the metadata.
        dt: the length of one model step in the time unit of ``tau`` (default 1: one step).
        on_unsupported: ``"cut"`` runs ops NIR cannot express on the host (listed in the
            metadata); ``"error"`` raises :class:`ExportError` naming them instead.

    Raises:
        ExportError: a bad option, an op outside the float IR, a node the target places in
            the graph that has no NIR lowering, or (``on_unsupported="error"``) any cut.
    """
    if discretization not in DISCRETIZATIONS:
        raise ExportError(f"unknown discretization {discretization!r}; supported: {', '.join(DISCRETIZATIONS)}")
    if on_unsupported not in ON_UNSUPPORTED:
        raise ExportError(f"on_unsupported must be one of {', '.join(ON_UNSUPPORTED)}, got {on_unsupported!r}")
    for node in graph:
        if node.op.type_name not in FLOAT_IR_OPS:
            raise ExportError(
                f"{node.name} ({node.op.type_name}): the NIR export reads the float IR; "
                f"ops it knows: {', '.join(FLOAT_IR_OPS)}. Export the graph before quantizing it."
            )
    if not isinstance(target, Target):
        try:
            target = load_target(target)
        except EmsdeployError as e:
            raise ExportError(str(e)) from None
    g = run_flow(graph, "nir", FlowOptions(target, custom_to_host=True))

    on_host = [n for n in g if n.meta["partition"] != "chip" and not isinstance(n.op, Input)]
    if on_unsupported == "error":
        cut = [n for n in on_host if n.op.type_name not in HOST_BY_DESIGN]
        if cut:
            listed = "; ".join(
                f"{n.name} ({n.op.type_name} on {'/'.join(sorted({g.kind(i).value for i in n.inputs}))} inputs)"
                for n in cut[:5]
            )
            more = f" and {len(cut) - 5} more" if len(cut) > 5 else ""
            raise ExportError(
                f"NIR 1.0 cannot express {len(cut)} node(s) exactly: {listed}{more}. "
                f"NIR exports: {_supported(target)}. Export with cuts (the default) to run them on the host."
            )

    b = _Builder(g, discretization, dt)
    hosts: list[HostOp] = []
    for node in g:
        if isinstance(node.op, Input) or node.meta["partition"] == "chip":
            kinds = {g.kind(i).value for i in node.inputs}
            entry = LOWERINGS.get(type(node.op))
            if entry is None or not kinds <= entry.kinds:
                raise ExportError(
                    f"{node.name} ({node.op.type_name} on {'/'.join(sorted(kinds))} inputs): the target "
                    f"{target.name!r} places it in the NIR graph, but it has no exact NIR form; NIR lowerings: "
                    + ", ".join(
                        f"{op.__name__} ({', '.join(sorted(e.kinds)) or 'no inputs'})" for op, e in LOWERINGS.items()
                    )
                )
            entry.lower(b, node)
        else:
            hosts.append(b.host(node, target))
    for o in g.outputs:
        if not g[o].op.timeless and not b._host_value(o):
            shape = g.shape(o)
            b.add(f"{o}.out", nir.Output(output_type=np.array(shape)), shape, o, g[o].op.type_name, role="graph output")
            b.connect(o, f"{o}.out")
    for h in hosts:
        if h.node in b.fed_back:
            h.nir_input = h.node
    if g.input_node().name not in b.nodes:
        raise ExportError("no node of the NIR graph reads the network input: the whole model runs on the host")

    edges = b.edges()
    names = list(b.nodes)
    try:
        nir_graph = nir.NIRGraph(nodes=dict(b.nodes), edges=edges, metadata=_metadata(g, hosts, discretization, dt))
    except (ValueError, AssertionError, NotImplementedError) as e:
        raise ExportError(f"nir rejected the graph it was given (a bug in emsdeploy's NIR export): {e}") from e
    if list(nir_graph.nodes) != names:
        added = sorted(set(nir_graph.nodes) - set(names))
        raise ExportError(f"nir added nodes {added} while type-checking: the export left a dangling node")
    counts = Counter(type(n).__name__ for n in nir_graph.nodes.values())
    return NirExport(nir_graph, g, hosts, discretization, dt, dict(counts))


def _metadata(g: Graph, hosts: list[HostOp], discretization: str, dt: float) -> dict[str, Any]:
    inp = g.input_node()
    encoding = inp.op.encoding  # type: ignore[attr-defined]
    if discretization == "euler":
        equation = "v[t] = v+[t-1] + (dt/tau) * (v_leak - v+[t-1] + r * I[t])  (forward Euler)"
    else:
        equation = "v[t] = exp(-dt/tau) * v+[t-1] + (1 - exp(-dt/tau)) * r * I[t]  (exact, zero-order hold)"
    cuts = [h.node for h in hosts if h.cut]
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "nir_version": str(nir.version),
        "source": str(g.attrs.get("source", "")),
        "input": inp.name,
        "encoding": encoding,
        "input_note": (
            "direct encoding: feed the same image [C, H, W] at every one of the time_steps steps"
            if encoding == "direct"
            else "frames encoding: feed event frame t at step t"
        ),
        "time_steps": int(g.time_steps),
        "dt": float(dt),
        "time_unit": "step",
        "discretization": discretization,
        "neuron_equation": equation + "; I[t] = sum of incoming edges at step t; v+[-1] = 0",
        "threshold_comparison": ">",
        "threshold_note": "spike iff v > v_threshold (strict): v == v_threshold does not spike",
        "reset": "hard: v+ = v_reset = 0 after a spike, else v+ = v",
        "conventions_note": (
            "frameworks disagree on > vs >= at the threshold and on Euler vs exact discretisation: "
            "check both before running this graph elsewhere"
        ),
        "edge_semantics": (
            "a node's input is the sum of its incoming edges; edges have no delay: at each step every "
            "node runs once, in topological order, on that step's values"
        ),
        "host_ops": host_ops_to_json(hosts),
        "cuts": ", ".join(cuts),
        "n_cuts": len(cuts),
        "host_note": (
            "host_ops run outside this graph at every step, in the order listed: host op X reads the "
            "NIR Output X.in and, where listed, feeds the NIR Input X in the same step; readouts average "
            "over the T steps and decode boxes after the last step"
        ),
        "ir_outputs": json.dumps(list(g.outputs)),
    }
    if "names" in g.attrs:
        meta["names"] = json.dumps(list(g.attrs["names"]))
    if "nc" in g.attrs:
        meta["nc"] = int(g.attrs["nc"])
    return meta


def export_nir(graph: Graph, path: str | Path, *, compression: str | int | None = "gzip", **options: Any) -> NirExport:
    """Build the NIR graph (:func:`build_nir` options) and write it to ``path`` in nir's file layout.

    Written node by node (:mod:`.writer`), so memory peaks at the graph plus one node's arrays,
    and the file appears only when complete (written beside it, then renamed). ``compression``
    as for ``nir.write`` (h5py: ``"gzip"``, ``"lzf"``, a gzip level, or None); gzip is nir's
    default and saves little on trained weights but much on the per-neuron parameter arrays.

    Raises:
        ExportError: as :func:`build_nir`, or the file cannot be written (names the path).
    """
    result = build_nir(graph, **options)
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"{path} is a folder; give a file name, e.g. {path / 'model.nir'}")
    try:
        write_nir(path, result.graph, compression)
    except OSError as e:
        raise ExportError(f"{path}: cannot write the NIR file ({e.strerror or e})") from None
    return result
