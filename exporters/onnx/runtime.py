"""Run a stepwise ONNX graph for T steps with its state carried between calls.

:class:`StepwiseSession` wraps one onnxruntime session (or ``onnx.reference``'s evaluator, for
float64 checks). :meth:`StepwiseSession.stream` gives a :class:`Stream` that takes one image or
event frame per :meth:`Stream.push` and keeps the neuron state between pushes; :meth:`StepwiseSession.run`
is a whole-sequence run built on the same stream, so both give the same numbers by construction.

Speed: with onnxruntime, every buffer is allocated once per stream and bound with IOBinding by
address. The state lives in two sets of arrays used in turn (step t reads set t mod 2 and writes
the other), so no state is copied, and the head outputs are written straight into arrays that
the host accumulates in place.

The result of :meth:`StepwiseSession.run` is the run contract's
:class:`~emsdeploy.ir.runtime.Trace` with numpy arrays (this package imports neither the
simulators nor torch); :meth:`~emsdeploy.ir.runtime.Trace.to_torch` converts it. Record
selection, input encoding and box decoding are the contract's too.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from emsdeploy.errors import EmsdeployError, ExportError, InputError, SimulationError
from emsdeploy.fileio import check_onnx_bytes, load_onnx
from emsdeploy.ir.runtime import RecordSpec, Trace, decode_dfl, decode_readouts, encoding_steps, select_records
from emsdeploy.models.boxes import dfl_rows

from . import contract
from .detect import Detections, nms

__all__ = ["StepwiseSession", "Stream"]

NP_DTYPES = {"float32": np.float32, "float64": np.float64}


class _OrtEngine:
    def __init__(
        self,
        model: str | bytes,
        threads: int | None,
        optimization: str,
        spin: bool,
        where: str,
        providers: list[str] | None = None,
    ) -> None:
        import onnxruntime as ort

        levels = {
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        }
        if optimization not in levels:
            raise InputError(f"optimization {optimization!r} unknown; choose from {', '.join(levels)}")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = levels[optimization]
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.inter_op_num_threads = 1
        if threads is not None:
            opts.intra_op_num_threads = int(threads)
        if not spin:  # idle threads sleep instead of spinning: kinder to a shared, oversubscribed CPU
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(model, opts, providers=providers or ["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/... classes
            raise ExportError(f"{where}: onnxruntime cannot load it: {str(e).strip()[:500]}") from None
        self.props = dict(self.session.get_modelmeta().custom_metadata_map)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_shapes = {o.name: o.shape for o in self.session.get_outputs()}


class _ReferenceEngine:
    """``onnx.reference.ReferenceEvaluator``: slow, exact numpy semantics, any float type."""

    def __init__(self, model: onnx.ModelProto) -> None:
        from onnx.reference import ReferenceEvaluator

        self.evaluator = ReferenceEvaluator(model)
        self.props = {p.key: p.value for p in model.metadata_props}
        self.input_names = [i.name for i in model.graph.input]
        self.output_shapes = {
            o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output
        }


class StepwiseSession:
    """A stepwise ONNX model ready to run.

    Args:
        model: path to a ``.onnx`` file, its bytes, or a ``ModelProto``.
        threads: onnxruntime intra-op threads (default: onnxruntime's choice, one per core).
        optimization: onnxruntime graph optimisation: ``all`` (default), ``extended``, ``basic``, ``none``.
        spin: let idle onnxruntime threads spin-wait (its default); False makes them sleep.
        providers: onnxruntime execution providers (default: CPU; see :mod:`emsdeploy.providers`).
        engine: ``onnxruntime`` (default) or ``reference`` (``onnx.reference``, e.g. for float64 graphs).

    Attributes:
        meta: the model's :class:`~.contract.StepwiseMeta` (T, encoding, neurons, anchors, ...).
    """

    name = "onnx"

    def __init__(
        self,
        model: str | Path | bytes | onnx.ModelProto,
        *,
        threads: int | None = None,
        optimization: str = "all",
        engine: str = "onnxruntime",
        spin: bool = True,
        providers: list[str] | None = None,
    ) -> None:
        where = str(model) if isinstance(model, (str, Path)) else "ONNX model"
        # Files and bytes go through the checked reader (no external data, bounded tensors,
        # onnx.checker, our checksum); onnxruntime gets the checked bytes, never a path.
        if isinstance(model, (str, Path)):
            proto, source = load_onnx(model)
        elif isinstance(model, onnx.ModelProto):
            proto, source = model, model.SerializeToString()
        else:
            source = bytes(model)
            proto = check_onnx_bytes(source, where)
        if engine == "onnxruntime":
            self._engine: Any = _OrtEngine(source, threads, optimization, spin, where, providers)
            self._ort = True
        elif engine == "reference":
            self._engine = _ReferenceEngine(proto)
            self._ort = False
        else:
            raise InputError(f"engine {engine!r} unknown; choose onnxruntime or reference")
        self.meta = contract.StepwiseMeta.from_props(self._engine.props, where)
        self.dtype = NP_DTYPES.get(self.meta.dtype, np.float32)
        expected = [contract.INPUT, *(contract.state_in_name(n.name) for n in self.meta.neurons)]
        if self._engine.input_names[: len(expected)] != expected:
            raise ExportError(f"{where}: inputs do not follow the stepwise contract (x, then state_in.*)")
        self.where = where

    # --- running ------------------------------------------------------------------------
    def stream(self, record: RecordSpec = None) -> Stream:
        """A fresh stream (state zero, as at t = 0). Push one frame per step, then :meth:`Stream.finish`."""
        return Stream(self, self._record_set(record))

    def run(self, x: Any, time_steps: int | None = None, record: RecordSpec = None) -> Trace:
        """Run a whole sequence: direct ``[B, C, H, W]`` (repeated T times) or frames ``[B, T, C, H, W]``.

        Args:
            x: numpy array or torch tensor, values in [0, 1].
            time_steps: T for the direct encoding (default: the model's); frames take T from ``x``.
            record: ``None``, ``"neurons"`` / ``"all"`` (every neuron) or neuron names; needs a
                graph exported with spikes.
        """
        T, frames = self._frames(x, time_steps)
        stream = self.stream(record)
        for t in range(T):
            stream.push(frames(t))
        return stream.finish()

    def run_isolated(self, x: Any, reference: Any, time_steps: int | None = None) -> Trace:
        """Node-isolated run (DESIGN.md §7) of a graph exported with ``isolate=True``.

        Every neuron reads the reference's own inputs: downstream of each neuron the graph takes
        ``ref.<node>`` (the reference's spikes or values at that step), and each LIF (and in-place
        SiLU neuron) starts the step from the state rebuilt from the reference's previous step,
        ``h = (u·τ)·(1 − s)``. A mismatch then belongs to that node and step alone.

        Args:
            reference: a Trace-like result with ``records[node]["s"]`` and ``["u"]`` for every
                LIF and ``["y"]`` for every SiLU neuron (ref-float with ``record="neurons"``).
        """
        if not self.meta.isolated:
            raise InputError(f"{self.where}: not a node-isolated graph; export it with isolate=True")
        T, frames = self._frames(x, time_steps)
        recs = reference.records
        missing = [
            n.name
            for n in self.meta.neurons
            if n.name not in recs or not ({"s", "u"} <= set(recs[n.name]) if n.spiking else "y" in recs[n.name])
        ]
        if missing:
            raise InputError(f"the reference lacks records (s and u, or y) of {missing[:5]}; record 'neurons'")
        ref = {n.name: {k: _numpy(v, self.dtype) for k, v in recs[n.name].items()} for n in self.meta.neurons}
        stream = self.stream("neurons")
        for t in range(T):
            values, states = {}, {}
            for n in self.meta.neurons:
                r = ref[n.name]
                values[n.name] = r["s"][t] if n.spiking else r["y"][t]
                if t > 0 and n.type == "IntegerLIF":
                    states[n.name] = (r["u"][t - 1] - r["s"][t - 1]) * self.dtype(n.tau)
                elif t > 0 and n.type == "LIF":
                    states[n.name] = (r["u"][t - 1] * self.dtype(n.tau)) * (1 - r["s"][t - 1])
                elif t > 0 and n.inplace:
                    states[n.name] = (r["y"][t - 1] * self.dtype(n.tau)) * (1 - r["y"][t - 1])
                # a non-in-place SiLU neuron keeps its own state: the reference does not record m
            stream.push(frames(t), refs=values, states=states)
        return stream.finish()

    def detect(
        self, x: Any, conf: float = 0.25, iou: float = 0.45, max_det: int = 300, time_steps: int | None = None
    ) -> list[Detections]:
        """Run, decode and apply per-class NMS: one :class:`~.detect.Detections` per image."""
        return self.nms(self.run(x, time_steps), conf, iou, max_det)

    def nms(self, trace: Trace, conf: float = 0.25, iou: float = 0.45, max_det: int = 300) -> list[Detections]:
        if self.meta.decode is None:
            raise SimulationError(f"{self.where}: the graph has no Decode node, so no boxes to detect")
        boxes = trace.outputs[self.meta.decode]
        if self.meta.decode_kind == "dfl":  # [B, 4+nc, A] -> rows (xywh, objectness 1, classes)
            boxes = dfl_rows(np.asarray(boxes))
        return nms(boxes, conf, iou, max_det)

    # --- helpers ------------------------------------------------------------------------
    def _frames(self, x: Any, time_steps: int | None) -> tuple[int, Any]:
        arr = _numpy(x, self.dtype)
        return encoding_steps(
            arr, self.meta.encoding, self.meta.input_shape, time_steps, self.meta.time_steps, self.where
        )

    def _record_set(self, record: RecordSpec) -> dict[str, str]:
        """Neuron node to record -> the neuron that carries it (itself, or the one it aliases)."""
        if record is None:
            return {}
        if not self.meta.spikes:
            raise InputError(
                f"{self.where}: exported without spike outputs, so nothing can be recorded; "
                "re-export with `--spikes` (or spikes=True)"
            )
        carriers = {n.name: n.name for n in self.meta.neurons}
        every = {**carriers, **self.meta.aliases}
        names = set(
            select_records(
                record,
                neurons=every,
                every=every,
                what="nodes",
                hint=": only neuron nodes are visible in the ONNX graph",
            )
        )
        return {n: every[n] for n in every if n in names}


class Stream:
    """One run, a step at a time: the state is carried between :meth:`push` calls.

    Create it with :meth:`StepwiseSession.stream`. Buffers are allocated on the first push
    (which fixes the batch size).
    """

    def __init__(self, session: StepwiseSession, record: dict[str, str]) -> None:
        self.session = session
        self.meta = session.meta
        self._wanted = record  # node -> carrier
        carriers = set(record.values())
        self.record = [n for n in self.meta.neurons if n.name in carriers]
        self.t = 0
        self._ready = False
        self._recs: dict[str, list[np.ndarray]] = {n.name: [] for n in self.record}

    def _setup(self, batch: int) -> None:
        s, meta, dt = self.session, self.meta, self.session.dtype
        self.batch = batch
        self._x = np.zeros((batch, *meta.input_shape), dt)
        self._states = [{n.name: np.zeros((batch, *n.shape), dt) for n in meta.neurons} for _ in range(2)]
        shapes = s._engine.output_shapes

        def concrete(name: str) -> tuple[int, ...]:
            return tuple(batch if isinstance(d, str) or d is None or d == 0 else int(d) for d in shapes[name])

        self._heads = [np.zeros(concrete(contract.head_name(i)), dt) for i in range(len(meta.heads))]
        self._sums = [np.zeros_like(h) for h in self._heads]
        rec_types = {"LIF": np.bool_, "IntegerLIF": np.uint8}
        self._rec_bufs = {n.name: np.zeros((batch, *n.shape), rec_types.get(n.type, dt)) for n in self.record}
        self._refs = (
            {n.name: np.zeros((batch, *n.shape), dt) for n in meta.neurons} if meta.isolated else {}
        )  # fmt: skip
        if s._ort:
            self._bindings = [self._bind(k) for k in range(2)]
        self._ready = True

    def _rec_output(self, n: contract.NeuronInfo) -> str:
        return contract.spikes_name(n.name) if n.spiking else contract.values_name(n.name)

    def _bind(self, k: int) -> Any:
        """IOBinding for steps t with t mod 2 = k: state in from set k, state out to set 1 - k."""
        io = self.session._engine.session.io_binding()

        def bind_in(name: str, arr: np.ndarray) -> None:
            io.bind_input(name, "cpu", 0, arr.dtype, list(arr.shape), arr.ctypes.data)

        def bind_out(name: str, arr: np.ndarray) -> None:
            io.bind_output(name, "cpu", 0, arr.dtype, list(arr.shape), arr.ctypes.data)

        bind_in(contract.INPUT, self._x)
        for n in self.meta.neurons:
            bind_in(contract.state_in_name(n.name), self._states[k][n.name])
            bind_out(contract.state_out_name(n.name), self._states[1 - k][n.name])
        for name, arr in self._refs.items():
            bind_in(contract.ref_name(name), arr)
        for i, h in enumerate(self._heads):
            bind_out(contract.head_name(i), h)
        for n in self.record:
            bind_out(self._rec_output(n), self._rec_bufs[n.name])
        return io

    def push(
        self,
        frame: Any = None,
        *,
        refs: Mapping[str, np.ndarray] | None = None,
        states: Mapping[str, np.ndarray] | None = None,
    ) -> list[np.ndarray]:
        """Run one step on ``frame`` (``[B, C, H, W]``); ``None`` repeats the previous frame.

        Returns this step's head outputs (``head.<i>``); the arrays are reused by the next push.
        ``refs`` and ``states`` are for node-isolated runs (see :meth:`StepwiseSession.run_isolated`).
        """
        if frame is None:
            if not self._ready:
                raise InputError("the first push needs a frame")
        else:
            arr = _numpy(frame, self.session.dtype)
            want = tuple(self.meta.input_shape)
            if arr.ndim != 4 or tuple(arr.shape[1:]) != want:
                raise InputError(
                    f"a step takes one frame [B, {', '.join(map(str, want))}], got {tuple(arr.shape)}"
                    + (" (a whole sequence? use run())" if arr.ndim == 5 else "")
                )
            if not self._ready:
                self._setup(arr.shape[0])
            elif arr.shape[0] != self.batch:
                raise InputError(f"batch size changed from {self.batch} to {arr.shape[0]} within a stream")
            np.copyto(self._x, arr)
        cur = self._states[self.t % 2]
        for name, value in (states or {}).items():
            np.copyto(cur[name], value)
        for name, value in (refs or {}).items():
            np.copyto(self._refs[name], value)
        try:
            if self.session._ort:
                self.session._engine.session.run_with_iobinding(self._bindings[self.t % 2])
            else:
                self._run_reference(cur)
        except EmsdeployError:
            raise
        except Exception as e:
            raise SimulationError(f"{self.session.where}: step {self.t} failed: {str(e).strip()[:500]}") from None
        for acc, h in zip(self._sums, self._heads):
            acc += h
        for n in self.record:
            self._recs[n.name].append(self._rec_bufs[n.name].copy())
        self.t += 1
        return self._heads

    def _run_reference(self, cur: dict[str, np.ndarray]) -> None:
        feeds = {contract.INPUT: self._x, **{contract.state_in_name(n): a for n, a in cur.items()}}
        feeds.update({contract.ref_name(n): a for n, a in self._refs.items()})
        names = [contract.head_name(i) for i in range(len(self._heads))]
        names += [contract.state_out_name(n.name) for n in self.meta.neurons]
        names += [self._rec_output(n) for n in self.record]
        out = dict(zip(names, self.session._engine.evaluator.run(names, feeds)))
        nxt = self._states[(self.t + 1) % 2]
        for i, h in enumerate(self._heads):
            np.copyto(h, out[contract.head_name(i)])
        for n in self.meta.neurons:
            np.copyto(nxt[n.name], out[contract.state_out_name(n.name)])
        for n in self.record:
            np.copyto(self._rec_bufs[n.name], out[self._rec_output(n)])

    def finish(self) -> Trace:
        """The run so far: readouts (heads averaged over the steps pushed), boxes, records."""
        if self.t == 0:
            raise InputError("no steps were pushed")
        meta = self.meta
        outputs = {name: acc / self.session.dtype(self.t) for name, acc in zip(meta.heads, self._sums)}
        if meta.decode is not None:
            readouts = [outputs[h] for h in meta.heads]
            if meta.decode_kind == "dfl":
                outputs[meta.decode] = decode_dfl(readouts, meta.strides, meta.nc, meta.reg_max)
            else:
                outputs[meta.decode] = decode_readouts(readouts, np.array(meta.anchors), meta.strides, meta.nc)
        carried = {}
        for n in self.record:
            key = "s" if n.spiking else "y"
            carried[n.name] = {key: np.stack(self._recs[n.name])}
        records = {node: carried[carrier] for node, carrier in self._wanted.items()}  # aliases share arrays
        return Trace(outputs, records, self.t)


def _numpy(x: Any, dtype: Any) -> np.ndarray:
    """numpy view of ``x`` (numpy array or CPU torch tensor) in ``dtype``, C-contiguous."""
    if hasattr(x, "detach"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x)
    except Exception:
        raise InputError(f"input must be an array or tensor, got {type(x).__name__}") from None
    if arr.dtype == np.bool_:
        arr = arr.astype(dtype)
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"input dtype {arr.dtype} unsupported; use floats in [0, 1] (uint8 images: divide by 255)")
    return np.ascontiguousarray(arr, dtype=dtype)
