"""Lower an IR graph to a one-time-step ONNX graph (DESIGN.md §9, names in :mod:`.contract`).

The graph is built node by node from the IR with ``onnx.helper`` (never by tracing torch), one
lowering function per IR op in :data:`LOWERINGS`. Each emits the float step semantics of
``simulators/float_kernels.py``, in the same order of operations, so that the only numerical
difference from ref-float is the convolution kernel (and whatever onnxruntime fuses).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from emsdeploy.errors import ExportError
from emsdeploy.fileio import atomic_write, seal_onnx
from emsdeploy.ir import (
    DECODES,
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
    MaxPool2d,
    Node,
    Readout,
    SiLUNeuron,
)
from emsdeploy.ir import Upsample as UpsampleOp

from .contract import (
    BATCH,
    INPUT,
    NeuronInfo,
    StepwiseMeta,
    head_name,
    ref_name,
    spikes_name,
    state_in_name,
    state_out_name,
    values_name,
)

__all__ = ["LOWERINGS", "OPSET", "build_onnx", "export_onnx"]

OPSET = 17
IR_VERSION = 8  # the ONNX IR version that goes with opset 17; onnxruntime 1.23 reads it
DTYPES = {"float32": (np.float32, TensorProto.FLOAT), "float64": (np.float64, TensorProto.DOUBLE)}


class _Builder:
    """Collects nodes, initializers, inputs and outputs; maps IR node names to ONNX value names."""

    def __init__(self, graph: Graph, dtype: str, spikes: bool, isolate: bool) -> None:
        self.graph = graph
        self.np_dtype, self.onnx_dtype = DTYPES[dtype]
        self.spikes = spikes or isolate
        self.isolate = isolate
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.state_outputs: list[onnx.ValueInfoProto] = []
        self.record_outputs: list[onnx.ValueInfoProto] = []
        self.ref_inputs: list[onnx.ValueInfoProto] = []
        self.value: dict[str, str] = {}  # IR node -> ONNX value holding its output this step
        self.rename: dict[str, str] = {}  # IR node -> preferred ONNX name of its output
        self.neurons: list[NeuronInfo] = []
        self._consts: dict[tuple, str] = {}

    # --- helpers used by the lowerings --------------------------------------------------
    def tensor_info(self, name: str, shape: Sequence[int], elem: int | None = None) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, self.onnx_dtype if elem is None else elem, [BATCH, *shape])

    def emit(self, op_type: str, inputs: Sequence[str], output: str, name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=name, **attrs))
        return output

    def init(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def scalar(self, value: float) -> str:
        """A shared scalar constant of the graph's float type."""
        key = (float(value),)
        if key not in self._consts:
            self._consts[key] = self.init(f"const.{len(self._consts)}", np.array(value, dtype=self.np_dtype))
        return self._consts[key]

    def out_name(self, node: Node) -> str:
        return self.rename.get(node.name, node.name)

    def inputs_of(self, node: Node) -> list[str]:
        return [self.value[i] for i in node.inputs]

    def summed(self, node: Node) -> str:
        """The node's inputs added left to right (the order the model adds its branches)."""
        xs = self.inputs_of(node)
        total = xs[0]
        for k, x in enumerate(xs[1:], 1):
            total = self.emit("Add", [total, x], f"{node.name}/sum{k}", f"{node.name}/sum{k}")
        return total

    def add_state(self, node: Node) -> tuple[str, str]:
        shape = self.graph.shape(node.name)
        self.inputs.append(self.tensor_info(state_in_name(node.name), shape))
        self.state_outputs.append(self.tensor_info(state_out_name(node.name), shape))
        return state_in_name(node.name), state_out_name(node.name)

    def record(self, name: str, shape: Sequence[int], elem: int | None = None) -> None:
        self.record_outputs.append(self.tensor_info(name, shape, elem))

    def isolated_output(self, node: Node) -> str:
        """In a node-isolated graph, readers of a neuron get the reference's value instead."""
        self.ref_inputs.append(self.tensor_info(ref_name(node.name), self.graph.shape(node.name)))
        return ref_name(node.name)


Lowering = Callable[[_Builder, Node], str]


def _conv(b: _Builder, node: Node) -> str:
    op: Conv2d = node.op  # type: ignore[assignment]
    w = b.init(f"{node.name}.weight", op.weight.astype(b.np_dtype))
    ins = [b.value[node.inputs[0]], w]
    if op.bias is not None:
        ins.append(b.init(f"{node.name}.bias", op.bias.astype(b.np_dtype)))
    (ph, pw), (kh, kw) = op.padding, op.kernel_size
    return b.emit(
        "Conv",
        ins,
        b.out_name(node),
        node.name,
        kernel_shape=[kh, kw],
        strides=list(op.stride),
        pads=[ph, pw, ph, pw],
        dilations=list(op.dilation),
        group=op.groups,
    )


def _affine(b: _Builder, node: Node) -> str:
    # x·a + b, per channel; a and b rounded to the graph's float type as ref-float rounds them.
    # [C, 1, 1] constants let onnxruntime fold this map into a preceding Conv.
    op: Affine = node.op  # type: ignore[assignment]
    a = b.init(f"{node.name}.scale", op.scale.astype(b.np_dtype).reshape(-1, 1, 1))
    c = b.init(f"{node.name}.shift", op.shift.astype(b.np_dtype).reshape(-1, 1, 1))
    scaled = b.emit("Mul", [b.value[node.inputs[0]], a], f"{node.name}/scaled", f"{node.name}/mul")
    return b.emit("Add", [scaled, c], b.out_name(node), f"{node.name}/add")


def _add(b: _Builder, node: Node) -> str:
    xs = b.inputs_of(node)
    total = xs[0]
    for k, x in enumerate(xs[1:], 1):
        last = k == len(xs) - 1
        out = b.out_name(node) if last else f"{node.name}/sum{k}"
        total = b.emit("Add", [total, x], out, out)
    return total


def _concat(b: _Builder, node: Node) -> str:
    return b.emit("Concat", b.inputs_of(node), b.out_name(node), node.name, axis=1)


def _maxpool(b: _Builder, node: Node) -> str:
    op: MaxPool2d = node.op  # type: ignore[assignment]
    k, st, p = op.kernel, op.stride, op.padding
    # ONNX MaxPool pads with −inf (padded taps never win), floor mode: torch's max_pool2d
    return b.emit(
        "MaxPool",
        [b.value[node.inputs[0]]],
        b.out_name(node),
        node.name,
        kernel_shape=[k, k],
        strides=[st, st],
        pads=[p, p, p, p],
    )


def _upsample(b: _Builder, node: Node) -> str:
    s = float(node.op.scale)  # type: ignore[attr-defined]
    scales = b.init(f"{node.name}.scales", np.array([1.0, 1.0, s, s], dtype=np.float32))
    # asymmetric + floor: output pixel (y, x) copies input (y // s, x // s), torch's "nearest".
    return b.emit(
        "Resize",
        [b.value[node.inputs[0]], "", scales],
        b.out_name(node),
        node.name,
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )


def _lif(b: _Builder, node: Node) -> str:
    op: LIF = node.op  # type: ignore[assignment]
    h_in, h_out = b.add_state(node)
    shape = b.graph.shape(node.name)
    current = b.summed(node)
    u = b.emit("Add", [h_in, current], f"{node.name}/u", f"{node.name}/integrate")  # U[t] = h[t-1] + I[t]
    fire_name = spikes_name(node.name) if b.spikes else f"{node.name}/fire"
    fire = b.emit("Greater", [u, b.scalar(op.v_th)], fire_name, f"{node.name}/fire")  # strict >
    if b.spikes:
        b.record(fire, shape, TensorProto.BOOL)
    leaked = b.emit("Mul", [u, b.scalar(op.tau)], f"{node.name}/leaked", f"{node.name}/leak")
    b.emit("Where", [fire, b.scalar(0.0), leaked], h_out, f"{node.name}/reset")  # (U·τ)·(1 − S)
    b.neurons.append(NeuronInfo(node.name, "LIF", shape, op.tau, v_th=op.v_th))
    if b.isolate:
        return b.isolated_output(node)
    return b.emit("Cast", [fire], b.out_name(node), f"{node.name}/spikes", to=b.onnx_dtype)


def _integer_lif(b: _Builder, node: Node) -> str:
    op: IntegerLIF = node.op  # type: ignore[assignment]
    h_in, h_out = b.add_state(node)
    shape = b.graph.shape(node.name)
    current = b.summed(node)
    u = b.emit("Add", [h_in, current], f"{node.name}/u", f"{node.name}/integrate")  # U[t] = h[t-1] + I[t]
    clipped = b.emit("Clip", [u, b.scalar(0.0), b.scalar(float(op.levels))], f"{node.name}/clip", f"{node.name}/clip")
    s = b.emit("Round", [clipped], f"{node.name}/s", f"{node.name}/round")  # ONNX Round: half to even
    reset = b.emit("Sub", [u, s], f"{node.name}/reset", f"{node.name}/reset")  # soft reset by the integer
    b.emit("Mul", [reset, b.scalar(op.decay)], h_out, f"{node.name}/leak")  # h = (U − S)·β
    if b.spikes:
        b.record(
            b.emit("Cast", [s], spikes_name(node.name), f"{node.name}/record", to=TensorProto.UINT8),
            shape,
            TensorProto.UINT8,
        )
    b.neurons.append(NeuronInfo(node.name, "IntegerLIF", shape, op.decay, levels=op.levels))
    if b.isolate:
        return b.isolated_output(node)
    return s


def _silu(b: _Builder, node: Node) -> str:
    op: SiLUNeuron = node.op  # type: ignore[assignment]
    h_in, h_out = b.add_state(node)
    shape = b.graph.shape(node.name)
    current = b.summed(node)
    m = b.emit("Add", [h_in, current], f"{node.name}/m", f"{node.name}/integrate")
    gate = b.emit("Sigmoid", [m], f"{node.name}/gate", f"{node.name}/sigmoid")
    y_name = values_name(node.name) if b.spikes else b.out_name(node)
    y = b.emit("Mul", [m, gate], y_name, f"{node.name}/silu")
    if b.spikes:
        b.record(y, shape)
    keep = b.emit("Sub", [b.scalar(1.0), y], f"{node.name}/keep", f"{node.name}/keep")
    carried = y if op.inplace else m  # the official in-place SiLU overwrites m with y
    leaked = b.emit("Mul", [carried, b.scalar(op.tau)], f"{node.name}/leaked", f"{node.name}/leak")
    b.emit("Mul", [leaked, keep], h_out, f"{node.name}/reset")
    b.neurons.append(NeuronInfo(node.name, "SiLUNeuron", shape, op.tau, inplace=op.inplace))
    if b.isolate:
        return b.isolated_output(node)
    return y


LOWERINGS: dict[type, Lowering] = {
    Conv2d: _conv,
    Affine: _affine,
    Add: _add,
    Concat: _concat,
    MaxPool2d: _maxpool,
    UpsampleOp: _upsample,
    LIF: _lif,
    IntegerLIF: _integer_lif,
    SiLUNeuron: _silu,
}


def _neuron_aliases(graph: Graph) -> dict[str, str]:
    """Neuron -> an earlier neuron with the same inputs (in order) and parameters.

    Both then integrate the same current from the same zero state with the same operations, so
    their membranes and outputs agree bit for bit at every step: one computation serves both.
    """
    alias: dict[str, str] = {}
    seen: dict[tuple, list[str]] = {}
    for node in graph:
        if not isinstance(node.op, (LIF, IntegerLIF, SiLUNeuron)):
            continue
        key = (type(node.op), tuple(alias.get(i, i) for i in node.inputs))
        carrier = next((c for c in seen.get(key, []) if graph[c].op.same_as(node.op)), None)
        if carrier is None:
            seen.setdefault(key, []).append(node.name)
        else:
            alias[node.name] = carrier
    return alias


def _heads(graph: Graph) -> list[Node]:
    """Readout nodes in Detect scale order (the Decode's input order), then any others."""
    readouts = graph.of_type(Readout)
    decodes = graph.of_type(*DECODES)
    order = [graph[i] for i in decodes[0].inputs] if decodes else []
    return order + [r for r in readouts if r not in order]


def build_onnx(graph: Graph, *, spikes: bool = False, isolate: bool = False, dtype: str = "float32") -> onnx.ModelProto:
    """Build the stepwise ONNX model of ``graph``.

    Args:
        graph: a validated IR graph with one Input and one Readout per Detect scale.
        spikes: also output ``spikes.<lif>`` (bool) and ``values.<silu>`` every step.
        isolate: node-isolated verification graph: every reader of a neuron reads the input
            ``ref.<node>`` (the reference's value this step) instead; implies ``spikes``.
        dtype: ``float32`` (deployment) or ``float64`` (for tie-free checks with
            ``onnx.reference``; onnxruntime's CPU Conv has no float64 kernel).

    Returns:
        A model that passes ``onnx.checker.check_model(full_check=True)``.
    """
    if dtype not in DTYPES:
        raise ExportError(f"ONNX dtype {dtype!r} unsupported; supported: {', '.join(DTYPES)}")
    graph.validate()
    b = _Builder(graph, dtype, spikes, isolate)
    heads = _heads(graph)
    if not heads:
        raise ExportError("the graph has no Readout node: nothing for the stepwise graph to output as head.<i>")
    users = graph.users()
    head_values: list[str] = []
    for i, r in enumerate(heads):
        src = r.inputs[0]
        neuron = (Input, LIF, IntegerLIF, SiLUNeuron)
        if users[src] == [r.name] and src not in b.rename and not isinstance(graph[src].op, neuron):
            b.rename[src] = head_name(i)  # the conv writes straight into the graph output
        head_values.append(src)

    aliases = _neuron_aliases(graph)
    input_node = graph.input_node()
    b.inputs.append(b.tensor_info(INPUT, input_node.op.shape))  # type: ignore[attr-defined]
    for node in graph:
        if isinstance(node.op, Input):
            b.value[node.name] = INPUT
            continue
        if node.name in aliases:
            carrier = aliases[node.name]
            b.value[node.name] = b.value[carrier]
            if b.spikes:  # keep one spikes/values output per neuron node
                spiking = isinstance(node.op, (LIF, IntegerLIF))
                out = spikes_name(node.name) if spiking else values_name(node.name)
                src = spikes_name(carrier) if spiking else values_name(carrier)
                b.emit("Identity", [src], out, f"{out}/alias")
                elem = {LIF: TensorProto.BOOL, IntegerLIF: TensorProto.UINT8}.get(type(node.op))
                b.record(out, graph.shape(node.name), elem)
            continue
        if node.op.timeless:  # Readout and the decodings run on the host (the runtime)
            continue
        lower = LOWERINGS.get(type(node.op))
        if lower is None:
            raise ExportError(
                f"{node.name} ({node.op.type_name}): no ONNX lowering. Supported: "
                f"{', '.join(t.__name__ for t in LOWERINGS)}, Readout, Decode and DFLDecode (host side)"
            )
        b.value[node.name] = lower(b, node)

    head_outputs = []
    for i, src in enumerate(head_values):
        if b.value[src] != head_name(i):
            b.emit("Identity", [b.value[src]], head_name(i), f"{head_name(i)}/identity")
        head_outputs.append(b.tensor_info(head_name(i), graph.shape(src)))

    decode = graph.of_type(*DECODES)
    dec = cast("Decode | DFLDecode | None", decode[0].op if decode else None)
    dfl = isinstance(dec, DFLDecode)
    meta = StepwiseMeta(
        time_steps=graph.time_steps,
        encoding=graph.encoding,
        input_shape=tuple(input_node.op.shape),  # type: ignore[attr-defined]
        neurons=tuple(b.neurons),
        heads=tuple(r.name for r in heads),
        decode=decode[0].name if decode else None,
        nc=int(dec.nc if dec else graph.attrs.get("nc", 0)),
        anchors=tuple(tuple(tuple(float(v) for v in a) for a in lvl) for lvl in dec.anchors)
        if isinstance(dec, Decode)
        else (),
        strides=tuple(dec.strides) if dec else (),
        names=tuple(str(n) for n in graph.attrs.get("names", [])),
        spikes=b.spikes,
        isolated=isolate,
        dtype=dtype,
        source=str(graph.attrs.get("source", "")),
        aliases=aliases,
        decode_kind="dfl" if dfl else "yolov5",
        reg_max=dec.reg_max if isinstance(dec, DFLDecode) else 0,
    )
    onnx_graph = helper.make_graph(
        b.nodes,
        "emsdeploy_stepwise",
        b.inputs + b.ref_inputs,
        head_outputs + b.state_outputs + b.record_outputs,
        initializer=b.inits,
    )
    model = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="emsdeploy",
        ir_version=IR_VERSION,
        doc_string="One time step of a spiking EMS-YOLO detector; see metadata_props and DESIGN.md §9.",
    )
    helper.set_model_props(model, meta.to_props())
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"the stepwise ONNX graph fails onnx.checker (an exporter bug): {e}") from None
    return seal_onnx(model)  # metadata "emsdeploy.sha256": loaders refuse a damaged copy


def export_onnx(
    graph: Graph, path: str | Path, *, spikes: bool = False, isolate: bool = False, dtype: str = "float32"
) -> onnx.ModelProto:
    """Build the stepwise model (see :func:`build_onnx`) and write it to ``path`` atomically."""
    model = build_onnx(graph, spikes=spikes, isolate=isolate, dtype=dtype)
    data = model.SerializeToString()
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
    return model
