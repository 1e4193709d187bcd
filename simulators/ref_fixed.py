"""ref-fixed: a quantized graph run in Loihi's integer arithmetic with Lava's timing (DESIGN.md §7–8).

The graph is the output of ``quantize`` then ``align_delays``. Timing model, explicitly:

* a run lasts ``N = T + L`` steps, L = ``graph.attrs["latency"]`` (the readouts' latency);
* the host feeds input frame n at step n < T (the same image for ``direct``) and zeros after;
* a host term delivers at step ``n + delay``; a chip synapse delivers at step ``n + 1 + delay``
  what its source emitted at step n (synapse outputs start at 0);
* a population sums what arrives at step n; it is held in reset until step ``latency``: at that
  step u, v (or a SiLU's state) are zeroed before the update, as Lava's ``LIFReset`` does at
  time step latency + 1. Before it, it integrates its bias and whatever arrives, as Lava does;
* a readout's integer v after the last step is the sum over its T valid steps; the output is
  ``v / (64 · S · T)``.

Records are aligned by default: a population's step t is run step ``latency + t`` (t < T), so
they line up with ref-float's. ``raw=True`` adds ``"s_raw"``/``"y_raw"`` with all N steps.

Outside its T valid steps a population only feeds other populations' invalid steps: an input
that leaves population P at run step n reaches Q at ``n + 1 + delay``, and ``latency(Q) =
latency(P) + 1 + delay``, so Q's valid window only ever sees P's valid window. Unless ``raw``
is asked for (the Lava comparison checks every step), ref-fixed therefore computes each
population only during its T valid steps: the same valid results for a fraction of the work.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import torch

from emsdeploy.errors import SimulationError
from emsdeploy.ir import DECODES, Graph, Input, Kind, Node
from emsdeploy.ir import fixed_point as fp
from emsdeploy.ir.ops import loihi
from emsdeploy.ir.runtime import RecordSpec, Trace, decode_boxes, graph_steps, select_records

from .base import Backend
from .fixed_kernels import (
    Profile,
    conv_payload,
    diagonal_weights,
    graded_conv_payload,
    host_payload,
    is_diagonal,
    payload_bound,
    quantize_input,
    sparse_payload,
)

__all__ = ["POPULATION_MODELS", "TERM_MODELS", "RefFixed", "population_names"]


def population_names(graph: Graph, record: RecordSpec) -> set[str]:
    """``"neurons"``: LIF, max-pool, SiLU and relay populations; ``"all"``: also readouts; or names."""
    pops = [n for n in graph if isinstance(n.op, loihi.POPULATIONS)]
    neurons = (n.name for n in pops if not isinstance(n.op, loihi.LoihiReadout))
    return set(select_records(record, neurons=neurons, every=(n.name for n in pops), known=graph.names()))


# ---- synapse groups and host terms: one factory per op ------------------------------------------


@dataclass
class _Term:
    """A synapse group or host term ready to run: ``payload(x)`` is what it delivers for source
    values ``x`` (spikes, graded integers, or the quantized input of a host term); ``bound`` a
    proven bound on |payload| (None: checked at run time)."""

    payload: Callable[[torch.Tensor], torch.Tensor]
    delay: int
    host: bool = False
    bound: int | None = None


def _spike_bound(op: loihi.SynConv | loihi.SynSparse) -> int:
    """A proven bound on the payload of 0/1 inputs: the largest mantissa sum, shifted by e."""
    base, e = payload_bound(op), op.weight_exp_s4
    return (base << e) if e >= 0 else (base >> -e) + 1


# The weights a payload needs (float kernels, CSR matrices) are made when it is computed, not
# kept for the whole run: a group delivers during its source's T valid steps only, and kept
# copies of every group's weights cost more memory than the lowered graph itself at 640×640.


def _csr(data: npt.NDArray[Any], op: Any) -> sp.csr_matrix:
    """The op's weights as a CSR matrix over its own arrays (scipy may narrow the index arrays).
    The integer weights keep their dtype: a product with an int64 vector is computed in int64."""
    n_out, n_in = int(np.prod(op.out_shape)), int(np.prod(op.in_shape))
    return sp.csr_matrix((data, op.indices, op.indptr), shape=(n_out, n_in))


def _syn_conv(op: loihi.SynConv, spikes: bool, p: Profile) -> _Term:
    if not spikes:  # graded integers: a Conv with num_message_bits > 0, float64 kernel m·2**e
        return _Term(
            lambda x: graded_conv_payload(op, torch.from_numpy(op.effective_weight().astype(np.float64)), x, p),
            op.delay_u6,
        )
    bound = _spike_bound(op)
    return _Term(
        lambda x: conv_payload(op, torch.from_numpy(op.weight_s8.astype(np.float32)), x, p, bound),
        op.delay_u6,
        bound=bound,
    )


def _syn_sparse(op: loihi.SynSparse, spikes: bool, p: Profile) -> _Term:
    bound = _spike_bound(op) if spikes else None
    if is_diagonal(op):  # elementwise: same integers, no matrix product
        return _Term(lambda x: sparse_payload(op, diagonal_weights(op), x, p, bound), op.delay_u6, bound=bound)
    return _Term(lambda x: sparse_payload(op, _csr(op.weight_s8, op), x, p, bound), op.delay_u6, bound=bound)


def _host_conv(op: loihi.HostConv, spikes: bool, p: Profile) -> _Term:
    return _Term(
        lambda x: host_payload(op, torch.from_numpy(op.weight_s24.astype(np.float64)), x), op.delay_u6, host=True
    )


def _host_sparse(op: loihi.HostSparse, spikes: bool, p: Profile) -> _Term:
    return _Term(lambda x: host_payload(op, _csr(op.weight_s24, op), x), op.delay_u6, host=True)


TERM_MODELS: dict[type, Callable[[Any, bool, Profile], _Term]] = {
    loihi.SynConv: _syn_conv,
    loihi.SynSparse: _syn_sparse,
    loihi.HostConv: _host_conv,
    loihi.HostSparse: _host_sparse,
}


# ---- populations: one model per op, Norse style: step(a, state) -> (out, state) ------------------


class _Population:
    """A population's integer step (:mod:`emsdeploy.ir.fixed_point`), ``step(a, state, stats) ->
    (out, state)`` with ``state`` None after a reset; ``key`` names its per-step record (``"s"``
    spikes, ``"y"`` graded values, None: a readout); ``latency`` its first valid step."""

    key: str | None = "y"

    def __init__(self, op: Any, p: Profile, a_bound: int | None) -> None:
        self.op, self.p, self.a_bound = op, p, a_bound
        self.latency = int(op.latency)

    def step(self, a: fp.Ints, state: Any, stats: dict[str, int] | None) -> tuple[npt.NDArray[Any], Any]:
        raise NotImplementedError

    def membrane(self, state: Any) -> npt.NDArray[Any]:
        """The integer membrane recorded as ``"v"`` beside spikes (a LIF's v after its reset)."""
        return state[1]


CHUNK = 1 << 20  # neurons per slice of a large LIF population's step (bounds its int64 temporaries)


class _LIF(_Population):
    """Spikes come out as booleans (an eighth of int64's memory; every reader takes them as 0/1).
    The state between steps is (u, v, effective bias), made at the reset and dropped after the
    window, with u and v in int32 where that is exact: v is saturated to ±(2**(uv_bits − 1) − 1),
    inside int32 for uv_bits <= 32; u without synaptic memory (du = 4095) is this step's input,
    int32-wrapped or proven below 2**31, moved toward zero by at most one 24-bit correction, so
    inside int32 (uv_bits <= 31); any other u is narrowed when its values fit (checked: Lava's single correction
    can leave u outside 24 bits). Computing is int64, as before."""

    def __init__(self, op: loihi.LoihiLIF | loihi.LoihiReadout, p: Profile, a_bound: int | None) -> None:
        super().__init__(op, p, a_bound)
        self.key = None if isinstance(op, loihi.LoihiReadout) else "s"
        self.v_narrow = p["uv_bits"] <= 32
        # keep_u = 0 in lif_step; the proof above needs the corrections (2**uv_bits) below 2**31
        self.u_input = op.du_u12 + p["ds_offset"] == 1 << p["decay_shift"] and p["uv_bits"] <= 31

    def step(self, a: fp.Ints, state: Any, stats: dict[str, int] | None) -> tuple[npt.NDArray[Any], Any]:
        if state is None:
            u, v, bias = np.zeros_like(a), np.zeros_like(a), fp.effective_bias(self.op)
        else:
            u, v, bias = state
        c = a.shape[-3]
        per = max(1, CHUNK // max(1, a[..., 0, :, :].size))  # channels per slice
        if per >= c:
            return self._slice(a, u, v, bias, stats)
        # lif_step is elementwise (its range tests only gate elementwise corrections, and the
        # stats are counts), so channel slices give the same result with an eighth of the
        # temporaries of a 64×320×320 population at once
        s_all = np.empty(a.shape, np.bool_)
        u_all: npt.NDArray[Any] | None = None
        v_all: npt.NDArray[Any] | None = None
        for c0 in range(0, c, per):
            sl = (..., slice(c0, c0 + per), slice(None), slice(None))
            s, (u_s, v_s, _) = self._slice(a[sl], u[sl], v[sl], bias[sl], stats)
            if u_all is None or u_all.dtype != u_s.dtype:  # int32 unless a slice's u does not fit
                u_all = np.empty(a.shape, u_s.dtype) if u_all is None else u_all.astype(u_s.dtype)
            if v_all is None:
                v_all = np.empty(a.shape, v_s.dtype)
            s_all[sl], u_all[sl], v_all[sl] = s, u_s, v_s
        return s_all, (u_all, v_all, bias)

    def _slice(self, a: fp.Ints, u: Any, v: Any, bias: Any, stats: dict[str, int] | None) -> tuple[Any, Any]:
        s, u, v = fp.lif_step(self.op, a, u, v, bias, self.p, stats, self.a_bound)
        u = u.astype(np.int32) if self.u_input else _narrow(u)
        return s, (u, v.astype(np.int32) if self.v_narrow else v, bias)


def _narrow(x: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
    """``x`` as int32 when every value fits (exact), else unchanged."""
    if x.size == 0 or (int(x.max()) < 1 << 31 and int(x.min()) >= -(1 << 31)):
        return x.astype(np.int32)
    return x


class _Relay(_Population):
    """GradedVec: v = a_in (+ the bias buffer), sent as is."""

    def step(self, a: fp.Ints, state: Any, stats: dict[str, int] | None) -> tuple[npt.NDArray[Any], Any]:
        return np.add(a, self.op.bias_s24, dtype=np.int64), None


class _MaxPool(_Population):
    def step(self, a: fp.Ints, state: Any, stats: dict[str, int] | None) -> tuple[npt.NDArray[Any], Any]:
        return fp.maxpool_step(self.op, a), None


class _IntegerLIF(_Population):
    """Integer spikes 0..D (recorded as ``"s"``, like ref-float's); ``"v"`` is the membrane V in 1/Q."""

    key = "s"

    def membrane(self, state: Any) -> npt.NDArray[Any]:
        return state[0]

    def step(self, a: fp.Ints, state: Any, stats: dict[str, int] | None) -> tuple[npt.NDArray[Any], Any]:
        return fp.integer_lif_step(self.op, a, state, self.p, stats)


class _SiLU(_Population):
    def step(self, a: fp.Ints, state: Any, stats: dict[str, int] | None) -> tuple[npt.NDArray[Any], Any]:
        return fp.silu_step(self.op, a, state)


POPULATION_MODELS: dict[type, Callable[[Any, Profile, int | None], _Population]] = {
    loihi.LoihiLIF: _LIF,
    loihi.LoihiReadout: _LIF,
    loihi.GradedRelay: _Relay,
    loihi.FixedMaxPool: _MaxPool,
    loihi.FixedSiLU: _SiLU,
    loihi.LoihiIntegerLIF: _IntegerLIF,
}


def _unsupported(node: Node) -> SimulationError:
    known = ", ".join(t.__name__ for t in (*POPULATION_MODELS, *TERM_MODELS))
    return SimulationError(
        f"{node.name} ({node.op.type_name}): ref-fixed has no step for it; it runs {known}, Input and Decode "
        "(quantize, then align_delays)"
    )


class RefFixed(Backend):
    """Bit-exact integer simulator of a quantized, delay-aligned graph (Lava's reference).

    Args:
        graph: the output of ``quantize`` then ``align_delays``.
        threads: torch threads during a run (restored after). The kernels are many small
            convolutions; on a shared machine one thread is fastest. None keeps torch's setting.
    """

    name = "ref-fixed"

    def __init__(self, graph: Graph, threads: int | None = 1) -> None:
        self.threads = threads
        if not graph.attrs.get("quantized") or not graph.attrs.get("delays_aligned"):
            raise SimulationError("ref-fixed runs quantized, delay-aligned graphs (quantize, then align_delays)")
        self.graph = graph.validate()
        self.p = dict(graph.attrs["loihi"])
        self.latency = int(graph.attrs["latency"])
        self._input = graph.input_node().name
        for node in graph:
            if type(node.op) not in POPULATION_MODELS and type(node.op) not in TERM_MODELS:
                if not isinstance(node.op, (Input, *DECODES)):
                    raise _unsupported(node)
        self._pops = [n for n in graph if type(n.op) in POPULATION_MODELS]
        self._terms: dict[str, _Term] = {}
        for n in self._pops:
            for i in n.inputs:
                node = graph[i]
                make = TERM_MODELS.get(type(node.op))
                if make is None:
                    raise SimulationError(f"{i}: {node.op.type_name} is not a synapse group or host term")
                self._terms[i] = make(node.op, graph.kind(node.inputs[0]) == Kind.SPIKE, self.p)
        # proven bounds on payloads and input sums let most int32 / 24-bit wrap checks go
        self._sum_bound: dict[str, int | None] = {}
        for n in self._pops:
            bs = [self._terms[i].bound for i in n.inputs]
            self._sum_bound[n.name] = sum(b for b in bs if b is not None) if None not in bs else None
        self._models = {
            n.name: POPULATION_MODELS[type(n.op)](n.op, self.p, self._sum_bound[n.name]) for n in self._pops
        }
        self.stats: dict[str, dict[str, int]] = {}

    def run(
        self,
        x: torch.Tensor,
        time_steps: int | None = None,
        record: Any = None,
        raw: bool = False,
        observer: Any = None,
    ) -> Trace:
        """Run ``T + latency`` steps on ``x`` (direct ``[B, C, H, W]``, frames ``[B, T, C, H, W]``).
        ``observer(name, out)``, if given, sees every population's output at each of its valid steps
        (counting without recording: ``emsdeploy fit``)."""
        before = torch.get_num_threads()
        if self.threads and self.threads != before:
            torch.set_num_threads(self.threads)
        try:
            with torch.no_grad():
                return self._run(x, time_steps, record, raw, observer)
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)

    def _run(self, x: torch.Tensor, time_steps: int | None, record: Any, raw: bool, observer: Any = None) -> Trace:
        g, p = self.graph, self.p
        T, frame = graph_steps(g, x, time_steps)
        N = T + self.latency
        wanted = population_names(g, record)
        B = int(x.shape[0])
        state: dict[str, Any] = {}
        # A chip synapse group's line holds what its source emitted at the steps still in flight
        # (None: nothing, i.e. zeros); the payload is computed when it arrives. The outputs are
        # shared by every group reading them and are smaller than payloads (boolean spikes), so
        # a deep delay line costs little memory.
        lines: dict[str, deque[torch.Tensor | None]] = {
            name: deque([None] * (1 + term.delay)) for name, term in self._terms.items() if not term.host
        }
        groups_of: dict[str, list[str]] = {}  # population -> the chip groups reading it
        for name in lines:
            groups_of.setdefault(g[name].inputs[0], []).append(name)
        host_cache: dict[int, torch.Tensor] = {}
        term_cache: dict[str, dict[int, torch.Tensor]] = {}
        static = g.encoding == "direct"  # the same image every step: host terms are computed once
        recs: dict[str, dict[str, list[torch.Tensor]]] = {n: {} for n in wanted}
        self.stats = {n.name: {} for n in self._pops}

        def quantized_frame(n: int) -> torch.Tensor:
            if n not in host_cache:
                in_scale = float(g.attrs.get("input_scale", 255.0))
                host_cache[n] = quantize_input(frame(n), in_scale)
            return host_cache[n]

        # Outside its T valid steps a population's values reach only other populations' invalid
        # steps (which their resets wipe): unless the raw trace is asked for, skip them, and drop
        # a population's state and host terms after its last valid step (never read again).
        window_only = not raw
        for n in range(N):
            arrived = {name: line.popleft() for name, line in lines.items()}
            for node in self._pops:
                model = self._models[node.name]
                valid = model.latency <= n < model.latency + T
                if window_only and not valid:
                    for name in groups_of.get(node.name, ()):
                        lines[name].append(None)  # a skipped step of the source: nothing valid to deliver
                    continue
                a = None
                for i in node.inputs:
                    term = self._terms[i]
                    if term.host:
                        k = n - term.delay
                        if k < 0 or k >= T:
                            continue  # the host sends nothing before or after the T frames
                        cache = term_cache.setdefault(i, {})
                        key = 0 if static else k
                        if key not in cache:
                            cache[key] = term.payload(quantized_frame(k))
                        val = cache[key]
                    else:
                        xs = arrived[i]
                        if xs is None:
                            continue
                        val = term.payload(xs)
                    a = val if a is None else a + val
                if a is None:
                    a = torch.zeros(B, *g.shape(node.inputs[0]), dtype=torch.int64)
                a_np = a.numpy()
                sb = self._sum_bound[node.name]
                if sb is None or sb >= 1 << 31:
                    a_np = fp.wrap(a_np, 32)  # InPort sums in int32
                if n == model.latency:  # held in reset until its first valid step
                    state.pop(node.name, None)
                y, state[node.name] = model.step(a_np, state.get(node.name), self.stats[node.name] if valid else None)
                out = torch.from_numpy(y)
                for name in groups_of.get(node.name, ()):
                    lines[name].append(out)
                if observer is not None and valid:
                    observer(node.name, out)
                if node.name in wanted and model.key is not None:
                    r = recs[node.name]
                    shown = out.to(torch.float32) if model.key == "s" else out
                    if raw:
                        r.setdefault(f"{model.key}_raw", []).append(shown)
                    if valid:
                        r.setdefault(model.key, []).append(shown)
                        if model.key == "s":
                            r.setdefault("v", []).append(torch.from_numpy(model.membrane(state[node.name]).astype(np.int64)))
                if window_only and n == model.latency + T - 1:
                    for i in node.inputs:
                        term_cache.pop(i, None)
                    if not isinstance(node.op, loihi.LoihiReadout):  # a readout's v is its output
                        state.pop(node.name, None)
            del arrived

        outputs: dict[str, torch.Tensor] = {}
        records = {n: {k: torch.stack(val) for k, val in r.items()} for n, r in recs.items()}
        act = 1 << p["act_shift"]
        for node in self._pops:
            if isinstance(node.op, loihi.LoihiReadout):
                vi = torch.from_numpy(state[node.name][1].astype(np.int64))
                outputs[node.name] = vi.to(torch.float64) / (act * node.op.scale * T)
                records.setdefault(node.name, {})["v"] = vi.clone()
        for node in g:
            if isinstance(node.op, DECODES):
                outputs[node.name] = decode_boxes([outputs[i] for i in node.inputs], node.op)
        return Trace({o: outputs[o] for o in g.outputs if o in outputs}, records, T)

    @property
    def run_steps(self) -> int:
        """Steps of a run beyond T (the readout latency)."""
        return self.latency
