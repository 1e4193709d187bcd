"""Build a :class:`~.dag.LavaDag` as lava-nc processes and run it on ``Loihi2SimCfg(select_tag="fixed_pt")``.

The host side of a run: the input is quantized (``x_int = rint(x · input_scale)``), every host
term is computed from it in exact integer arithmetic and sent by a ``RingBuffer`` straight into
its population's ``a_in`` (no synapse: no delay, besides the term's own alignment delay, which
is a shift of the buffer). The run lasts ``T + latency`` steps; populations are ``LIFReset``
processes reset once, at time step ``latency + 1``. Spikes are read from ``io.sink.RingBuffer``
sinks, readouts from the integrators' ``v`` after the run. ``net.stop()`` always runs.

The result is the run contract's :class:`~emsdeploy.ir.runtime.Trace` (numpy arrays, and the
run's ``timings``): ``records[pop]["s"]`` spikes ``[T, B, C, H, W]`` aligned to each population's
latency (and ``"s_raw"``, all ``T + latency`` steps, when asked), ``"y"``/``"y_raw"`` the graded
outputs of custom processes, ``records[readout]["v"]`` the integer integrator state ``[B, C, H, W]``.

Spike-driven networks (``dag.substeps = D > 1``, docs/spikeyolo.md) run D Lava time steps per
network step: host terms and a readout's bias arrive at each step's first sub-step, custom
populations reset at the first sub-step of their first valid step, readouts at the sub-step
after the last one before it. Records are per network step (the sum of a step's D sub-steps:
an I-LIF's integer, a graded output), over the ``T + L − 1`` whole steps of the run;
``"sub_raw"`` keeps every sub-step (an I-LIF's binary spikes).
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse import SparseEfficiencyWarning

from emsdeploy.errors import SimulationError
from emsdeploy.ir.runtime import RecordSpec, Trace, decode_dfl, decode_readouts, encoding_steps, select_records

from ._require import require_lava
from .dag import LavaDag, ProcSpec

__all__ = ["LavaNetwork", "host_term_values"]


def _conv_chw_int(x: np.ndarray, w: np.ndarray, stride, padding, dilation, groups) -> np.ndarray:
    """Integer cross-correlation of (C, H, W) with (O, C/g, kH, kW) in int64 (exact)."""
    require_lava()  # the kernel lives beside the Lava processes
    from .procs import conv_true_whc

    # conv_true_whc convolves (W, H, C) with a true-convolution kernel (O, kW, kH, C): flip ours
    w_true = np.asarray(w)[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)
    out = conv_true_whc(
        np.asarray(x).transpose(2, 1, 0),
        w_true,
        tuple(stride)[::-1],
        tuple(padding)[::-1],
        tuple(dilation)[::-1],
        int(groups),
    )
    return np.rint(out).astype(np.int64).transpose(2, 1, 0)  # exact: integers below 2**53


def host_term_values(spec: ProcSpec, frames: list[np.ndarray | None], n_steps: int, substeps: int = 1) -> np.ndarray:
    """The RingBuffer data of a host term: ``(W, H, C, n_steps)`` int32, zero where no frame.

    ``frames[k]`` is the quantized input of step k (C, H, W) or None; the term delivers frame k at
    step ``k + delay``, at its first sub-step (time step ``substeps · (k + delay)``) when spike-driven."""
    p = spec.params
    c, h, w = p["out_shape"]
    data = np.zeros((w, h, c, n_steps), np.int64)
    cache: dict[int, np.ndarray] = {}
    for n in range((n_steps + substeps - 1) // substeps):
        k = n - int(p["delay"])
        x = frames[k] if 0 <= k < len(frames) else None
        if x is None:
            continue
        key = id(x)
        if key not in cache:
            if p["form"] == "conv":
                acc = _conv_chw_int(x, spec.arrays["weight"], p["stride"], p["padding"], p["dilation"], p["groups"])
            else:
                n_out, n_in = int(np.prod(p["out_shape"])), int(np.prod(p["in_shape"]))
                m = sp.csr_matrix(
                    (
                        spec.arrays["data"].astype(np.int64),
                        spec.arrays["indices"].astype(np.int64),
                        spec.arrays["indptr"].astype(np.int64),
                    ),
                    shape=(n_out, n_in),
                )
                acc = np.asarray(m @ x.reshape(-1).astype(np.int64)).reshape(p["out_shape"])
            sh = int(p["shift"])
            val = (acc + (1 << (sh - 1))) >> sh if sh > 0 else acc
            cache[key] = val.transpose(2, 1, 0)
        data[..., n * substeps] = cache[key]
    return data.astype(np.int32)


class LavaNetwork:
    """A Lava process graph ready to run (built fresh for every sample).

    Args:
        dag: the lowered graph (:func:`~.dag.dag_from_graph` or :func:`~.dag.read_dag`).
        fast_models: select :class:`~.procs.PyConvModelFast` for every ``Conv`` and
            :class:`~.procs.PyDelaySparseModelFast` for every ``DelaySparse`` (the same integers
            as lava's stock models, much faster); False runs the stock models.
    """

    name = "lava"

    def __init__(self, dag: LavaDag, fast_models: bool = True) -> None:
        self.dag = dag
        self.fast_models = fast_models

    def __repr__(self) -> str:  # print(net): the process table, as netx prints its layers
        from .describe import describe

        return describe(self)

    # -- building -----------------------------------------------------------------------------
    def build(
        self, frames: list[np.ndarray | None], time_steps: int, record: Collection[str] = (), folder: str | None = None
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Instantiate the processes for one sample; returns (processes by name, recording files
        by population name). ``record`` needs ``folder`` for the recording files."""
        require_lava()
        from lava.proc.conv.process import Conv
        from lava.proc.graded.process import GradedVec
        from lava.proc.io.source import RingBuffer as Source
        from lava.proc.lif.process import LIFReset
        from lava.proc.sparse.process import DelaySparse, Sparse
        from lava.utils.weightutils import SignMode

        from .procs import CurrentMaxPool, IntegerLIFFixed, RelayAccumulator, SiLUFixed

        n_steps = self.dag.run_steps(time_steps)
        sub = self.dag.substeps
        procs: dict[str, Any] = {}
        for p in self.dag.procs:
            a, q = p.arrays, p.params
            reset_step = sub * int(q.get("latency", 0)) + 1  # the first sub-step of the first valid step
            if p.kind in ("lif", "readout"):
                bias_mant = a["bias_mant"].astype(np.int32)
                if sub > 1:  # the bias enters once per step (through a_in), the reset follows the last sub-step before
                    self._step_bias(procs, p, bias_mant << int(q["bias_exp"]), n_steps)
                    bias_mant = np.zeros_like(bias_mant)
                    reset_step = max(1, sub * (int(q["latency"]) - 1) + 2)
                procs[p.name] = LIFReset(
                    shape=tuple(q["shape"]),
                    du=int(q["du"]),
                    dv=int(q["dv"]),
                    vth=int(q["vth"]),
                    bias_mant=bias_mant,
                    bias_exp=int(q["bias_exp"]),
                    reset_interval=n_steps,
                    reset_offset=reset_step,
                    name=p.name,
                )
                if f"{p.name}:bias" in procs:
                    procs[f"{p.name}:bias"].s_out.connect(procs[p.name].a_in)
            elif p.kind == "conv":
                procs[p.name] = Conv(
                    weight=a["weight"].astype(np.int32),
                    input_shape=tuple(q["input_shape"]),
                    stride=tuple(q["stride"]),
                    padding=tuple(q["padding"]),
                    dilation=tuple(q["dilation"]),
                    groups=int(q["groups"]),
                    num_message_bits=int(q["num_message_bits"]),
                    name=p.name,
                )
            elif p.kind in ("sparse", "delay_sparse"):
                shape = tuple(q["shape"])
                w = sp.csr_matrix(
                    (a["data"].astype(np.int32), a["indices"].astype(np.int32), a["indptr"].astype(np.int64)),
                    shape=shape,
                )
                common = dict(
                    weights=w,
                    weight_exp=int(q["weight_exp"]),
                    num_message_bits=int(q["num_message_bits"]),
                    sign_mode=SignMode.MIXED,
                    name=p.name,
                )
                if p.kind == "sparse":
                    procs[p.name] = Sparse(**common)
                else:
                    d = w.copy()
                    d.data = np.full(d.data.shape, int(q["delay"]), dtype=int)
                    procs[p.name] = DelaySparse(delays=d, max_delay=int(q["delay"]), **common)
            elif p.kind == "host_source":
                procs[p.name] = Source(data=host_term_values(p, frames, n_steps, sub))
            elif p.kind == "maxpool_current":
                procs[p.name] = CurrentMaxPool(
                    in_shape=tuple(q["in_shape"]),
                    kernel=int(q["kernel"]),
                    stride=int(q.get("stride", q["kernel"])),
                    padding=int(q.get("padding", 0)),
                    bias=a["bias"].astype(np.int32),
                    out_shift=int(q["out_shift"]),
                    substeps=sub,
                    name=p.name,
                )
            elif p.kind == "relay":
                procs[p.name] = GradedVec(shape=tuple(q["shape"]), vth=0)  # (no name argument in lava-nc 0.10)
                bias = a["bias"].astype(np.int32)
                if np.any(bias):  # a constant source into a_in adds the bias (InPorts sum)
                    src = Source(data=np.repeat(bias[..., None], n_steps, axis=-1))
                    src.s_out.connect(procs[p.name].a_in)
                    procs[f"{p.name}:bias"] = src
            elif p.kind == "silu":
                procs[p.name] = SiLUFixed(
                    shape=tuple(q["shape"]),
                    bias=a["bias"].astype(np.int32),
                    tau=float(q["tau"]),
                    inplace=bool(q["inplace"]),
                    scale_in=float(q["scale_in"]),
                    scale_out=float(q["scale_out"]),
                    reset_step=reset_step,
                    substeps=sub,
                    name=p.name,
                )
            elif p.kind == "ilif":
                procs[p.name] = IntegerLIFFixed(
                    shape=tuple(q["shape"]),
                    bias=a["bias"].astype(np.int32),
                    levels=int(q["levels"]),
                    decay_shift=int(q["decay_shift"]),
                    frac_bits=int(q["frac_bits"]),
                    scale=float(q["scale"]),
                    uv_bits=int(q["uv_bits"]),
                    reset_step=reset_step,
                    substeps=sub,
                    name=p.name,
                )
            elif p.kind == "relay_acc":
                procs[p.name] = RelayAccumulator(
                    shape=tuple(q["shape"]), bias=a["bias"].astype(np.int32), substeps=sub, name=p.name
                )
            else:
                raise SimulationError(f"{p.name}: unknown Lava process kind {p.kind!r}")
        for src, sport, dst, dport, adapter in self.dag.edges:
            out = getattr(procs[src], sport)
            inp = getattr(procs[dst], dport)
            if adapter == "flatten":
                out = out.flatten()
            elif adapter == "reshape":
                out = out.reshape(
                    tuple(self.dag.proc(dst).params.get("shape") or self.dag.proc(dst).params["in_shape"])
                )
            out.connect(inp)
        return procs, attach_recorder(
            procs, [n for n in record if self.population_kind(n) != "readout"], n_steps, folder
        )

    def _step_bias(self, procs: dict[str, Any], p: ProcSpec, bias_v: np.ndarray, n_steps: int) -> None:
        """Spike-driven readouts: the bias (v units) as a constant into ``a_in`` at the first sub-step
        of every step, ``bias_v >> act_shift`` (whole a_in units: the quantizer's bias_exp >= act_shift)."""
        require_lava()
        from lava.proc.io.source import RingBuffer as Source

        act = int(self.dag.graph_attrs["loihi"]["act_shift"])
        if np.any(bias_v % (1 << act)):
            raise SimulationError(
                f"{p.name}: its bias is not a whole number of a_in units (bias_exp < {act}); a spike-driven "
                "readout adds it once per step through a_in: quantize the graph again"
            )
        if not np.any(bias_v):
            return
        data = np.zeros((*bias_v.shape, n_steps), np.int32)
        data[..., :: self.dag.substeps] = (bias_v >> act)[..., None]
        procs[f"{p.name}:bias"] = Source(data=data)

    # -- running --------------------------------------------------------------------------------
    def _frames(self, x: np.ndarray, time_steps: int | None) -> tuple[int, list[list[np.ndarray | None]]]:
        """``(T, per sample: the quantized input of each step)``. A direct image is quantized once
        and the same array stands for every step, so each host term computes it once."""
        T, step = encoding_steps(x, self.dag.encoding, self.dag.input_shape, time_steps, self.dag.time_steps)
        frames = [step(k) for k in range(T)]  # all alive at once, so their ids are distinct
        quantized: dict[int, list[np.ndarray]] = {}  # id(step input) -> its samples, quantized
        per_step = []
        for frame in frames:
            if id(frame) not in quantized:
                quantized[id(frame)] = [self._quantize(frame[b]) for b in range(x.shape[0])]
            per_step.append(quantized[id(frame)])
        return T, [[per_step[k][b] for k in range(T)] for b in range(x.shape[0])]

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        return np.rint(np.asarray(x, np.float64) * self.dag.input_scale).astype(np.int64)

    def population_kind(self, name: str) -> str:
        return self.dag.proc(name).kind

    def population_latency(self, name: str) -> int:
        return int(self.dag.proc(name).params.get("latency", 0))

    def record_names(self, record: RecordSpec) -> list[str]:
        pops = self.dag.populations()
        return select_records(
            record,
            neurons=(p.name for p in pops if p.kind != "readout"),
            every=(p.name for p in pops),
            what="populations",
            hint=" of the Lava network",
        )

    def run(self, x: Any, time_steps: int | None = None, record: RecordSpec = None, raw: bool = False) -> Trace:
        """Run each sample of ``x`` through Lava (``T + latency`` steps) and collect the results."""
        require_lava()
        from lava.proc.conv.process import Conv
        from lava.proc.sparse.process import DelaySparse

        from .procs import PyConvModelFast, PyDelaySparseModelFast, Recorder, recorder_model

        x = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
        T, frames = self._frames(x, time_steps)
        n_steps = self.dag.run_steps(T)
        names = self.record_names(record)
        latency = {n: self.population_latency(n) for n in names}
        recs: dict[str, dict[str, list[np.ndarray]]] = {n: {} for n in names}
        readout_v: dict[str, list[np.ndarray]] = {r: [] for r in self.dag.readouts}
        exception: dict[Any, Any] = (
            {Conv: PyConvModelFast, DelaySparse: PyDelaySparseModelFast} if self.fast_models else {}
        )
        n_rec = sum(1 for n in names if self.population_kind(n) != "readout")
        if n_rec:
            exception[Recorder] = recorder_model(n_rec)
        timings = {"build_s": 0.0, "run_s": 0.0, "steps": float(n_steps - 1) * len(frames)}
        for sample in frames:
            with warnings.catch_warnings():
                # Lava's Sparse models assign into csr matrices when clipping weights (a no-op for
                # in-range weights) and scipy warns in every worker; the filter is inherited by fork
                warnings.simplefilter("ignore", SparseEfficiencyWarning)
                self._run_one(sample, T, n_steps, names, latency, recs, readout_v, exception, timings, raw)
        records: dict[str, dict[str, Any]] = {}
        for n, rec in recs.items():
            records[n] = {k: np.stack(v, axis=1) for k, v in rec.items()}  # [T, B, ...]
        outputs: dict[str, Any] = {}
        for r, vs in readout_v.items():
            v = np.stack(vs)
            records.setdefault(r, {})["v"] = v
            act = 1 << int(self.dag.graph_attrs["loihi"]["act_shift"])
            outputs[r] = v.astype(np.float64) / (act * self.dag.readouts[r] * T)
        if self.dag.decode:
            d = self.dag.decode
            readouts = [outputs[i] for i in d["inputs"]]
            if d.get("kind") == "dfl":  # anchor-free (SpikeYOLO)
                outputs[d["name"]] = decode_dfl(readouts, d["strides"], d["nc"], d["reg_max"])
            else:
                outputs[d["name"]] = decode_readouts(readouts, d["anchors"], d["strides"], d["nc"])
        timings["ms_per_step"] = 1000.0 * timings["run_s"] / max(1.0, timings["steps"])  # after the first step
        return Trace({o: outputs[o] for o in self.dag.outputs if o in outputs}, records, T, timings)

    def _run_one(self, sample, T, n_steps, names, latency, recs, readout_v, exception, timings, raw) -> None:
        """Build, run, read and stop the network for one sample (``net.stop()`` in ``finally``)."""
        require_lava()
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg

        t0 = time.perf_counter()
        tmp = tempfile.TemporaryDirectory(prefix="emsdeploy-lava-")
        procs, files = self.build(sample, T, names, tmp.name)
        anchor = next(iter(procs.values()))
        timings["build_s"] += time.perf_counter() - t0
        t1 = time.perf_counter()
        try:
            cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=exception)
            anchor.run(condition=RunSteps(num_steps=1), run_cfg=cfg)  # compile, start, step 1
            t2 = time.perf_counter()
            timings["start_s"] = timings.get("start_s", 0.0) + t2 - t1
            if n_steps > 1:
                anchor.run(condition=RunSteps(num_steps=n_steps - 1), run_cfg=cfg)
            timings["run_s"] += time.perf_counter() - t2
            t3 = time.perf_counter()
            for r in self.dag.readouts:
                readout_v[r].append(np.asarray(procs[r].v.get()).astype(np.int64).transpose(2, 1, 0))
            for n, path in files.items():
                data = np.load(path).astype(np.int64).transpose(0, 3, 2, 1)  # (N, W, H, C) -> (N, C, H, W)
                key = "s" if self.population_kind(n) in ("lif", "ilif") else "y"
                d = self.dag.substeps
                if d > 1:  # one network step = the sum of its d sub-steps; whole steps only
                    if raw:
                        recs[n].setdefault("sub_raw", []).append(data)
                    whole = data.shape[0] // d
                    data = data[: whole * d].reshape(whole, d, *data.shape[1:]).sum(axis=1)
                recs[n].setdefault(key, []).append(data[latency[n] : latency[n] + T])
                if raw:
                    recs[n].setdefault(f"{key}_raw", []).append(data)
            timings["read_s"] = timings.get("read_s", 0.0) + time.perf_counter() - t3
        finally:
            t4 = time.perf_counter()
            anchor.stop()
            timings["stop_s"] = timings.get("stop_s", 0.0) + time.perf_counter() - t4
            tmp.cleanup()


def attach_recorder(procs: dict[str, Any], names: list[str], n_steps: int, folder: str | Path | None) -> dict[str, str]:
    """Connect the ``s_out`` of each named process to one :class:`Recorder` that writes every
    step into a memory-mapped ``.npy`` per process; returns name -> file. (One recorder process
    instead of a Monitor per port keeps Lava's process count, and its start-up time, low.)"""
    from .procs import Recorder

    files: dict[str, str] = {}
    ports: list[Any] = []
    for name in names:
        port = procs[name].s_out
        path = str(Path(folder or ".") / f"rec{len(ports):04d}.npy")
        np.lib.format.open_memmap(path, mode="w+", dtype=np.int32, shape=(n_steps, *port.shape))
        files[name] = path
        ports.append(port)
    if ports:
        rec = Recorder(shapes=[tuple(p.shape) for p in ports], paths=list(files.values()))
        for i, port in enumerate(ports):
            port.connect(getattr(rec, f"in_{i}"))
        procs["__recorder__"] = rec
    return files
