"""Lava processes emsdeploy adds to lava-nc's standard ones, and a faster Conv ProcessModel.

* :class:`CurrentMaxPool` and :class:`SiLUFixed` — **simulation-only custom processes** for the
  two ops with no standard Loihi neuron model (max-pool of currents, the SiLU neuron). They run
  exactly the semantics of :class:`~emsdeploy.ir.ops.loihi.FixedMaxPool` /
  :class:`~emsdeploy.ir.ops.loihi.FixedSiLU`; placed ``host`` they are the same Python
  processes standing for host-side computation (``@requires(CPU)``: on a real system, the host).
* :class:`IntegerLIFFixed` — SpikeYOLO's I-LIF (:class:`~emsdeploy.ir.ops.loihi.LoihiIntegerLIF`),
  a Loihi 2 programmable neuron; here a custom process. It sends its integers 0..D as one graded
  spike per step, or (``substeps = D``, the spike-driven mode) as D binary spikes over D
  sub-steps, sub-step k carrying 1 where s >= k.
* **Spike-driven steps.** With ``substeps = D > 1`` every custom population sums its ``a_in``
  over the D sub-steps of a step and updates once, at the step's first sub-step (bias added
  once); graded outputs are sent at that sub-step, zeros at the others.
  :class:`RelayAccumulator` is a relay (``GradedVec``) that does the same.
* :class:`PyDelaySparseModelFast` — a drop-in ProcessModel for ``DelaySparse`` when every
  synapse has the same delay (what emsdeploy exports): the stock model rebuilds a
  (delay + 1)-fold stacked matrix every step; this one multiplies once and adds the product into
  the same delay buffer column. Same clipping, truncation, dot product and exponent shift.
* :class:`PyConvModelFast` — a drop-in ProcessModel for lava's ``Conv`` selected with
  ``Loihi2SimCfg(exception_proc_model_map={Conv: PyConvModelFast})``. It computes what
  ``PyConvModelFixed`` computes (a true convolution in float64, ``astype(int32)``, then the
  24-bit ``signed_clamp``) with one strided im2col product instead of one ``convolve2d`` per
  channel pair. Exact: every partial sum is an integer below 2**53 (a DRC rule checks the bound),
  so the order of additions cannot matter. Plain numpy: no torch inside Lava's forked workers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.conv import utils as conv_utils
from lava.proc.conv.models import PyConvModelFixed
from lava.proc.conv.process import Conv
from lava.proc.sparse.models import PyDelaySparseModelBitAcc
from lava.proc.sparse.process import DelaySparse
from lava.utils.weightutils import SignMode, clip_weights, determine_sign_mode, truncate_weights

from emsdeploy.ir.fixed_point import integer_lif_step, maxpool_step, silu_step
from emsdeploy.ir.ops.loihi import FixedMaxPool, FixedSiLU, LoihiIntegerLIF

__all__ = [
    "CurrentMaxPool",
    "IntegerLIFFixed",
    "PyIntegerLIFFixedModel",
    "PyRelayAccumulatorModel",
    "RelayAccumulator",
    "PyConvModelFast",
    "PyDelaySparseModelFast",
    "PyCurrentMaxPoolModel",
    "PySiLUFixedModel",
    "Recorder",
    "SiLUFixed",
    "conv_true_whc",
    "recorder_model",
]


# ---- custom neuron-like processes ----------------------------------------------------------------


def _fixed_pt_model(proc: type[AbstractProcess]) -> Callable[[type], type]:
    """Lava's three decorators of a bit-accurate CPU ProcessModel implementing ``proc``."""

    def decorate(cls: type) -> type:
        return tag("fixed_pt")(requires(CPU)(implements(proc=proc, protocol=LoihiProtocol)(cls)))

    return decorate


class _SameShapePopulation(AbstractProcess):
    """A custom population with one input and one output of its own shape (Lava's (W, H, C)) and
    a per-neuron bias; its other (keyword) parameters reach its process model as proc_params."""

    def __init__(
        self, *, shape: tuple[int, int, int], bias: np.ndarray, name: str | None = None, **params: Any
    ) -> None:
        super().__init__(shape=shape, name=name, **params)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.bias = Var(shape=shape, init=bias)


class CurrentMaxPool(AbstractProcess):
    """Custom (simulation-only) process: k×k max-pool of the summed input current plus a bias,
    sent as graded spikes after a rounding right shift. Shapes in Lava's (W, H, C) order."""

    def __init__(
        self,
        *,
        in_shape: tuple[int, int, int],
        kernel: int,
        bias: np.ndarray,
        out_shift: int = 0,
        substeps: int = 1,
        stride: int = 0,
        padding: int = 0,
        name: str | None = None,
    ) -> None:
        stride = stride or kernel
        super().__init__(
            in_shape=in_shape,
            kernel=kernel,
            out_shift=out_shift,
            substeps=substeps,
            stride=stride,
            padding=padding,
            name=name,
        )
        w, h, c = in_shape
        self.a_in = InPort(shape=in_shape)
        out = [(n + 2 * padding - kernel) // stride + 1 for n in (w, h)]
        self.s_out = OutPort(shape=(out[0], out[1], c))
        self.bias = Var(shape=in_shape, init=bias)


class _GradedPopulationModel(PyLoihiProcessModel):
    """The ports and bias of the custom populations, in Lava's (W, H, C) order; their step is a
    function of :mod:`emsdeploy.ir.fixed_point` on the IR op (:meth:`make_op`), in (C, H, W)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._op: Any = None
        self._state: Any = None
        self._acc: np.ndarray | None = None
        self._out: np.ndarray | None = None

    def make_op(self, bias_chw: np.ndarray) -> Any:
        raise NotImplementedError

    def recv_chw(self) -> tuple[Any, np.ndarray]:
        """(the IR op, built on the first step from the bias Var; this step's ``a_in`` in (C, H, W))."""
        if self._op is None:
            self._op = self.make_op(np.ascontiguousarray(self.bias.transpose(2, 1, 0)))
        return self._op, np.ascontiguousarray(self.a_in.recv().astype(np.int64).transpose(2, 1, 0))

    def send_chw(self, y: np.ndarray) -> None:
        self.s_out.send(np.ascontiguousarray(y.transpose(2, 1, 0)))

    @property
    def substep(self) -> int:
        """This time step's sub-step j in 0..D−1 (always 0 unless spike-driven)."""
        return (self.time_step - 1) % int(self.proc_params.get("substeps", 1))

    def window_input(self) -> tuple[Any, np.ndarray | None]:
        """(the op, the input sum of this step's D sub-steps at its first sub-step, else None):
        the step's update waits for all D sub-steps (one sub-step when graded). A population
        with a ``reset_step`` starts from a cleared state at that step's update."""
        op, a = self.recv_chw()
        if int(self.proc_params.get("substeps", 1)) != 1:
            self._acc = a if self._acc is None else self._acc + a
            if self.substep != 0:
                return op, None
            a, self._acc = self._acc, None
        reset = self.proc_params.get("reset_step", None)  # Lava's ProcessParameters has no `in`
        if reset is not None and self.time_step == int(reset):
            self._state = None
        return op, a

    def send_graded(self, y: np.ndarray | None) -> None:
        """Send a step's graded output at its first sub-step and zeros at the others."""
        if y is not None:
            self._out = y
        assert self._out is not None
        self.send_chw(self._out if y is not None else np.zeros_like(self._out))


@_fixed_pt_model(CurrentMaxPool)
class PyCurrentMaxPoolModel(_GradedPopulationModel):
    def make_op(self, bias_chw: np.ndarray) -> FixedMaxPool:
        pp = self.proc_params
        return FixedMaxPool(
            bias_chw,
            int(pp["kernel"]),
            out_shift_u5=int(pp["out_shift"]),
            stride=int(pp.get("stride", 0)),
            padding=int(pp.get("padding", 0)),
        )

    def run_spk(self) -> None:
        op, a = self.window_input()
        self.send_graded(None if a is None else maxpool_step(op, a))


class SiLUFixed(_SameShapePopulation):
    """Custom (simulation-only) process: the SiLU neuron on integer currents, graded output.
    Its state is cleared at time step ``reset_step`` (the population's latency + 1)."""

    def __init__(
        self,
        *,
        shape: tuple[int, int, int],
        bias: np.ndarray,
        tau: float,
        inplace: bool,
        scale_in: float,
        scale_out: float,
        reset_step: int,
        substeps: int = 1,
        name: str | None = None,
    ) -> None:
        super().__init__(shape=shape, bias=bias, name=name, tau=tau, inplace=inplace, scale_in=scale_in,
                         scale_out=scale_out, reset_step=reset_step, substeps=substeps)  # fmt: skip


@_fixed_pt_model(SiLUFixed)
class PySiLUFixedModel(_GradedPopulationModel):
    def make_op(self, bias_chw: np.ndarray) -> FixedSiLU:
        pp = self.proc_params
        return FixedSiLU(bias_chw, pp["tau"], pp["inplace"], pp["scale_in"], pp["scale_out"])

    def run_spk(self) -> None:
        op, a = self.window_input()
        y = None
        if a is not None:
            y, self._state = silu_step(op, a, self._state)
        self.send_graded(y)


class IntegerLIFFixed(_SameShapePopulation):
    """Custom process: SpikeYOLO's I-LIF in fixed point (a Loihi 2 programmable neuron). Graded
    (``substeps = 1``): the integer 0..D is one graded spike per step. Spike-driven (``substeps
    = D``): D binary spikes over the D sub-steps of a step, sub-step k (1-based) carrying 1 where
    s >= k. Its state is cleared at time step ``reset_step`` (the first sub-step of its first
    valid step)."""

    def __init__(
        self,
        *,
        shape: tuple[int, int, int],
        bias: np.ndarray,
        levels: int,
        decay_shift: int,
        frac_bits: int,
        scale: float,
        uv_bits: int,
        reset_step: int,
        substeps: int = 1,
        name: str | None = None,
    ) -> None:
        super().__init__(shape=shape, bias=bias, name=name, levels=levels, decay_shift=decay_shift,
                         frac_bits=frac_bits, scale=scale, uv_bits=uv_bits, reset_step=reset_step,
                         substeps=substeps)  # fmt: skip


@_fixed_pt_model(IntegerLIFFixed)
class PyIntegerLIFFixedModel(_GradedPopulationModel):
    def make_op(self, bias_chw: np.ndarray) -> LoihiIntegerLIF:
        pp = self.proc_params
        return LoihiIntegerLIF(bias_chw, pp["levels"], pp["decay_shift"], pp["frac_bits"], pp["scale"])

    def run_spk(self) -> None:
        op, a = self.window_input()
        if a is not None:
            self._out, self._state = integer_lif_step(op, a, self._state, {"uv_bits": int(self.proc_params["uv_bits"])})
        assert self._out is not None
        if int(self.proc_params.get("substeps", 1)) == 1:
            self.send_chw(self._out)
        else:  # the thermometer code: sub-step j sends 1 where s > j
            self.send_chw((self._out > self.substep).astype(np.int64))


class RelayAccumulator(_SameShapePopulation):
    """Custom process, spike-driven mode only: a relay (``GradedVec`` with ``vth = 0``) that sums
    its input over the D sub-steps of a step and sends ``sum + bias`` once, at the first."""

    def __init__(
        self, *, shape: tuple[int, int, int], bias: np.ndarray, substeps: int, name: str | None = None
    ) -> None:
        super().__init__(shape=shape, bias=bias, name=name, substeps=substeps)


@_fixed_pt_model(RelayAccumulator)
class PyRelayAccumulatorModel(_GradedPopulationModel):
    def make_op(self, bias_chw: np.ndarray) -> np.ndarray:
        return bias_chw.astype(np.int64)

    def run_spk(self) -> None:
        bias, a = self.window_input()
        self.send_graded(None if a is None else a + bias)


# ---- recording --------------------------------------------------------------------------------


class Recorder(AbstractProcess):
    """A sink with one InPort per recorded population (``in_0``, ``in_1``, ...) that writes what
    input i receives at time step t into row t − 1 of ``paths[i]``, a ``.npy`` file the caller
    created with ``numpy.lib.format.open_memmap``. One process for all recordings, and no
    ``Var.get()`` round trips after the run (``io.sink.RingBuffer`` needs both per population).
    Run it with ``exception_proc_model_map={Recorder: recorder_model(len(shapes))}``."""

    def __init__(self, *, shapes: list[tuple[int, ...]], paths: list[str], name: str | None = None) -> None:
        super().__init__(shapes=[tuple(s) for s in shapes], paths=list(paths), name=name)
        for i, shape in enumerate(shapes):
            setattr(self, f"in_{i}", InPort(shape=tuple(shape)))


class _RecorderModelBase(PyLoihiProcessModel):
    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._files: list | None = None

    def run_spk(self) -> None:
        paths = self.proc_params["paths"]
        if self._files is None:
            self._files = [np.lib.format.open_memmap(p, mode="r+") for p in paths]
        for i, f in enumerate(self._files):
            data = getattr(self, f"in_{i}").recv()
            if self.time_step <= f.shape[0]:
                f[self.time_step - 1] = data
        if self.time_step == self._files[0].shape[0]:
            for f in self._files:
                f.flush()


@_fixed_pt_model(Recorder)
class PyRecorderModel(_RecorderModelBase):
    """Lets Lava's model search find a model for :class:`Recorder`; the run config's exception
    map then substitutes :func:`recorder_model` (whose ports match the process)."""


_RECORDER_MODELS: dict[int, type] = {}


def recorder_model(n_inputs: int) -> type:
    """The ProcessModel of a :class:`Recorder` with ``n_inputs`` ports (one class per count:
    Lava requires a model to declare exactly its process's ports)."""
    if n_inputs not in _RECORDER_MODELS:
        attrs = {f"in_{i}": LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24) for i in range(n_inputs)}
        cls = type(f"PyRecorderModel{n_inputs}", (_RecorderModelBase,), attrs)
        cls = _fixed_pt_model(Recorder)(cls)
        _RECORDER_MODELS[n_inputs] = cls
    return _RECORDER_MODELS[n_inputs]


# ---- the fast Conv model --------------------------------------------------------------------------


def conv_true_whc(
    x: np.ndarray,
    weight: np.ndarray,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
) -> np.ndarray:
    """Lava's ``conv_scipy``: a true convolution of ``x`` (W, H, C_in) with ``weight``
    (C_out, kW, kH, C_in), (x, y) stride/padding/dilation, in float64. Returns (W', H', C_out)."""
    kw, kh = weight.shape[1:3]
    (sx, sy), (px, py), (dx, dy) = stride, padding, dilation
    xp = np.pad(np.asarray(x, np.float64), ((px, px), (py, py), (0, 0)))
    ekw, ekh = dx * (kw - 1) + 1, dy * (kh - 1) + 1
    windows = np.lib.stride_tricks.sliding_window_view(xp, (ekw, ekh), axis=(0, 1))  # type: ignore[call-overload]
    win = windows[::sx, ::sy, :, ::dx, ::dy]
    wflip = np.asarray(weight, np.float64)[:, ::-1, ::-1, :]  # convolution = correlation with the flipped kernel
    c_in = x.shape[2]
    c_out = weight.shape[0]
    cg, og = c_in // groups, c_out // groups
    outs = []
    for g in range(groups):
        wg = wflip[g * og : (g + 1) * og]
        outs.append(np.tensordot(win[:, :, g * cg : (g + 1) * cg], wg, axes=([2, 3, 4], [3, 1, 2])))
    return np.concatenate(outs, axis=2) if groups > 1 else outs[0]


@_fixed_pt_model(Conv)
class PyConvModelFast(PyConvModelFixed):
    """``PyConvModelFixed`` with a vectorised convolution (same integers, see module docstring)."""

    a_buf: np.ndarray  # declared by the stock model (Lava's Vars; typed here for mypy)

    def run_spk(self) -> None:
        self.a_out.send(self.a_buf)
        if self.num_message_bits.item() > 0:
            s_in = self.s_in.recv()
        else:
            s_in = self.s_in.recv().astype(bool)
        out = conv_true_whc(
            s_in,
            self.weight,
            tuple(int(v) for v in self.stride),
            tuple(int(v) for v in self.padding),
            tuple(int(v) for v in self.dilation),
            int(self.groups[0]),
        )
        self.a_buf = conv_utils.signed_clamp(out.astype(self.weight.dtype), bits=24)


@_fixed_pt_model(DelaySparse)
class PyDelaySparseModelFast(PyDelaySparseModelBitAcc):
    """``PyDelaySparseModelBitAcc`` for a uniform delay (falls back to it otherwise)."""

    weights: Any  # the stock model's state (Lava's Vars; typed here for mypy)
    weights_set: bool
    a_buff: np.ndarray

    def run_spk(self) -> None:
        if not self.weights_set:
            delays = np.unique(self.delays.data)
            self._uniform = int(delays[0]) if delays.size == 1 else None
        if self._uniform is None:
            super().run_spk()
            return
        weight_exp: int = self.proc_params.get("weight_exp", 0)
        if not self.weights_set:  # exactly the stock model's first-step weight scaling
            num_weight_bits: int = self.proc_params.get("num_weight_bits", 8)
            sign_mode: SignMode = self.proc_params.get("sign_mode") or determine_sign_mode(self.weights)
            self.weights = clip_weights(self.weights, sign_mode, num_bits=8)
            self.weights = truncate_weights(self.weights, sign_mode, num_weight_bits)
            self.weights_set = True
        self.a_out.send(self.a_buff[:, 0])
        if self.num_message_bits.item() > 0:
            s_in = self.s_in.recv()
        else:
            s_in = self.s_in.recv().astype(bool)
        acc = self.weights.dot(s_in)  # the stock model's delay-d rows of its stacked matrix
        acc = np.left_shift(acc, weight_exp) if weight_exp > 0 else np.right_shift(acc, -weight_exp)
        self.a_buff[:, 0] = 0
        self.a_buff = np.roll(self.a_buff, -1)
        self.a_buff[:, self._uniform] += acc
