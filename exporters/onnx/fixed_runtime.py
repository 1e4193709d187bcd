"""Run a fixed-point stepwise ONNX graph (:mod:`.fixed`) for ``T + latency`` steps in onnxruntime.

The state alternates between two buffer sets bound by address (IOBinding), as in
:mod:`.runtime`, so no state is copied between steps. Records come from the state itself (a
population's ``y0`` after step n is its output at step n), so the graph needs no extra outputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from emsdeploy.errors import ExportError, InputError, IRValidationError, SimulationError
from emsdeploy.ir import Decode, DFLDecode
from emsdeploy.ir.runtime import RecordSpec, Trace, decode_boxes, encoding_steps, select_records
from emsdeploy.models.boxes import dfl_rows

from .contract import DECODE_KINDS
from .detect import Detections, nms
from .fixed import FIXED_FORMAT, FIXED_VERSION

__all__ = ["FixedSession", "read_format"]

SPIKING = ("LoihiLIF", "LoihiIntegerLIF")  # recorded as "s" (spikes; integers 0..D) with their membrane "v"


def read_format(path: str | Path) -> str | None:
    """The ``format`` entry of an ONNX file's metadata (None if absent); one-line error if unreadable."""
    from emsdeploy.fileio.onnx_model import load_onnx

    model, _ = load_onnx(path)  # the checked reader: one-line errors, no external data, bounded sizes
    return next((m.value for m in model.metadata_props if m.key == "format"), None)


class FixedSession:
    """A fixed-point stepwise model ready to run (``threads``: onnxruntime intra-op threads)."""

    name = "onnx-fixed"

    def __init__(self, model: str | Path | bytes, *, threads: int | None = None, spin: bool = False) -> None:
        import onnxruntime as ort

        from emsdeploy.fileio.onnx_model import load_onnx

        where = str(model) if isinstance(model, (str, Path)) else "ONNX model"
        if isinstance(model, (str, Path)):
            model = load_onnx(model)[1]  # the checked reader's bytes go to onnxruntime
        opts = ort.SessionOptions()
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.inter_op_num_threads = 1
        if threads is not None:
            opts.intra_op_num_threads = int(threads)
        if not spin:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(bytes(model), opts, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ExportError(f"{where}: onnxruntime cannot load it: {str(e).strip()[:500]}") from None
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        if props.get("format") != FIXED_FORMAT:
            raise ExportError(
                f"{where}: not a fixed-point stepwise graph (metadata 'format' is {props.get('format')!r}); "
                "make one with `emsdeploy export SRC --target onnx --arithmetic fixed`"
            )
        try:
            if int(props["format_version"]) > FIXED_VERSION:
                raise ExportError(f"{where}: fixed format version {props['format_version']} is newer than this reads")
            self.time_steps = int(props["time_steps"])
            self.latency = int(props["latency"])
            self.timing = props.get("timing", "lava")
            self.has_records = bool(json.loads(props.get("records", "false")))
            self.encoding = props["encoding"]
            self.input_shape = tuple(int(s) for s in json.loads(props["input_shape"]))
            self.states = [(n, tuple(s), np.dtype(d)) for n, s, d in json.loads(props["states"])]
            self.populations = json.loads(props["populations"])
            self.heads = json.loads(props["heads"])
            self.decode_name = json.loads(props["decode"])
            self.nc = int(props["nc"])
            self.strides = tuple(json.loads(props["strides"]))
            self.decoder = _decoder(props, self.nc, self.strides) if self.decode_name is not None else None
            self.kernels = json.loads(props.get("kernels", "{}"))
        except (KeyError, ValueError, TypeError, IRValidationError) as e:
            raise ExportError(f"{where}: fixed-point metadata is damaged ({type(e).__name__}: {e})") from None
        self.where = where

    def _frames(self, x: Any, time_steps: int | None) -> tuple[int, Any]:
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        arr = np.ascontiguousarray(np.asarray(x), dtype=np.float32)
        return encoding_steps(arr, self.encoding, self.input_shape, time_steps, self.time_steps, self.where)

    def run(self, x: Any, time_steps: int | None = None, record: RecordSpec = None) -> Trace:
        """Run ``T + latency`` steps (inputs fed as the contract says); record ``"all"``/names.

        Records per population: ``s``/``y`` over the T valid steps, ``s_raw``/``y_raw`` over all
        ``T + latency`` steps (Lava timing), ``v`` of a LIF over the valid steps and of a readout
        its final integer state."""
        T, frame = self._frames(x, time_steps)
        lava = self.timing == "lava"
        N = T + self.latency if lava else T
        B = int(frame(0).shape[0])
        pops = {p["name"]: p for p in self.populations}
        names = select_records(
            record,
            neurons=(p["name"] for p in self.populations if p["type"] != "LoihiReadout"),
            every=pops,
            what="populations",
        )
        wanted = [pops[n] for n in names]
        if wanted and not lava and not self.has_records:
            raise InputError(f"{self.where}: exported without records; re-export with --spikes to record populations")
        rec_bufs = {p["name"]: np.zeros((B, *p["shape"]), np.uint8 if p["type"] == "LoihiLIF" else np.int64)
                    for p in wanted if "out" in p and not lava}  # fmt: skip
        bufs = [{n: np.zeros((B, *s), d) for n, s, d in self.states} for _ in range(2)]
        x_buf = np.zeros((B, *self.input_shape), np.float32)
        clock = np.zeros(1, np.int64)
        heads = [np.zeros((B, *dict((n, s) for n, s, _ in self.states)[h["v"]]), bufs[0][h["v"]].dtype)
                 for h in self.heads]  # fmt: skip
        bindings = []
        for k in range(2):
            io = self.session.io_binding()
            _bind_in(io, "x", x_buf)
            if lava:
                _bind_in(io, "clock", clock)
            for name, arr in rec_bufs.items():
                _bind_out(io, pops[name]["out"], arr)
            for n, _, _ in self.states:
                _bind_in(io, f"state_in.{n}", bufs[k][n])
                _bind_out(io, f"state_out.{n}", bufs[1 - k][n])
            for i, h in enumerate(heads):
                _bind_out(io, f"head.{i}", h)
            bindings.append(io)
        raw: dict[str, list[np.ndarray]] = {p["name"]: [] for p in wanted}
        vs: dict[str, list[np.ndarray]] = {p["name"]: [] for p in wanted}
        for n in range(N):
            np.copyto(x_buf, frame(n) if n < T else 0.0)
            clock[0] = n
            try:
                self.session.run_with_iobinding(bindings[n % 2])
            except Exception as e:
                raise SimulationError(f"{self.where}: step {n} failed: {str(e).strip()[:500]}") from None
            out = bufs[(n + 1) % 2]
            for p in wanted:
                if p["name"] in rec_bufs:
                    raw[p["name"]].append(rec_bufs[p["name"]].copy())
                elif lava and "y" in p:
                    raw[p["name"]].append(out[p["y"]].copy())
                if "v" in p and p["type"] in SPIKING and (not lava or p["latency"] <= n < p["latency"] + T):
                    vs[p["name"]].append(out[p["v"]].astype(np.int64))
        final = bufs[N % 2]
        records: dict[str, dict[str, np.ndarray]] = {}
        for p in wanted:
            r: dict[str, np.ndarray] = {}
            lat = p["latency"] if lava else 0
            if raw[p["name"]]:
                key = "s" if p["type"] in SPIKING else "y"
                full = np.stack(raw[p["name"]])
                full = full.astype(np.float32) if key == "s" else full.astype(np.int64)
                if lava:
                    r[f"{key}_raw"] = full
                r[key] = full[lat : lat + T]
            if vs[p["name"]]:
                r["v"] = np.stack(vs[p["name"]])
            if p["type"] == "LoihiReadout":
                r["v"] = final[p["v"]].astype(np.int64)
            records[p["name"]] = r
        outputs: dict[str, np.ndarray] = {}
        for h in self.heads:
            outputs[h["readout"]] = final[h["v"]].astype(np.float64) / (64 * h["scale"] * T)
        if self.decoder is not None:
            outputs[self.decode_name] = decode_boxes([outputs[h["readout"]] for h in self.heads], self.decoder)
        return Trace(outputs, records, T)

    def detect(self, x: Any, conf: float = 0.25, iou: float = 0.45, max_det: int = 300) -> list[Detections]:
        trace = self.run(x)
        if self.decode_name is None:
            raise SimulationError(f"{self.where}: the graph has no Decode node, so no boxes to detect")
        boxes = trace.outputs[self.decode_name].astype(np.float32)
        if isinstance(self.decoder, DFLDecode):  # [B, 4+nc, A] -> rows (xywh, objectness 1, classes)
            boxes = dfl_rows(boxes)
        return nms(boxes, conf, iou, max_det)

    @property
    def run_steps(self) -> int:
        return self.latency


def _decoder(props: dict[str, str], nc: int, strides: tuple[float, ...]) -> Decode | DFLDecode:
    """The host decoding the metadata names (``decode_kind`` as in the float graph's contract;
    files without it are YOLOv5), as the IR op :func:`decode_boxes` runs."""
    kind = props.get("decode_kind", "yolov5")
    if kind not in DECODE_KINDS:
        raise ValueError(f"decode_kind {kind!r} is none of {', '.join(DECODE_KINDS)}")
    if kind == "dfl":
        return DFLDecode(nc, strides, int(props["reg_max"]))
    return Decode(nc, json.loads(props["anchors"]), strides)


def _bind_in(io: Any, name: str, arr: np.ndarray) -> None:
    io.bind_input(name, "cpu", 0, arr.dtype, list(arr.shape), arr.ctypes.data)


def _bind_out(io: Any, name: str, arr: np.ndarray) -> None:
    io.bind_output(name, "cpu", 0, arr.dtype, list(arr.shape), arr.ctypes.data)
