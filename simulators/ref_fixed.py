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
    diagonal,
    graded_conv_payload,
    host_payload,
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


def _csr(data: npt.NDArray[Any], op: Any) -> sp.csr_matrix:
    n_out, n_in = int(np.prod(op.out_shape)), int(np.prod(op.in_shape))
    return sp.csr_matrix((data.astype(np.int64), op.indices, op.indptr), shape=(n_out, n_in))


def _syn_conv(op: loihi.SynConv, spikes: bool, p: Profile) -> _Term:
    if not spikes:  # graded integers: a Conv with num_message_bits > 0, float64 kernel m·2**e
        w64 = torch.from_numpy(op.effective_weight().astype(np.float64))
        return _Term(lambda x: graded_conv_payload(op, w64, x, p), op.delay_u6)
    w32 = torch.from_numpy(op.weight_s8.astype(np.float32))
    bound = _spike_bound(op)
    return _Term(lambda x: conv_payload(op, w32, x, p, bound), op.delay_u6, bound=bound)


def _syn_sparse(op: loihi.SynSparse, spikes: bool, p: Profile) -> _Term:
    diag = diagonal(op)  # elementwise: same integers, no matrix product
    weights: Any = diag if diag is not None else _csr(op.weight_s8, op)
    bound = _spike_bound(op) if spikes else None
    return _Term(lambda x: sparse_payload(op, weights, x, p, bound), op.delay_u6, bound=bound)


def _host_conv(op: loihi.HostConv, spikes: bool, p: Profile) -> _Term:
    w = torch.from_numpy(op.weight_s24.astype(np.float64))
    return _Term(lambda x: host_payload(op, w, x), op.delay_u6, host=True)


def _host_sparse(op: loihi.HostSparse, spikes: bool, p: Profile) -> _Term:
    m = _csr(op.weight_s24, op)
    return _Term(lambda x: host_payload(op, m, x), op.delay_u6, host=True)


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


class _LIF(_Population):
    def __init__(self, op: loihi.LoihiLIF | loihi.LoihiReadout, p: Profile, a_bound: int | None) -> None:
        super().__init__(op, p, a_bound)
        self.bias = fp.effective_bias(op)
        self.key = None if isinstance(op, loihi.LoihiReadout) else "s"

    def step(self, a: fp.Ints, state: Any, stats: dict[str, int] | None) -> tuple[npt.NDArray[Any], Any]:
        u, v = state if state is not None else (np.zeros_like(a), np.zeros_like(a))
        s, u, v = fp.lif_step(self.op, a, u, v, self.bias, self.p, stats, self.a_bound)
        return s.astype(np.int64), (u, v)


class _Relay(_Population):
    """GradedVec: v = a_in (+ the bias buffer), sent as is."""

    def __init__(self, op: loihi.GradedRelay, p: Profile, a_bound: int | None) -> None:
        super().__init__(op, p, a_bound)
        self.bias = op.bias_s24.astype(np.int64)

    def step(self, a: fp.Ints, state: Any, stats: dict[str, int] | None) -> tuple[npt.NDArray[Any], Any]:
        return a + self.bias, None


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
        zeros = {n.name: torch.zeros(B, *g.shape(n.inputs[0]), dtype=torch.int64) for n in self._pops}
        state: dict[str, Any] = {}
        lines = {
            name: deque([torch.zeros(B, *g.shape(name), dtype=torch.int64)] * (1 + term.delay))
            for name, term in self._terms.items()
            if not term.host
        }
        host_cache: dict[int, torch.Tensor] = {}
        term_cache: dict[tuple[str, int], torch.Tensor] = {}
        static = g.encoding == "direct"  # the same image every step: host terms are computed once
        outs: dict[str, torch.Tensor | None] = {}
        recs: dict[str, dict[str, list[torch.Tensor]]] = {n: {} for n in wanted}
        self.stats = {n.name: {} for n in self._pops}

        def quantized_frame(n: int) -> torch.Tensor:
            if n not in host_cache:
                in_scale = float(g.attrs.get("input_scale", 255.0))
                host_cache[n] = quantize_input(frame(n), in_scale)
            return host_cache[n]

        # Outside its T valid steps a population's values reach only other populations' invalid
        # steps (which their resets wipe): unless the raw trace is asked for, skip them.
        window_only = not raw
        term_zero = {name: torch.zeros(B, *g.shape(name), dtype=torch.int64) for name in lines}
        for n in range(N):
            arrived = {name: line.popleft() for name, line in lines.items()}
            for node in self._pops:
                model = self._models[node.name]
                valid = model.latency <= n < model.latency + T
                if window_only and not valid:
                    outs[node.name] = None
                    continue
                a = None
                for i in node.inputs:
                    term = self._terms[i]
                    if term.host:
                        k = n - term.delay
                        if k < 0 or k >= T:
                            val = zeros[node.name]
                        else:
                            key = (i, 0 if static else k)
                            if key not in term_cache:
                                term_cache[key] = term.payload(quantized_frame(k))
                            val = term_cache[key]
                    else:
                        val = arrived[i]
                    a = val if a is None else a + val
                a_np = a.numpy()  # type: ignore[union-attr]
                sb = self._sum_bound[node.name]
                if sb is None or sb >= 1 << 31:
                    a_np = fp.wrap(a_np, 32)  # InPort sums in int32
                if n == model.latency:  # held in reset until its first valid step
                    state.pop(node.name, None)
                y, state[node.name] = model.step(a_np, state.get(node.name), self.stats[node.name] if valid else None)
                out = torch.from_numpy(y)
                outs[node.name] = out
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
                            r.setdefault("v", []).append(torch.from_numpy(model.membrane(state[node.name])))
            for name, line in lines.items():
                xs = outs[g[name].inputs[0]]
                # a skipped step of the source: nothing valid to deliver
                line.append(term_zero[name] if xs is None else self._terms[name].payload(xs))

        outputs: dict[str, torch.Tensor] = {}
        records = {n: {k: torch.stack(val) for k, val in r.items()} for n, r in recs.items()}
        act = 1 << p["act_shift"]
        for node in self._pops:
            if isinstance(node.op, loihi.LoihiReadout):
                vi = torch.from_numpy(state[node.name][1])
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
