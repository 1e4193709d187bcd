"""Loihi-exact stepwise ONNX: the quantized, delay-aligned graph in integer arithmetic (issue 20).

:func:`build_fixed_onnx` lowers the graph the Lava exporter writes (``exporters.lava.lower``)
to one *run step* of ONNX, bit-exact with ref-fixed (``simulators/ref_fixed.py``) at every step
of the ``N = T + latency`` steps, invalid steps included. Contract (docs/onnx.md, "fixed"):

* inputs ``x`` (float32 ``[B, C, H, W]``: frame n at step n < T, the same image every step for
  ``direct``, **zeros** for the latency steps n >= T), ``clock`` (int64 ``[1]``, the step n), then
  ``state_in.<name>``; outputs ``head.<i>`` (readout i's integer v after this step), then
  ``state_out.<name>`` in the same order (zeros at n = 0);
* state ``<pop>.y<k>``: population output at step n − 1 − k (uint8 spikes or int64 graded values),
  as deep as its readers' largest synaptic delay; ``<pop>.v`` (and ``.u`` when du < 4095) the
  LIF / readout membranes; ``<silu>.m``, ``.s`` (float64); ``x.lag<k>`` the input k steps back
  for delayed host terms;
* after the last step ``head.<i>`` / ``(64 · scale_i · T)`` is readout i's output.

A chip synapse reads its source's state (what the source emitted one step and ``delay`` steps
earlier), so within a step only host terms feed populations directly, exactly Lava's timing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import onnx
from onnx import helper

from emsdeploy.errors import ExportError
from emsdeploy.fileio import atomic_write
from emsdeploy.fileio.limits import limit
from emsdeploy.ir import Decode, DFLDecode, Graph, Node
from emsdeploy.ir.ops.loihi import HOST_TERMS, POPULATIONS, LoihiLIF, LoihiReadout

from .fixed_fast_onnx import FAST_LOWERINGS, FAST_TERM_LOWERINGS, UnboundedError, fast_input
from .fixed_kernels_onnx import F32, F64, FIXED_LOWERINGS, I64, TERM_LOWERINGS, U8, FixedBuilder, Value
from .options import OnnxOptions

__all__ = ["FIXED_FORMAT", "build_fixed_onnx", "export_fixed_onnx", "fixed_graph"]

FIXED_FORMAT = "emsdeploy.onnx.fixed"
FIXED_VERSION = 1
OPSET = 17
IR_VERSION = 8
TIMINGS = ("aligned", "lava")
FEEDING = {
    "lava": "one call = one run step n of N = T + latency; x: frame n for n < T (direct: the same image), "
    "zeros for n >= T; clock: [n] int64; head.<i> after step N-1 divided by (64*scale_i*T) is readout i",
    "aligned": "one call = valid step t of every population (T calls; Lava's pipeline delays removed); x: frame "
    "t (direct: the same image); head.<i> after call T-1 divided by (64*scale_i*T) is readout i",
}


def _np_name(elem: int) -> str:
    return onnx.helper.tensor_dtype_to_np_dtype(elem).name


def fixed_graph(graph: Graph, **options: Any) -> Graph:
    """The quantized, delay-aligned graph of a float IR graph, via the Lava exporter's ``lower``."""
    from emsdeploy.exporters.lava import lower

    return lower(graph, **options)


def _out_elem(q: Graph, name: str) -> int:
    return U8 if isinstance(q[name].op, LoihiLIF) else I64


@dataclass
class _Step:
    """One lowered step: what the metadata and the graph outputs need besides the builder's states."""

    populations: list[dict] = field(default_factory=list)
    readouts: list[tuple[str, str, float]] = field(default_factory=list)  # (readout, v state_out, scale)
    records: list[tuple[str, int, tuple[int, ...]]] = field(default_factory=list)  # (out.<pop>, elem, shape)


def build_fixed_onnx(
    q: Graph, *, timing: str = "aligned", record: bool = False, kernel: str | None = None, fast: bool = True
) -> onnx.ModelProto:
    """The stepwise integer ONNX model of a quantized, delay-aligned graph ``q``.

    Args:
        timing: ``aligned`` (one call = one valid time step t of every population, T calls; the
            default, for deployment) or ``lava`` (one call = one step of Lava's run, T + latency
            calls, invalid steps included).
        record: also output every population's output (``out.<pop>``) each call (verification).
        kernel: force one spike-conv kernel (``ConvInteger``, ``MatMulInteger`` or ``float-Conv``) everywhere.
        fast: (aligned timing) add the bounded float lowering (fixed_fast_onnx.py) behind a
            run-time check of the input bound; the integer graph runs whenever the check fails.
    """
    if not q.attrs.get("quantized") or not q.attrs.get("delays_aligned"):
        raise ExportError("the fixed ONNX graph lowers quantized, delay-aligned graphs (exporters.lava.lower)")
    if timing not in TIMINGS:
        raise ExportError(f"timing {timing!r} unknown; choose from {', '.join(TIMINGS)}")
    q.validate()
    lava = timing == "lava"
    inp = q.input_node()
    in_shape = tuple(int(s) for s in inp.op.shape)  # type: ignore[attr-defined]
    for n in q:
        if n.op.timeless or n.name == inp.name or isinstance(n.op, POPULATIONS):
            continue
        if type(n.op) not in TERM_LOWERINGS:
            raise ExportError(f"{n.name} ({n.op.type_name}): no fixed-point ONNX lowering")
    graph_inputs = [helper.make_tensor_value_info("x", F32, ["batch", *in_shape])]
    if lava:
        graph_inputs.append(helper.make_tensor_value_info("clock", I64, [1]))
    scale = float(q.attrs.get("input_scale", 255.0))
    x_bound = max(1, math.ceil(abs(scale)))  # |rint(x · scale)| for |x| <= 1
    exact = FixedBuilder(q, kernel)
    head_nodes: list[onnx.NodeProto] = []
    guard = ""
    fast_b: FixedBuilder | None = None
    fast_step: _Step | None = None
    fallback = "lava timing (verification): integer graph only" if lava else "fast=False: integer graph only"
    if fast and not lava:
        # x_q = rint(x · scale) in float64, shared by both branches; the fast branch assumes |x_q| <= x_bound
        xd = exact.op("Cast", ["x"], "x/f64", to=F64)
        xq = exact.op("Round", [exact.op("Mul", [xd, exact.const(scale, F64)], "x/scaled")], "x/rint")
        top = FixedBuilder(q, kernel, prefix="fast/", shared=exact)
        top.batch = exact.batch = top.op("Shape", ["x"], "batch", start=0, end=1)
        peak = top.op("ReduceMax", [top.op("Abs", [xq], "x/abs")], "x/peak", keepdims=0)
        guard = top.op("LessOrEqual", [peak, top.const(float(x_bound), F64)], "x/in_bound")
        head_nodes = exact.nodes + top.nodes
        exact.nodes = []
        fast_b = fb = FixedBuilder(q, kernel, prefix="fast/", shared=exact)
        fast_b.batch, fast_b._n = top.batch, top._n
        try:
            fast_step = _lower_step(fast_b, q, False, record, lambda k: fast_input(fb, xq, x_bound),
                                    FAST_TERM_LOWERINGS, FAST_LOWERINGS)  # fmt: skip
        except UnboundedError as e:
            fallback = f"integer graph only: {e}"
            fast_b = fast_step = None
        exact.prefix = "int/"
        x_int = exact.op("Cast", [xq], "x/int", to=I64)
        quantized: Callable[[int], Any] = lambda k: x_int  # noqa: E731
    else:
        if lava:
            exact.clock = "clock"
        exact.batch = exact.op("Shape", ["x"], "batch", start=0, end=1)
        x_int_lag: dict[int, str] = {}

        def quantized(k: int) -> str:  # rint(x · in_scale) in float64, as ref-fixed's quantize_input
            if k not in x_int_lag:
                xd = exact.op("Cast", [exact.lags[k]], f"x{k}/f64", to=F64)
                r = exact.op("Round", [exact.op("Mul", [xd, exact.const(scale, F64)], f"x{k}/scaled")], f"x{k}/rint")
                x_int_lag[k] = exact.op("Cast", [r], f"x{k}/int", to=I64)
            return x_int_lag[k]

    step = _lower_step(exact, q, lava, record, quantized, TERM_LOWERINGS, FIXED_LOWERINGS)
    if fast_b is not None and sorted(x[:2] for x in fast_b.states_in) != sorted(x[:2] for x in exact.states_in):
        fast_b = fast_step = None  # not the same state names and shapes: keep the integer graph alone
        fallback = "integer graph only: the fast lowering's states differ"
    main = fast_b or exact
    states_in = main.states_in
    shown = fast_step or step
    outs = _outputs(main, shown)
    if fast_b is not None:
        own = {n: e for n, e, _ in _outputs(exact, step)} | {n: e for n, _, e in exact.states_in}
        node = helper.make_node(
            "If", [guard], [n for n, _, _ in outs], name="fast_or_integer",
            then_branch=_branch(fast_b.nodes, "fast", outs, {}),
            else_branch=_branch(exact.nodes, "int", outs, own),
        )  # fmt: skip
        nodes = [*head_nodes, node]
    else:
        nodes = head_nodes + exact.nodes
    graph_inputs += [helper.make_tensor_value_info(nm, el, ["batch", *s]) for nm, s, el in states_in]
    outputs = [helper.make_tensor_value_info(n, e, ["batch", *s]) for n, e, s in outs]
    populations, readouts, b = shown.populations, shown.readouts, main
    decodes = _decodes(q)
    dec = cast("Decode | DFLDecode | None", decodes[0].op if decodes else None)
    anchors: Any = dec.anchors if isinstance(dec, Decode) else []
    meta = {
        "format": FIXED_FORMAT,
        "format_version": str(FIXED_VERSION),
        "arithmetic": "fixed (Loihi, DESIGN.md §8; bit-exact with ref-fixed)",
        "time_steps": str(q.time_steps),
        "latency": str(int(q.attrs["latency"])),
        "timing": timing,
        "records": json.dumps(record),
        "encoding": q.encoding,
        "input_shape": json.dumps(list(in_shape)),
        "input_scale": repr(scale),
        "layout": FEEDING[timing],
        "reset": "v = 0 where v > vth << 6 (u is not reset); each population zeroed at its latency step",
        "comparison": "strict: s = v > (vth << 6)",
        "states": json.dumps([[nm.removeprefix("state_in."), list(s), _np_name(el)] for nm, s, el in b.states_in]),
        "populations": json.dumps(populations),
        "heads": json.dumps([{"readout": r, "v": v.removeprefix("state_out."), "scale": s} for r, v, s in readouts]),
        "decode": json.dumps(decodes[0].name if decodes else None),
        "decode_kind": "dfl" if isinstance(dec, DFLDecode) else "yolov5",  # the float contract's names
        "reg_max": str(dec.reg_max if isinstance(dec, DFLDecode) else 0),
        "nc": str(int(dec.nc if dec else q.attrs.get("nc", 0))),
        "anchors": json.dumps([[list(map(float, a)) for a in lvl] for lvl in anchors]),
        "strides": json.dumps(list(map(float, dec.strides)) if dec else []),
        "names": json.dumps([str(x) for x in q.attrs.get("names", [])]),
        "kernels": json.dumps(b.kernels),
        "fast_path": json.dumps(
            f"bounded float lowering when max |rint(x*scale)| <= {x_bound}, else the integer graph (kernels_integer)"
            if fast_b is not None
            else fallback
        ),
        "kernels_integer": json.dumps(exact.kernels),
        "source": str(q.attrs.get("source", "")),
    }
    model = helper.make_model(
        helper.make_graph(nodes, "emsdeploy_fixed_stepwise", graph_inputs, outputs, initializer=exact.inits),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="emsdeploy",
        ir_version=IR_VERSION,
        doc_string="One run step of a Loihi-quantized spiking detector in integer arithmetic; see metadata_props.",
    )
    helper.set_model_props(model, meta)
    size, cap = model.ByteSize(), limit("onnx_bytes")
    if size > cap:  # protobuf's limit; our reader refuses such files too (fileio/limits.py)
        raise ExportError(
            f"the fixed-point ONNX graph would be {size / 2**30:.2f} GiB, over the {cap / 2**30:.0f} GiB an ONNX file "
            f"can hold ({len(exact.inits)} constants); export a smaller model or input size"
        )
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"the fixed-point ONNX graph fails onnx.checker (an exporter bug): {e}") from None
    return model


def _latency(node: Node) -> int:
    """A population's latency step (every population op has one)."""
    return int(node.op.latency)  # type: ignore[attr-defined]


def _lower_step(b: FixedBuilder, q: Graph, lava: bool, record: bool, quantized: Callable[[int], Any],
                terms_lowerings: dict, pop_lowerings: dict) -> _Step:  # fmt: skip
    """Lower every population (and its synapse groups and host terms) of one step into ``b``."""
    pops = [n for n in q if isinstance(n.op, POPULATIONS)]
    in_shape = tuple(int(s) for s in q.input_node().op.shape)  # type: ignore[attr-defined]
    # lava timing: how far back each source is read (1 + the largest delay of its readers);
    # aligned timing: a reader's valid step t reads its source's valid step t (checked here)
    depth: dict[str, int] = {}
    host_lag = 0
    for n in pops:
        for i in n.inputs:
            t = q[i]
            op: Any = t.op  # a synapse group or host term: both have delay_u6
            if isinstance(op, HOST_TERMS):
                host_lag = max(host_lag, op.delay_u6)
                due = op.delay_u6
            else:
                depth[t.inputs[0]] = max(depth.get(t.inputs[0], 0), 1 + op.delay_u6)
                due = _latency(q[t.inputs[0]]) + 1 + op.delay_u6
            if not lava and due != _latency(n):
                raise ExportError(
                    f"{i}: arrives at step {due} but {n.name} starts at {_latency(n)}; use timing='lava'"
                )
    current: dict[str, Value] = {}
    if lava:
        for name, d in depth.items():
            shape = q.shape(name)
            b.history[name] = [b.state(f"{name}.y{k}", shape, _out_elem(q, name))[0] for k in range(d)]
    else:
        host_lag = 0
    b.lags = ["x"] + [b.state(f"x.lag{k}", in_shape, F32)[0] for k in range(1, host_lag + 1)]

    def source(t) -> Value:
        src = t.inputs[0]
        if not lava:
            return current[src]
        bound = 1 if isinstance(q[src].op, LoihiLIF) else None
        return Value(b.history[src][t.op.delay_u6], _out_elem(q, src), bound)

    step = _Step()
    for n in pops:
        terms: list[Value] = []
        for i in n.inputs:
            t = q[i]
            lower_term = terms_lowerings.get(type(t.op))
            if lower_term is None:
                raise ExportError(f"{i} ({t.op.type_name}): no fixed-point ONNX lowering")
            if isinstance(t.op, HOST_TERMS):
                terms.append(lower_term(b, t, quantized(t.op.delay_u6 if lava else 0)))
            else:
                terms.append(lower_term(b, t, source(t)))
        lower_pop = pop_lowerings.get(type(n.op))
        if lower_pop is None:
            if pop_lowerings is not FIXED_LOWERINGS:
                raise UnboundedError(f"{n.name} ({n.op.type_name}): no bounded float lowering")
            raise ExportError(f"{n.name} ({n.op.type_name}): no fixed-point ONNX lowering")
        out, v_state = lower_pop(b, n, terms)
        entry = {"name": n.name, "type": n.op.type_name, "latency": _latency(n), "shape": list(q.shape(n.name))}
        current[n.name] = out
        if v_state:
            entry["v"] = v_state.removeprefix("state_out.")
        if record and not isinstance(n.op, LoihiReadout):
            elem = U8 if isinstance(n.op, LoihiLIF) else I64
            b.op_to("Identity", [b.cast(out, elem).name], f"out.{n.name}")
            step.records.append((f"out.{n.name}", elem, tuple(q.shape(n.name))))
            entry["out"] = f"out.{n.name}"
        if n.name in b.history:
            hist = b.history[n.name]
            y0 = b.cast(out, U8).name if isinstance(n.op, LoihiLIF) else b.cast(out, I64).name
            b.op_to("Identity", [y0], hist[0].replace("state_in.", "state_out.", 1))
            for k in range(1, len(hist)):
                b.op_to("Identity", [hist[k - 1]], hist[k].replace("state_in.", "state_out.", 1))
            entry["y"] = hist[0].removeprefix("state_in.")
        step.populations.append(entry)
        if isinstance(n.op, LoihiReadout):
            step.readouts.append((n.name, v_state or "", float(n.op.scale)))
    for k in range(1, host_lag + 1):
        b.op_to("Identity", [b.lags[k - 1]], f"state_out.x.lag{k}")
    decodes = _decodes(q)
    order = list(decodes[0].inputs) if decodes else []
    step.readouts.sort(key=lambda r: order.index(r[0]) if r[0] in order else len(order))
    return step


def _decodes(q: Graph) -> list[Node]:
    """The graph's box decoding on the host: YOLOv5 anchors (``Decode``) or DFL (``DFLDecode``)."""
    return q.of_type(Decode) + q.of_type(DFLDecode)


def _outputs(b: FixedBuilder, step: _Step) -> list[tuple[str, int, tuple[int, ...]]]:
    """The graph's outputs in contract order: head.<i> (readout i's v), state_out.*, out.* (records)."""
    states = {nm: (el, s) for nm, s, el in b.states_out}
    heads = []
    for i, (_, v_out, _) in enumerate(step.readouts):
        b.op_to("Identity", [v_out], f"head.{i}")
        heads.append((f"head.{i}", states[v_out][0], states[v_out][1]))
    return heads + [(nm, el, s) for nm, s, el in b.states_out] + step.records


def _branch(nodes: list[onnx.NodeProto], tag: str, outs, own_elems: dict[str, int]) -> onnx.GraphProto:
    """A branch of the ``If``: its nodes with the graph's output names made local (``tag/name``),
    cast to the contract's element types where this branch computes another (``own_elems``)."""
    contract = {n: e for n, e, _ in outs}
    rename: dict[str, str] = {}
    pre: list[onnx.NodeProto] = []
    post: list[onnx.NodeProto] = []
    for n, e, _ in outs:
        mine = own_elems.get(n, contract[n])
        rename[n] = f"{tag}/{n}" if mine == e else f"{tag}/{n}/own"
        if mine != e:
            post.append(helper.make_node("Cast", [rename[n]], [f"{tag}/{n}"], to=e, name=f"{tag}/{n}/Cast"))
    for n, mine in own_elems.items():  # state inputs of another type than the contract's
        if n.startswith("state_in.") and contract.get(n.replace("state_in.", "state_out.", 1)) not in (None, mine):
            rename[n] = f"{tag}/{n}/own"
            pre.append(helper.make_node("Cast", [n], [rename[n]], to=mine, name=f"{tag}/{n}/Cast"))
    for node in nodes:
        node.input[:] = [rename.get(i, i) for i in node.input]
        node.output[:] = [rename.get(o, o) for o in node.output]
    return helper.make_graph(pre + nodes + post, tag, [],
                             [helper.make_tensor_value_info(f"{tag}/{n}", e, ["batch", *s]) for n, e, s in outs])  # fmt: skip


def export_fixed_onnx(q: Graph, path: str | Path, **options: Any) -> onnx.ModelProto:
    """Build (see :func:`build_fixed_onnx` for the options) and write atomically."""
    model = build_fixed_onnx(q, **options)
    data = model.SerializeToString()
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
    return model


def export_cli_fixed(graph: Graph, output: Path, options: OnnxOptions) -> list[str]:
    """``emsdeploy export --target onnx --arithmetic fixed``: lower as the Lava exporter does, write."""
    q = fixed_graph(graph, custom_to_host=options.custom_to_host)
    model = export_fixed_onnx(q, output, record=options.spikes)
    props = {p.key: p.value for p in model.metadata_props}
    kernels = json.loads(props["kernels"])
    counts: dict[str, int] = {}
    for k in kernels.values():
        counts[k.split(" (")[0]] = counts.get(k.split(" (")[0], 0) + 1
    states = json.loads(props["states"])
    lat = int(props["latency"])
    return [
        f"graph        : one run step in Loihi fixed point, opset {OPSET}, {len(model.graph.node)} nodes, "
        "checked by onnx.checker",
        f"run          : T = {q.time_steps} calls, one per valid step (Lava's {lat}-step pipeline latency removed)",
        f"state        : {len(states)} tensors state_in/state_out.* ({len(json.loads(props['populations']))} populations)",
        "kernels      : " + ", ".join(f"{v}× {k}" for k, v in sorted(counts.items())),
        f"heads        : {len(json.loads(props['heads']))} readouts' integer v (÷ 64·scale·T after the last step)",
        *(["records      : out.<population> every call (--spikes)"] if options.spikes else []),
        f"wrote        : {output} ({Path(output).stat().st_size / 1e6:.2f} MB)",
    ]
