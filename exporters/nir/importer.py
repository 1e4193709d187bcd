"""NIR graph -> IR graph: read back what :mod:`.export` writes (and NIR graphs built the same way).

A NIR graph says nothing about time steps, so the reader needs ``dt`` and the discretisation
(:mod:`.neurons`): it takes them from the graph metadata or from the caller, and refuses to
guess. Node by node:

* ``Input`` -> IR ``Input`` (the network input), or the value of a host-side op named like it;
* ``Conv2d`` -> ``Conv2d``; ``Scale`` with one value per channel -> ``Affine`` (no shift);
* ``LIF``/``IF`` with one parameter value per population, ``v_leak = v_reset = 0`` and input
  gain 1 -> ``LIF`` (τ and V_th from :func:`.neurons.ems_from_nir`);
* ``SumPool2d`` (kernel = stride, no padding) read only by ``Threshold(0)``, on spikes ->
  ``MaxPool2d``; any other ``Threshold(θ)`` -> a memoryless ``LIF(τ = 0, V_th = θ)``;
* several edges into a node that does not sum (conv, pool, output) -> an ``Add`` in front;
* ``Output`` -> what a host-side op reads, or a graph output;
* the host-side ops listed in the metadata (``host_ops``) -> their IR ops, rebuilt from the
  recorded fields.

Every other NIR primitive raises :class:`ExportError` naming the node and what is read.
"""

from __future__ import annotations

import graphlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nir
import numpy as np

from emsdeploy.errors import EmsdeployError, ExportError
from emsdeploy.fileio import open_hdf5
from emsdeploy.ir import LIF, OPS, Add, Affine, Conv2d, Graph, Kind, MaxPool2d
from emsdeploy.ir import Input as IrInput

from .contract import FORMAT, HostOp, host_ops_from_json, meta_str
from .neurons import DISCRETIZATIONS, GAIN_RTOL, NeuronParams, ems_from_nir

__all__ = ["READS", "import_nir"]

READS = ("Input", "Output", "Conv2d", "Scale", "LIF", "IF", "SumPool2d -> Threshold(0)", "Threshold")
_SNAP_RTOL = 1e-12  # a LIF's recorded leak_per_step replaces the recomputed τ when this close


def read_nir(path: str | Path) -> nir.NIRGraph:
    """A NIR file read through the checked HDF5 reader (no links or external data, bounded sizes)."""
    return _read(path)[0]


def _read(source: str | Path | nir.NIRGraph) -> tuple[nir.NIRGraph, str]:
    if isinstance(source, nir.NIRGraph):
        return source, "<NIRGraph>"
    path = Path(source)
    if not path.is_file():
        raise ExportError(f"{path}: no such NIR file")
    try:  # the checked reader vets the file (no links or external data, bounded sizes) before nir reads it
        with open_hdf5(path, error=ExportError, compressed=True):
            pass
    except ExportError as e:
        raise ExportError(f"{path}: not a readable NIR file ({str(e).removeprefix(f'{path}: ')})") from None
    try:
        return nir.read(path), path.name
    except Exception as e:  # h5py, KeyError, nir's asserts: all mean "not a NIR file we can read"
        raise ExportError(f"{path}: not a readable NIR file ({type(e).__name__}: {e})") from None


def _setting(name: str, given: Any, meta: Mapping[str, Any], where: str, cast: type) -> Any:
    """A run setting from the metadata or the caller: never guessed, never contradicted."""
    recorded = meta.get(name)
    if recorded is not None:
        recorded = cast(meta_str(recorded)) if cast is str else cast(recorded)
    if recorded is None and given is None:
        raise ExportError(f"{where}: the graph does not record {name} in its metadata; pass {name}=... explicitly")
    if given is not None and recorded is not None and cast(given) != recorded:
        raise ExportError(f"{where}: {name}={given!r} contradicts the graph's metadata ({name} = {recorded!r})")
    return recorded if recorded is not None else cast(given)


def _scalar(node_name: str, field: str, arr: Any) -> float:
    a = np.asarray(arr, dtype=np.float64)
    if a.size == 0:
        raise ExportError(f"{node_name}: {field} is empty")
    first = a.flat[0]
    if not np.all(a == first):
        raise ExportError(
            f"{node_name}: {field} differs between neurons (min {a.min()}, max {a.max()}); "
            "the IR has one value per population"
        )
    return float(first)


def _pair(node_name: str, field: str, value: Any) -> tuple[int, int]:
    a = np.atleast_1d(np.asarray(value)).astype(int)
    if a.size == 1:
        return (int(a[0]), int(a[0]))
    if a.size != 2:
        raise ExportError(f"{node_name}: {field} must hold 1 or 2 integers, got {value!r}")
    return (int(a[0]), int(a[1]))


def import_nir(
    source: str | Path | nir.NIRGraph,
    *,
    dt: float | None = None,
    discretization: str | None = None,
    encoding: str | None = None,
    time_steps: int | None = None,
) -> Graph:
    """Read a NIR graph (file or object) as an IR graph.

    Args:
        source: a NIR file or a ``nir.NIRGraph``.
        dt, discretization: the LIF convention (:mod:`.neurons`); default: the graph's metadata.
            Passing a value that contradicts the metadata is an error.
        encoding, time_steps: the input encoding (``direct``/``frames``) and default T;
            default: the graph's metadata.

    Returns:
        A validated IR graph whose nodes carry the NIR node names.

    Raises:
        ExportError: an unreadable file, a missing setting, or a node with no IR form (named).
    """
    graph, where = _read(source)
    meta = dict(graph.metadata or {})
    dt = _setting("dt", dt, meta, where, float)
    discretization = _setting("discretization", discretization, meta, where, str)
    if discretization not in DISCRETIZATIONS:
        raise ExportError(
            f"{where}: unknown discretization {discretization!r}; supported: {', '.join(DISCRETIZATIONS)}"
        )
    encoding = _setting("encoding", encoding, meta, where, str)
    time_steps = _setting("time_steps", time_steps, meta, where, int)
    hosts = host_ops_from_json(meta_str(meta["host_ops"]) or "[]") if "host_ops" in meta else []
    host_by_name = {h.node: h for h in hosts}
    for h in hosts:
        if h.op not in OPS:
            raise ExportError(f"{where}: host op {h.node} has unknown IR op {h.op!r}")

    nodes = dict(graph.nodes)
    for name, node in nodes.items():
        if isinstance(node, nir.NIRGraph):
            raise ExportError(
                f"{where}: {name} is a nested NIRGraph; import_nir reads flat graphs ({', '.join(READS)})"
            )
    incoming: dict[str, list[str]] = {n: [] for n in nodes}
    outgoing: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in graph.edges:
        incoming[b].append(a)
        outgoing[a].append(b)
    inputs = [n for n, v in nodes.items() if isinstance(v, nir.Input) and n not in host_by_name]
    net_input = meta_str(meta.get("input")) or (inputs[0] if len(inputs) == 1 else None)
    if net_input is None or net_input not in inputs:
        raise ExportError(f"{where}: cannot tell the network input among the Input nodes {inputs}")

    deps: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for name, node in nodes.items():
        deps[("nir", name)] = {("nir", s) for s in incoming[name]}
        if isinstance(node, nir.Input) and name in host_by_name:
            deps[("nir", name)].add(("host", name))
    for h in hosts:
        deps[("host", h.node)] = {
            ("nir", r["nir_output"])
            if r["nir_output"]
            else (("host", r["ir"]) if r["ir"] in host_by_name else ("nir", net_input))
            for r in h.reads
        }
    try:
        order = list(graphlib.TopologicalSorter(deps).static_order())
    except graphlib.CycleError as e:
        raise ExportError(f"{where}: the graph has a cycle through {e.args[1]}; the IR is acyclic") from None

    ir = Graph()
    val: dict[str, str] = {}  # NIR node -> the IR node holding its output
    terms: dict[str, list[str]] = {}  # NIR Output -> the IR values it sums
    pools: dict[str, str] = {}  # SumPool2d awaiting its Threshold -> its name

    def summed(hint: str, srcs: list[str]) -> str:
        values = [val[s] for s in srcs]
        if len(values) == 1:
            return values[0]
        return ir.add(ir.unique_name(f"{hint}.sum"), Add(), values, {"nir": "sum of incoming edges"})

    try:
        for kind, name in order:
            if kind == "host":
                _host(ir, host_by_name[name], terms)
                continue
            node, srcs = nodes[name], incoming[name]
            if isinstance(node, nir.Input):
                if name == net_input:
                    shape = tuple(int(s) for s in np.asarray(node.input_type["input"]).ravel())
                    if len(shape) != 3:
                        raise ExportError(f"{name} (Input): the IR takes images or frames (C, H, W), got shape {shape}")
                    ir.add(name, IrInput(shape, encoding), (), {"nir": "Input"})
                val[name] = name
            elif isinstance(node, nir.Output):
                terms[name] = [val[s] for s in srcs]
                if not srcs:
                    raise ExportError(f"{name} (Output): no edge reaches it")
            elif not srcs:
                raise ExportError(f"{name} ({type(node).__name__}): no edge reaches it")
            elif isinstance(node, nir.Conv2d):
                val[name] = ir.add(name, _conv(name, node), [summed(name, srcs)], {"nir": "Conv2d"})
            elif isinstance(node, (nir.LIF, nir.IF)):
                op = _lif(name, node, discretization, dt)
                val[name] = ir.add(name, op, [val[s] for s in srcs], {"nir": type(node).__name__})
            elif isinstance(node, nir.SumPool2d):
                _check_pool(name, node, [nodes[c] for c in outgoing[name]], outgoing[name])
                pools[name] = summed(name, srcs)
            elif isinstance(node, nir.Threshold):
                theta = _scalar(name, "threshold", node.threshold)
                if len(srcs) == 1 and srcs[0] in pools:
                    x = pools[srcs[0]]
                    if ir.kind(x) != Kind.SPIKE:
                        raise ExportError(
                            f"{srcs[0]} -> {name}: SumPool2d -> Threshold(0) is a max-pool only on binary spikes, "
                            f"but its input {x} carries {ir.kind(x).value} values"
                        )
                    k = int(_pair(srcs[0], "kernel_size", nodes[srcs[0]].kernel_size)[0])
                    val[name] = ir.add(name, MaxPool2d(k), [x], {"nir": "SumPool2d -> Threshold(0)"})
                else:
                    val[name] = ir.add(name, LIF(tau=0.0, v_th=theta), [val[s] for s in srcs], {"nir": "Threshold"})
            elif isinstance(node, nir.Scale):
                s = np.asarray(node.scale, dtype=np.float64)
                if s.ndim != 3 or not np.all(s == s[:, :1, :1]):
                    raise ExportError(f"{name} (Scale): only one factor per channel has an IR form (Affine)")
                scale = s[:, 0, 0].copy()
                val[name] = ir.add(name, Affine(scale, np.zeros_like(scale)), [summed(name, srcs)], {"nir": "Scale"})
            else:
                raise ExportError(f"{name} ({type(node).__name__}): no IR form; import_nir reads {', '.join(READS)}")
        ir.attrs.update(_attrs(meta, where, time_steps))
        ir.outputs = _outputs(meta, ir, terms, host_by_name)
        return ir.validate()
    except ExportError as e:
        raise ExportError(f"{where}: {e}") from None
    except EmsdeployError as e:
        raise ExportError(f"{where}: the imported graph is not a valid IR graph: {e}") from None


def _conv(name: str, node: nir.Conv2d) -> Conv2d:
    weight = np.asarray(node.weight)
    if weight.ndim != 4:
        raise ExportError(f"{name} (Conv2d): weight must be 4-D, got shape {weight.shape}")
    stride, dilation = _pair(name, "stride", node.stride), _pair(name, "dilation", node.dilation)
    if isinstance(node.padding, str):
        if node.padding == "valid":
            padding = (0, 0)
        elif node.padding == "same" and stride == (1, 1) and all(k % 2 for k in weight.shape[2:]):
            kh, kw = weight.shape[2:]
            padding = (dilation[0] * (kh - 1) // 2, dilation[1] * (kw - 1) // 2)
        else:
            raise ExportError(f"{name} (Conv2d): padding {node.padding!r} has no symmetric IR form here")
    else:
        padding = _pair(name, "padding", node.padding)
    bias = None if node.bias is None else np.asarray(node.bias)
    return Conv2d(weight, bias, stride, padding, dilation, int(np.asarray(node.groups)))


def _lif(name: str, node: nir.LIF | nir.IF, discretization: str, dt: float) -> LIF:
    if isinstance(node, nir.IF):
        params = NeuronParams(
            "IF", None, _scalar(name, "r", node.r), None, _scalar(name, "v_threshold", node.v_threshold)
        )
    else:
        params = NeuronParams(
            "LIF",
            _scalar(name, "tau", node.tau),
            _scalar(name, "r", node.r),
            _scalar(name, "v_leak", node.v_leak),
            _scalar(name, "v_threshold", node.v_threshold),
        )
    params = NeuronParams(**{**params.__dict__, "v_reset": _scalar(name, "v_reset", node.v_reset)})
    try:
        tau, v_th, gain = ems_from_nir(params, discretization, dt)
    except ExportError as e:
        raise ExportError(f"{name} ({type(node).__name__}): {e}") from None
    if not math.isclose(gain, 1.0, rel_tol=GAIN_RTOL, abs_tol=0.0):
        raise ExportError(
            f"{name} ({type(node).__name__}): input gain {gain!r} under {discretization} with dt = {dt} is not 1; "
            "EMS-YOLO's LIF adds its input unscaled (scale the incoming weights, or check dt and the discretization)"
        )
    recorded = (node.metadata or {}).get("leak_per_step")
    if recorded is not None and math.isclose(float(recorded), tau, rel_tol=_SNAP_RTOL, abs_tol=_SNAP_RTOL):
        tau = float(recorded)  # the exporter's exact τ, not its float64 round trip through tau_m
    return LIF(tau=min(max(tau, 0.0), 1.0), v_th=v_th)


def _check_pool(name: str, node: nir.SumPool2d, readers: list[nir.NIRNode], reader_names: list[str]) -> None:
    kernel = _pair(name, "kernel_size", node.kernel_size)
    stride = _pair(name, "stride", node.stride)
    padding = _pair(name, "padding", node.padding)
    if kernel[0] != kernel[1] or stride != kernel or padding != (0, 0):
        raise ExportError(
            f"{name} (SumPool2d): only square windows with stride = kernel and no padding have an IR form "
            f"(got kernel {kernel}, stride {stride}, padding {padding})"
        )
    ok = len(readers) == 1 and isinstance(readers[0], nir.Threshold) and not np.any(np.asarray(readers[0].threshold))
    if not ok:
        raise ExportError(
            f"{name} (SumPool2d): imported only as a spike max-pool, read by exactly one Threshold(0); "
            f"it is read by {reader_names}"
        )


def _host(ir: Graph, h: HostOp, terms: dict[str, list[str]]) -> None:
    op_cls = OPS[h.op]
    try:
        op = op_cls(**h.params)
    except (TypeError, ValueError) as e:
        raise ExportError(f"host op {h.node} ({h.op}): cannot rebuild it from {h.params}: {e}") from None
    inputs: list[str] = []
    used: set[str] = set()
    for r in h.reads:
        out = r["nir_output"]
        if out is None:
            inputs.append(r["ir"])
        elif h.summing:
            if out not in used:
                inputs += terms[out]
                used.add(out)
        elif len(terms[out]) == 1:
            inputs.append(terms[out][0])
        else:
            inputs.append(ir.add(ir.unique_name(out), Add(), terms[out], {"nir": "sum of incoming edges"}))
    ir.add(h.node, op, inputs, {"nir": "host op", "cut": h.cut})


def _attrs(meta: Mapping[str, Any], where: str, time_steps: int) -> dict[str, Any]:
    attrs: dict[str, Any] = {"time_steps": time_steps, "dt": 1, "reset": "hard-zero"}
    attrs["source"] = meta_str(meta.get("source")) or where
    if meta_str(meta.get("format")) == FORMAT:
        if "names" in meta:
            attrs["names"] = json.loads(meta_str(meta["names"]) or "[]")
        if "nc" in meta:
            attrs["nc"] = int(meta["nc"])
    return attrs


def _outputs(meta: Mapping[str, Any], ir: Graph, terms: dict[str, list[str]], hosts: dict[str, HostOp]) -> list[str]:
    """The graph outputs the metadata names, else every Output no host op reads."""
    read_by_host = {r["nir_output"] for h in hosts.values() for r in h.reads if r["nir_output"]}
    free = [o for o in terms if o not in read_by_host]
    if "ir_outputs" not in meta:
        return [terms[o][0] if len(terms[o]) == 1 else ir.add(ir.unique_name(o), Add(), terms[o]) for o in free]
    outputs = []
    for name in json.loads(meta_str(meta["ir_outputs"]) or "[]"):
        if name in hosts or (name in ir and f"{name}.out" not in terms):
            outputs.append(name)
        elif f"{name}.out" in terms:
            values = terms[f"{name}.out"]
            outputs.append(values[0] if len(values) == 1 else ir.add(ir.unique_name(name), Add(), values))
        else:
            raise ExportError(f"graph output {name} is neither a host op nor a NIR Output {name}.out")
    return outputs
