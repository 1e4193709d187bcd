"""The Lava process graph of a quantized IR, and its HDF5 file (``network.lava.h5``).

:func:`dag_from_graph` lowers a quantized, delay-aligned IR graph to a :class:`LavaDag`: one
:class:`ProcSpec` per Lava process with its parameters already in Lava's conventions ((W, H, C)
shapes, true-convolution kernels, ``2m`` Sparse weights with exponent ``e − 1``, (W, H, C)-order
sparse matrices), plus the port connections. :mod:`.network` builds and runs it.

File layout (format ``emsdeploy.lava-dag``, version 1; documented in docs/lava.md)::

    /                 attrs: format, version, time_steps, latency, encoding, input_shape (C,H,W),
                             input_scale, outputs (JSON), decode (JSON or ""), graph_attrs (JSON)
    /processes/<NNNNN> attrs: name, kind, placement, ir_node, params (JSON)
                       datasets: the arrays of that process (weight, bias_mant, data/indices/indptr, ...)
    /connections      attr "edges": JSON list of [src, src_port, dst, dst_port, adapter]

Kinds: ``lif``/``readout`` (LIFReset), ``relay`` (GradedVec, plus a constant RingBuffer for its
bias), ``conv`` (Conv; graded input: ``num_message_bits > 0``), ``sparse`` (Sparse), ``delay_sparse``
(DelaySparse), ``host_source`` (RingBuffer fed by the host term, computed from the input at run
time), ``maxpool_current``, ``silu`` and ``ilif`` (custom processes; ``ilif`` is SpikeYOLO's
I-LIF), ``relay_acc`` (a relay summing its D sub-steps: spike-driven mode only). Adapters: ``""`` (direct),
``"flatten"`` (``OutPort.flatten()`` into a Sparse), ``"reshape"`` (Sparse ``a_out`` reshaped to
the population's (W, H, C)).

**Spike modes** (integer spikes 0..D of an I-LIF, docs/spikeyolo.md): ``graded`` sends each
integer as one graded spike (readers: ``num_message_bits`` = the bits of D); ``spike-driven``
sends it as D binary spikes over D sub-steps (readers: ``num_message_bits = 0``), so every step
of the network is D Lava time steps, every population sums its input over a step's sub-steps
and updates once, delays are D times longer, and a readout's bias enters once per step. The
file records ``spike_mode`` and ``substeps`` (absent: graded, 1).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from emsdeploy.errors import ExportError
from emsdeploy.fileio import atomic_write, open_hdf5
from emsdeploy.ir import Decode, DFLDecode, Graph, Input, Kind, Node, Op
from emsdeploy.ir.linear import ConvMap, to_sparse
from emsdeploy.ir.ops import loihi

__all__ = [
    "FORMAT",
    "LOWERINGS",
    "SPIKE_MODES",
    "VERSION",
    "LavaDag",
    "ProcSpec",
    "dag_from_graph",
    "integer_levels",
    "lava_steps",
    "message_bits",
    "read_dag",
    "write_dag",
    "whc",
]

FORMAT = "emsdeploy.lava-dag"
VERSION = 1
SPIKE_MODES = ("graded", "spike-driven")

Array = npt.NDArray[Any]


def whc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(C, H, W) -> Lava's (W, H, C)."""
    c, h, w = shape
    return (int(w), int(h), int(c))


def _lava_perm(shape: tuple[int, ...]) -> Array:
    """perm[i] = Lava (W, H, C) flat index of the (C, H, W) flat index i."""
    c, h, w = shape
    ci, yi, xi = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    perm: Array = ((xi * h + yi) * c + ci).ravel()
    return perm


def csr_to_lava(
    data: Array, indices: Array, indptr: Array, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> sp.csr_matrix:
    """A (C, H, W)-ordered CSR matrix re-indexed for Lava's (W, H, C) flattening."""
    n_out, n_in = int(np.prod(out_shape)), int(np.prod(in_shape))
    coo = sp.csr_matrix((data, indices, indptr), shape=(n_out, n_in)).tocoo()
    po, pi = _lava_perm(out_shape), _lava_perm(in_shape)
    return sp.csr_matrix((coo.data, (po[coo.row], pi[coo.col])), shape=(n_out, n_in))


@dataclass
class ProcSpec:
    """One Lava process: ``kind`` says which class, ``params`` and ``arrays`` its arguments."""

    name: str
    kind: str
    placement: str
    ir_node: str
    params: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, Array] = field(default_factory=dict)


@dataclass
class LavaDag:
    """A Lava process graph plus what the host needs to feed and read it."""

    procs: list[ProcSpec]
    edges: list[tuple[str, str, str, str, str]]
    time_steps: int
    latency: int
    encoding: str
    input_shape: tuple[int, int, int]
    input_scale: float
    outputs: list[str]
    readouts: dict[str, float]  # name -> scale
    decode: dict[str, Any] | None = None
    graph_attrs: dict[str, Any] = field(default_factory=dict)
    spike_mode: str = "graded"
    substeps: int = 1  # Lava time steps per network step: D when spike-driven, else 1

    def run_steps(self, time_steps: int) -> int:
        """Lava time steps of one inference: ``T + L`` graded; spike-driven ``D·(T + L − 1) + 1``
        with readouts (their last valid step ends at its first sub-step), else ``D·(T + L)``."""
        return lava_steps(time_steps, self.latency, self.substeps, bool(self.readouts))

    def proc(self, name: str) -> ProcSpec:
        for p in self.procs:
            if p.name == name:
                return p
        raise ExportError(f"the Lava DAG has no process {name!r}")

    def populations(self) -> list[ProcSpec]:
        return [
            p
            for p in self.procs
            if p.kind in ("lif", "readout", "maxpool_current", "silu", "relay", "relay_acc", "ilif")
        ]


GRADED_BITS_KEY = "graded_message_bits"


def integer_levels(graph: Graph) -> int | None:
    """D of the graph's I-LIFs (None without any); one D per network (one sub-step count)."""
    levels = {int(n.op.levels) for n in graph if isinstance(n.op, loihi.LoihiIntegerLIF)}
    if len(levels) > 1:
        raise ExportError(f"the I-LIFs use different levels D {sorted(levels)}; one network runs one D")
    return levels.pop() if levels else None


def lava_steps(time_steps: int, latency: int, substeps: int, readouts: bool) -> int:
    """Lava time steps of one inference of T steps with latency L (see :meth:`LavaDag.run_steps`)."""
    if substeps == 1:
        return time_steps + latency
    return substeps * (time_steps + latency - 1) + 1 if readouts else substeps * (time_steps + latency)


def message_bits(levels: int) -> int:
    """Bits of a graded spike carrying an integer 0..D."""
    return max(1, int(levels).bit_length())


# ---- lowering: one function per IR op, found in LOWERINGS ---------------------------------------


@dataclass
class _DagBuilder:
    """What the lowerings append to while :func:`dag_from_graph` walks the graph."""

    graph: Graph
    graded_bits: int
    input_name: str
    substeps: int = 1
    integer_bits: int = 0
    procs: list[ProcSpec] = field(default_factory=list)
    edges: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    readouts: dict[str, float] = field(default_factory=dict)
    decode: dict[str, Any] | None = None

    def population(self, node: Node, kind: str, params: dict[str, Any], arrays: dict[str, Array]) -> None:
        place = str(node.meta.get("partition", "chip"))
        self.procs.append(ProcSpec(node.name, kind, place, node.name, params, arrays))

    def synapse_ends(self, node: Node) -> tuple[str, str, int]:
        """(source, the population it feeds, num_message_bits: 0 for spikes, the bits of D for
        graded integer spikes (0 when spike-driven: binary), else the graded width)."""
        src = node.inputs[0]
        dst = node.meta.get("population") or next(c.name for c in self.graph.consumers(node.name))
        kind = self.graph.kind(src)
        if kind == Kind.INTEGER:
            return src, str(dst), 0 if self.substeps > 1 else self.integer_bits
        return src, str(dst), self.graded_bits if kind != Kind.SPIKE else 0

    def spike_driven(self, node: Node, what: str) -> None:
        """Refuse what the spike-driven mode has no lowering for."""
        if self.substeps > 1:
            raise ExportError(
                f"{node.name} ({node.op.type_name}): {what} has no spike-driven lowering (it would update on "
                "every sub-step); spike-driven networks hold I-LIFs, readouts, relays, max-pools of currents "
                "and SiLUs: export with spike_mode='graded'"
            )


def _whc_ints(a: Array) -> Array:
    """A per-neuron (C, H, W) array in Lava's (W, H, C) order, int32."""
    return a.transpose(2, 1, 0).astype(np.int32)


def _input(b: _DagBuilder, node: Node) -> None:
    """The network input: fed by the host terms that read it, no process of its own."""


def _decode(b: _DagBuilder, node: Node) -> None:
    op: Decode = node.op  # type: ignore[assignment]
    b.decode = {
        "name": node.name,
        "inputs": list(node.inputs),
        "nc": op.nc,
        "anchors": op.anchors.tolist(),
        "strides": list(op.strides),
    }


def _decode_dfl(b: _DagBuilder, node: Node) -> None:
    op: DFLDecode = node.op  # type: ignore[assignment]
    b.decode = {
        "name": node.name,
        "inputs": list(node.inputs),
        "nc": op.nc,
        "strides": list(op.strides),
        "kind": "dfl",
        "reg_max": op.reg_max,
    }


def _lif(b: _DagBuilder, node: Node) -> None:
    op: loihi.LoihiLIF | loihi.LoihiReadout = node.op  # type: ignore[assignment]
    kind = "readout" if isinstance(op, loihi.LoihiReadout) else "lif"
    if kind == "lif":
        b.spike_driven(node, "a binary LIF (lava LIFReset)")
    params = {
        "shape": whc(b.graph.shape(node.inputs[0])),
        "du": op.du_u12,
        "dv": op.dv_u12,
        "vth": op.vth_u17,
        "bias_exp": op.bias_exp_u3,
        "latency": op.latency,
        "scale": op.scale,
    }
    b.population(node, kind, params, {"bias_mant": _whc_ints(op.bias_mant_s13)})
    if kind == "readout":
        b.readouts[node.name] = op.scale


def _maxpool(b: _DagBuilder, node: Node) -> None:
    op: loihi.FixedMaxPool = node.op  # type: ignore[assignment]
    params = {
        "in_shape": whc(op.in_shape()),
        "kernel": op.kernel,
        "stride": op.stride,
        "padding": op.padding,
        "out_shift": op.out_shift_u5,
        "latency": op.latency,
    }
    b.population(node, "maxpool_current", params, {"bias": _whc_ints(op.bias_s24)})


def _relay(b: _DagBuilder, node: Node) -> None:
    op: loihi.GradedRelay = node.op  # type: ignore[assignment]
    params = {"shape": whc(op.in_shape()), "latency": op.latency, "scale": op.scale}
    if b.substeps > 1:  # a GradedVec would forward each sub-step a step early: sum them first
        b.procs.append(ProcSpec(node.name, "relay_acc", "custom", node.name, params, {"bias": _whc_ints(op.bias_s24)}))
        return
    b.population(node, "relay", params, {"bias": _whc_ints(op.bias_s24)})


def _integer_lif(b: _DagBuilder, node: Node) -> None:
    op: loihi.LoihiIntegerLIF = node.op  # type: ignore[assignment]
    params = {
        "shape": whc(op.in_shape()),
        "levels": op.levels,
        "decay_shift": op.decay_shift_u4,
        "frac_bits": op.frac_bits_u5,
        "scale": op.scale,
        "latency": op.latency,
        "uv_bits": int(b.graph.attrs["loihi"]["uv_bits"]),
    }
    b.population(node, "ilif", params, {"bias": _whc_ints(op.bias_s24)})


def _silu(b: _DagBuilder, node: Node) -> None:
    op: loihi.FixedSiLU = node.op  # type: ignore[assignment]
    params = {
        "shape": whc(op.in_shape()),
        "tau": op.tau,
        "inplace": op.inplace,
        "scale_in": op.scale_in,
        "scale_out": op.scale_out,
        "latency": op.latency,
    }
    b.population(node, "silu", params, {"bias": _whc_ints(op.bias_s24)})


def _syn_conv(b: _DagBuilder, node: Node) -> None:
    op: loihi.SynConv = node.op  # type: ignore[assignment]
    src, dst, nmb = b.synapse_ends(node)
    src_shape, out_shape = b.graph.shape(src), b.graph.shape(node.name)
    if op.delay_u6 > 0:  # Lava's Conv has no delay: the same integers as a DelaySparse
        geometry = (op.stride, op.padding, op.dilation, op.groups, tuple(src_shape), tuple(out_shape))
        m = to_sparse(ConvMap(op.weight_s8.astype(np.float64), *geometry)).matrix
        sparse = loihi.SynSparse(
            m.data, m.indices, m.indptr, tuple(src_shape), tuple(out_shape), op.weight_exp_s4, op.delay_u6
        )
        _sparse_spec(b, node.name, sparse, src, dst, nmb)
        return
    kernel, groups = lava_groups(op.effective_weight(), op.groups)
    w = kernel[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)  # true conv, (C_out, kW, kH, C_in)
    params = {
        "input_shape": whc(src_shape),
        "stride": op.stride[::-1],
        "padding": op.padding[::-1],
        "dilation": op.dilation[::-1],
        "groups": groups,
        "num_message_bits": nmb,
        "weight_exp": op.weight_exp_s4,
    }
    b.procs.append(
        ProcSpec(node.name, "conv", "chip", node.name, params, {"weight": np.ascontiguousarray(w).astype(np.int32)})
    )
    b.edges += [(src, "s_out", node.name, "s_in", ""), (node.name, "a_out", dst, "a_in", "")]


LAVA_CONV_GROUPS_MAX = 127  # lava-nc 0.10's Conv keeps groups in an int8 Var (proc/conv/models.py)


def lava_groups(weight: Array, groups: int) -> tuple[Array, int]:
    """A kernel Lava's Conv can hold: with more than 127 groups (SpikeYOLO's depthwise 7×7 over 192
    to 768 channels) merge r groups into one, the largest divisor of ``groups`` up to 127, with a
    block-diagonal kernel (zeros outside each old group: the same sums)."""
    if groups <= LAVA_CONV_GROUPS_MAX:
        return weight, groups
    g2 = max(d for d in range(1, LAVA_CONV_GROUPS_MAX + 1) if groups % d == 0)
    r = groups // g2
    c_out, c_in_g = weight.shape[:2]
    block = (np.arange(c_out) // (c_out // groups)) % r  # each output's old group within its new one
    merged = np.zeros((c_out, c_in_g * r, *weight.shape[2:]), weight.dtype)
    for j in range(r):
        merged[block == j, j * c_in_g : (j + 1) * c_in_g] = weight[block == j]
    return merged, g2


def _syn_sparse(b: _DagBuilder, node: Node) -> None:
    _sparse_spec(b, node.name, node.op, *b.synapse_ends(node))  # type: ignore[arg-type]


def _sparse_spec(b: _DagBuilder, name: str, op: loihi.SynSparse, src: str, dst: str, nmb: int) -> None:
    """A Sparse (DelaySparse when delayed) with weights 2m and exponent e − 1: Lava's mixed-sign
    mode drops the lowest weight bit."""
    mat = csr_to_lava(op.weight_s8.astype(np.int32) * 2, op.indices, op.indptr, op.in_shape, op.out_shape)
    params = {
        "shape": [int(mat.shape[0]), int(mat.shape[1])],
        "weight_exp": op.weight_exp_s4 - 1,
        "num_message_bits": nmb,
        "delay": op.delay_u6,
        "out_shape": whc(op.out_shape),
    }
    arrays = {
        "data": mat.data.astype(np.int32),
        "indices": mat.indices.astype(np.int32),
        "indptr": mat.indptr.astype(np.int64),
    }
    if b.substeps > 1 and op.delay_u6 > 0:  # spike-driven: a step is D time steps
        stretched = op.delay_u6 * b.substeps
        params["delay"] = stretched
        limit = int(b.graph.attrs["loihi"]["max_delay"])
        if stretched > limit:
            raise ExportError(
                f"{name}: a delay of {op.delay_u6} steps is {stretched} sub-steps spike-driven, past "
                f"DelaySparse's {limit}; export with spike_mode='graded'"
            )
    kind = "delay_sparse" if op.delay_u6 > 0 else "sparse"
    b.procs.append(ProcSpec(name, kind, "chip", name, params, arrays))
    b.edges += [(src, "s_out", name, "s_in", "flatten"), (name, "a_out", dst, "a_in", "reshape")]


def _host_term(b: _DagBuilder, node: Node) -> None:
    op: loihi.HostConv | loihi.HostSparse = node.op  # type: ignore[assignment]
    src, dst, _ = b.synapse_ends(node)
    if src != b.input_name:
        raise ExportError(f"{node.name}: a host term must read the input, it reads {src}")
    params: dict[str, Any] = {
        "shift": op.shift_u5,
        "in_scale": op.in_scale,
        "delay": op.delay_u6,
        "in_shape": list(b.graph.shape(src)),
        "out_shape": list(b.graph.shape(node.name)),
    }
    arrays: dict[str, Array] = {}
    if isinstance(op, loihi.HostConv):
        geometry = {"stride": list(op.stride), "padding": list(op.padding), "dilation": list(op.dilation)}
        params.update({"form": "conv", **geometry, "groups": op.groups})
        arrays["weight"] = op.weight_s24.astype(np.int32)  # PyTorch layout: the host computes in (C, H, W)
    else:
        params["form"] = "sparse"
        arrays.update({"data": op.weight_s24.astype(np.int32), "indices": op.indices, "indptr": op.indptr})
    b.procs.append(ProcSpec(node.name, "host_source", "host", node.name, params, arrays))
    b.edges.append((node.name, "s_out", dst, "a_in", ""))


LOWERINGS: dict[type[Op], Callable[[_DagBuilder, Node], None]] = {
    Input: _input,
    Decode: _decode,
    loihi.LoihiLIF: _lif,
    loihi.LoihiReadout: _lif,
    loihi.FixedMaxPool: _maxpool,
    loihi.GradedRelay: _relay,
    loihi.FixedSiLU: _silu,
    loihi.LoihiIntegerLIF: _integer_lif,
    loihi.SynConv: _syn_conv,
    loihi.SynSparse: _syn_sparse,
    loihi.HostConv: _host_term,
    loihi.HostSparse: _host_term,
    DFLDecode: _decode_dfl,
}


def dag_from_graph(graph: Graph, spike_mode: str = "graded") -> LavaDag:
    """Lower a quantized, delay-aligned graph to Lava processes (see the module docstring): one
    :data:`LOWERINGS` function per node. Every population's spikes or graded values go to the
    synapse groups that read them (the edges the synapse lowerings add). ``spike_mode``: how
    integer spikes travel, ``"graded"`` or ``"spike-driven"`` (no effect without I-LIFs)."""
    if not graph.attrs.get("delays_aligned"):
        raise ExportError("the Lava exporter needs a quantized, delay-aligned graph (quantize, then align_delays)")
    if spike_mode not in SPIKE_MODES:
        raise ExportError(f"unknown spike mode {spike_mode!r}; modes: {', '.join(SPIKE_MODES)}")
    levels = integer_levels(graph)
    substeps = levels if spike_mode == "spike-driven" and levels else 1
    inp = graph.input_node()
    b = _DagBuilder(graph, int(graph.attrs["loihi"][GRADED_BITS_KEY]), inp.name, substeps, message_bits(levels or 1))
    for node in graph:
        lower = LOWERINGS.get(type(node.op))
        if lower is None:
            raise ExportError(
                f"{node.name} ({node.op.type_name}): no Lava lowering; run quantize and align_delays first "
                f"(lowered: {', '.join(t.__name__ for t in LOWERINGS)})"
            )
        lower(b, node)
    return LavaDag(
        b.procs,
        b.edges,
        graph.time_steps,
        int(graph.attrs["latency"]),
        graph.encoding,
        tuple(inp.op.shape),  # type: ignore[attr-defined]
        float(graph.attrs.get("input_scale", 255.0)),
        list(graph.outputs),
        b.readouts,
        b.decode,
        {k: v for k, v in graph.attrs.items() if k not in ("quantization",)},
        spike_mode if levels else "graded",
        substeps,
    )


# ---- HDF5 ---------------------------------------------------------------------------------------


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    return x


COMPRESS_ABOVE = 1 << 16  # bytes: larger arrays are stored gzip-1 + shuffle (weights, per-neuron biases)


def _compact(a: Array) -> Array:
    """An integer array in the smallest signed type holding its values (the loader casts every
    array to Lava's type): 8-bit mantissas take one byte, not four."""
    if a.dtype.kind not in "iu" or a.size == 0:
        return a
    lo, hi = int(a.min()), int(a.max())
    for t in (np.int8, np.int16, np.int32):
        if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max:
            return a.astype(t) if np.dtype(t).itemsize < a.dtype.itemsize else a
    return a


def write_dag(dag: LavaDag, path: str | Path) -> Path:
    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w", track_order=True) as f:
            f.attrs["format"] = FORMAT
            f.attrs["version"] = VERSION
            f.attrs["time_steps"] = dag.time_steps
            f.attrs["latency"] = dag.latency
            f.attrs["encoding"] = dag.encoding
            f.attrs["input_shape"] = list(dag.input_shape)
            f.attrs["input_scale"] = dag.input_scale
            f.attrs["outputs"] = json.dumps(dag.outputs)
            f.attrs["readouts"] = json.dumps(dag.readouts)
            f.attrs["decode"] = json.dumps(dag.decode) if dag.decode else ""
            f.attrs["graph_attrs"] = json.dumps(_jsonable(dag.graph_attrs))
            f.attrs["spike_mode"] = dag.spike_mode
            f.attrs["substeps"] = dag.substeps
            g = f.create_group("processes", track_order=True)
            for i, p in enumerate(dag.procs):
                pg = g.create_group(f"{i:05d}")
                pg.attrs["name"] = p.name
                pg.attrs["kind"] = p.kind
                pg.attrs["placement"] = p.placement
                pg.attrs["ir_node"] = p.ir_node
                pg.attrs["params"] = json.dumps(_jsonable(p.params))
                for k, a in p.arrays.items():
                    a = _compact(a)
                    big = a.nbytes >= COMPRESS_ABOVE
                    pg.create_dataset(
                        k,
                        data=a,
                        fletcher32=a.size > 0,
                        chunks=True if a.size > 0 else None,
                        compression="gzip" if big else None,
                        compression_opts=1 if big else None,
                        shuffle=big,
                    )
            c = f.create_group("connections")
            c.attrs["edges"] = json.dumps([list(e) for e in dag.edges])

    return atomic_write(path, write)


def read_dag(path: str | Path) -> LavaDag:
    path = Path(path)
    with open_hdf5(path, error=ExportError, compressed=True) as f:  # the checked reader: no links, bounded sizes
        if f.attrs.get("format") != FORMAT:
            raise ExportError(f"{path}: not an emsdeploy Lava DAG (format {f.attrs.get('format')!r})")
        if int(f.attrs["version"]) > VERSION:
            raise ExportError(
                f"{path}: Lava DAG version {int(f.attrs['version'])} is newer than this emsdeploy reads ({VERSION})"
            )
        procs = []
        for key in sorted(f["processes"]):
            pg = f["processes"][key]
            procs.append(
                ProcSpec(
                    str(pg.attrs["name"]),
                    str(pg.attrs["kind"]),
                    str(pg.attrs["placement"]),
                    str(pg.attrs["ir_node"]),
                    json.loads(pg.attrs["params"]),
                    {k: pg[k][()] for k in pg},
                )
            )
        edges = [tuple(e) for e in json.loads(f["connections"].attrs["edges"])]
        decode = str(f.attrs["decode"])
        return LavaDag(
            procs,
            edges,
            int(f.attrs["time_steps"]),
            int(f.attrs["latency"]),
            str(f.attrs["encoding"]),
            tuple(int(s) for s in f.attrs["input_shape"]),  # type: ignore[arg-type]
            float(f.attrs["input_scale"]),
            json.loads(f.attrs["outputs"]),
            json.loads(f.attrs["readouts"]),
            json.loads(decode) if decode else None,
            json.loads(f.attrs["graph_attrs"]),
            str(f.attrs.get("spike_mode", "graded")),
            int(f.attrs.get("substeps", 1)),
        )
