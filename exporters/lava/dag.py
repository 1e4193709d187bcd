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
time), ``maxpool_current`` and ``silu`` (custom processes). Adapters: ``""`` (direct),
``"flatten"`` (``OutPort.flatten()`` into a Sparse), ``"reshape"`` (Sparse ``a_out`` reshaped to
the population's (W, H, C)).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.sparse as sp

from emsdeploy.errors import ExportError
from emsdeploy.fileio import atomic_write, open_hdf5
from emsdeploy.ir import Decode, Graph, Input, Kind
from emsdeploy.ir.linear import ConvMap, to_sparse
from emsdeploy.ir.ops.loihi import (
    FixedMaxPool,
    FixedSiLU,
    GradedRelay,
    HostConv,
    HostSparse,
    LoihiLIF,
    LoihiReadout,
    SynConv,
    SynSparse,
)

__all__ = ["FORMAT", "VERSION", "LavaDag", "ProcSpec", "dag_from_graph", "read_dag", "write_dag", "whc"]

FORMAT = "emsdeploy.lava-dag"
VERSION = 1


def whc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(C, H, W) -> Lava's (W, H, C)."""
    c, h, w = shape
    return (int(w), int(h), int(c))


def _lava_perm(shape: tuple[int, ...]) -> np.ndarray:
    """perm[i] = Lava (W, H, C) flat index of the (C, H, W) flat index i."""
    c, h, w = shape
    ci, yi, xi = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    return ((xi * h + yi) * c + ci).ravel()


def csr_to_lava(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, in_shape, out_shape) -> sp.csr_matrix:
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
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


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

    def proc(self, name: str) -> ProcSpec:
        for p in self.procs:
            if p.name == name:
                return p
        raise ExportError(f"the Lava DAG has no process {name!r}")

    def populations(self) -> list[ProcSpec]:
        return [p for p in self.procs if p.kind in ("lif", "readout", "maxpool_current", "silu", "relay")]


GRADED_BITS_KEY = "graded_message_bits"


def dag_from_graph(graph: Graph) -> LavaDag:
    """Lower a quantized, delay-aligned graph to Lava processes (see the module docstring)."""
    if not graph.attrs.get("delays_aligned"):
        raise ExportError("the Lava exporter needs a quantized, delay-aligned graph (quantize, then align_delays)")
    graded_bits = int(graph.attrs["loihi"][GRADED_BITS_KEY])
    procs: list[ProcSpec] = []
    edges: list[tuple[str, str, str, str, str]] = []
    readouts: dict[str, float] = {}
    decode = None
    inp = graph.input_node()
    for node in graph:
        op, name = node.op, node.name
        place = str(node.meta.get("partition", "chip"))
        ir_node = name
        if isinstance(op, Input):
            continue
        if isinstance(op, Decode):
            decode = {
                "name": name,
                "inputs": list(node.inputs),
                "nc": op.nc,
                "anchors": op.anchors.tolist(),
                "strides": list(op.strides),
            }
            continue
        if isinstance(op, (LoihiLIF, LoihiReadout)):
            kind = "readout" if isinstance(op, LoihiReadout) else "lif"
            shape = graph.shape(node.inputs[0])
            procs.append(
                ProcSpec(
                    name,
                    kind,
                    place,
                    ir_node,
                    {
                        "shape": whc(shape),
                        "du": op.du_u12,
                        "dv": op.dv_u12,
                        "vth": op.vth_u17,
                        "bias_exp": op.bias_exp_u3,
                        "latency": op.latency,
                        "scale": op.scale,
                    },
                    {"bias_mant": op.bias_mant_s13.transpose(2, 1, 0).astype(np.int32)},
                )
            )
            if kind == "readout":
                readouts[name] = op.scale
        elif isinstance(op, FixedMaxPool):
            procs.append(
                ProcSpec(
                    name,
                    "maxpool_current",
                    place,
                    ir_node,
                    {
                        "in_shape": whc(op.in_shape()),
                        "kernel": op.kernel,
                        "out_shift": op.out_shift_u5,
                        "latency": op.latency,
                    },
                    {"bias": op.bias_s24.transpose(2, 1, 0).astype(np.int32)},
                )
            )
        elif isinstance(op, GradedRelay):
            procs.append(
                ProcSpec(
                    name,
                    "relay",
                    place,
                    ir_node,
                    {"shape": whc(op.in_shape()), "latency": op.latency, "scale": op.scale},
                    {"bias": op.bias_s24.transpose(2, 1, 0).astype(np.int32)},
                )
            )
        elif isinstance(op, FixedSiLU):
            procs.append(
                ProcSpec(
                    name,
                    "silu",
                    place,
                    ir_node,
                    {
                        "shape": whc(op.in_shape()),
                        "tau": op.tau,
                        "inplace": op.inplace,
                        "scale_in": op.scale_in,
                        "scale_out": op.scale_out,
                        "latency": op.latency,
                    },
                    {"bias": op.bias_s24.transpose(2, 1, 0).astype(np.int32)},
                )
            )
        elif isinstance(op, (SynConv, SynSparse, HostConv, HostSparse)):
            src = node.inputs[0]
            dst = node.meta.get("population") or next(c.name for c in graph.consumers(name))
            graded = graph.kind(src) != Kind.SPIKE
            nmb = graded_bits if graded else 0
            src_shape, out_shape = graph.shape(src), graph.shape(name)
            if isinstance(op, SynConv) and op.delay_u6 > 0:
                # Lava's Conv has no delay: the same integers as a DelaySparse
                m = to_sparse(
                    ConvMap(
                        op.weight_s8.astype(np.float64),
                        op.stride,
                        op.padding,
                        op.dilation,
                        op.groups,
                        tuple(src_shape),
                        tuple(out_shape),
                    )
                ).matrix
                op = SynSparse(
                    m.data, m.indices, m.indptr, tuple(src_shape), tuple(out_shape), op.weight_exp_s4, op.delay_u6
                )
            if isinstance(op, SynConv):
                w = op.effective_weight()[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)  # true conv, (C_out, kW, kH, C_in)
                procs.append(
                    ProcSpec(
                        name,
                        "conv",
                        "chip",
                        ir_node,
                        {
                            "input_shape": whc(src_shape),
                            "stride": op.stride[::-1],
                            "padding": op.padding[::-1],
                            "dilation": op.dilation[::-1],
                            "groups": op.groups,
                            "num_message_bits": nmb,
                            "weight_exp": op.weight_exp_s4,
                        },
                        {"weight": np.ascontiguousarray(w).astype(np.int32)},
                    )
                )
                edges += [(src, "s_out", name, "s_in", ""), (name, "a_out", dst, "a_in", "")]
            elif isinstance(op, SynSparse):
                # weights 2m with exponent e - 1: Lava's mixed-sign mode drops the lowest weight bit
                mat = csr_to_lava(op.weight_s8.astype(np.int32) * 2, op.indices, op.indptr, op.in_shape, op.out_shape)
                kind = "delay_sparse" if op.delay_u6 > 0 else "sparse"
                procs.append(
                    ProcSpec(
                        name,
                        kind,
                        "chip",
                        ir_node,
                        {
                            "shape": [int(mat.shape[0]), int(mat.shape[1])],
                            "weight_exp": op.weight_exp_s4 - 1,
                            "num_message_bits": nmb,
                            "delay": op.delay_u6,
                            "out_shape": whc(op.out_shape),
                        },
                        {
                            "data": mat.data.astype(np.int32),
                            "indices": mat.indices.astype(np.int32),
                            "indptr": mat.indptr.astype(np.int64),
                        },
                    )
                )
                edges += [(src, "s_out", name, "s_in", "flatten"), (name, "a_out", dst, "a_in", "reshape")]
            else:
                params: dict[str, Any] = {
                    "shift": op.shift_u5,
                    "in_scale": op.in_scale,
                    "delay": op.delay_u6,
                    "in_shape": list(src_shape),
                    "out_shape": list(out_shape),
                }
                arrays: dict[str, np.ndarray] = {}
                if isinstance(op, HostConv):
                    params.update(
                        {
                            "form": "conv",
                            "stride": list(op.stride),
                            "padding": list(op.padding),
                            "dilation": list(op.dilation),
                            "groups": op.groups,
                        }
                    )
                    arrays["weight"] = op.weight_s24.astype(np.int32)  # PyTorch layout: the host computes in (C, H, W)
                else:
                    params["form"] = "sparse"
                    arrays.update({"data": op.weight_s24.astype(np.int32), "indices": op.indices, "indptr": op.indptr})
                if src != inp.name:
                    raise ExportError(f"{name}: a host term must read the input, it reads {src}")
                procs.append(ProcSpec(name, "host_source", "host", ir_node, params, arrays))
                edges.append((name, "s_out", dst, "a_in", ""))
        else:
            raise ExportError(f"{name} ({op.type_name}): no Lava lowering; run quantize and align_delays first")
    # every population's spikes or graded values go to the synapse groups that read them (edges above)
    return LavaDag(
        procs,
        edges,
        graph.time_steps,
        int(graph.attrs["latency"]),
        graph.encoding,
        tuple(inp.op.shape),  # type: ignore[attr-defined]
        float(graph.attrs.get("input_scale", 255.0)),
        list(graph.outputs),
        readouts,
        decode,
        {k: v for k, v in graph.attrs.items() if k not in ("quantization",)},
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


def _compact(a: np.ndarray) -> np.ndarray:
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
            edges,  # type: ignore[arg-type]
            int(f.attrs["time_steps"]),
            int(f.attrs["latency"]),
            str(f.attrs["encoding"]),
            tuple(int(s) for s in f.attrs["input_shape"]),  # type: ignore[arg-type]
            float(f.attrs["input_scale"]),
            json.loads(f.attrs["outputs"]),
            json.loads(f.attrs["readouts"]),
            json.loads(decode) if decode else None,
            json.loads(f.attrs["graph_attrs"]),
        )
