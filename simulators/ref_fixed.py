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
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from emsdeploy.errors import SimulationError
from emsdeploy.ir import Decode, Graph, Kind
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
    silu_fixed_step,
)
from emsdeploy.ir.runtime import RecordSpec, Trace, decode_boxes, graph_steps, select_records

from .base import Backend
from .fixed_kernels import (
    conv_payload,
    diagonal,
    effective_bias,
    graded_conv_payload,
    host_payload,
    lif_step,
    payload_bound,
    quantize_input,
    sparse_payload,
    wrap,
)

__all__ = ["RefFixed", "population_names"]

_POPS = (LoihiLIF, LoihiReadout, FixedMaxPool, FixedSiLU, GradedRelay)


def population_names(graph: Graph, record: RecordSpec) -> set[str]:
    """``"neurons"``: LIF, max-pool, SiLU and relay populations; ``"all"``: also readouts; or names."""
    neurons = (n.name for n in graph if isinstance(n.op, (LoihiLIF, FixedMaxPool, FixedSiLU, GradedRelay)))
    every = (n.name for n in graph if isinstance(n.op, _POPS))
    return set(select_records(record, neurons=neurons, every=every, known=graph.names()))


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
        self._pops = [n for n in graph if isinstance(n.op, _POPS)]
        self._terms = {i: graph[i] for n in self._pops for i in n.inputs}
        self._weights: dict[str, Any] = {}
        for name, node in self._terms.items():
            op = node.op
            if isinstance(op, SynConv) and graph.kind(node.inputs[0]) != Kind.SPIKE:
                self._weights[name] = torch.from_numpy(op.effective_weight().astype(np.float64))
            elif isinstance(op, SynConv):
                self._weights[name] = torch.from_numpy(op.weight_s8.astype(np.float32))
            elif isinstance(op, HostConv):
                self._weights[name] = torch.from_numpy(op.weight_s24.astype(np.float64))
            elif isinstance(op, (SynSparse, HostSparse)):
                diag = diagonal(op) if isinstance(op, SynSparse) else None
                if diag is not None:
                    self._weights[name] = diag  # elementwise: same integers, no matrix product
                    continue
                data = (op.weight_s8 if isinstance(op, SynSparse) else op.weight_s24).astype(np.int64)
                n_out, n_in = int(np.prod(op.out_shape)), int(np.prod(op.in_shape))
                self._weights[name] = sp.csr_matrix((data, op.indices, op.indptr), shape=(n_out, n_in))
            else:
                raise SimulationError(f"{name}: {op.type_name} is not a synapse group or host term")
        # proven bounds on payloads and input sums let most int32 / 24-bit wrap checks go
        self._bound: dict[str, int | None] = {}
        for name, node in self._terms.items():
            op = node.op
            spikes = graph.kind(node.inputs[0]) == Kind.SPIKE
            if isinstance(op, (SynConv, SynSparse)) and spikes:
                base = payload_bound(op)
                e = op.weight_exp_s4
                self._bound[name] = (base << e) if e >= 0 else (base >> -e) + 1
            else:
                self._bound[name] = None  # graded or host values: checked at run time
        self._sum_bound: dict[str, int | None] = {}
        for n in self._pops:
            bs = [self._bound[i] for i in n.inputs]
            self._sum_bound[n.name] = None if any(b is None for b in bs) else sum(bs)  # type: ignore[misc]
        self._bias = {n.name: effective_bias(n.op) for n in self._pops if isinstance(n.op, (LoihiLIF, LoihiReadout))}
        self._graded_bias = {
            n.name: torch.from_numpy(n.op.bias_s24.astype(np.int64))
            for n in self._pops
            if isinstance(n.op, (FixedMaxPool, GradedRelay))
        }
        self.stats: dict[str, dict[str, int]] = {}

    def run(self, x: torch.Tensor, time_steps: int | None = None, record: Any = None, raw: bool = False) -> Trace:
        """Run ``T + latency`` steps on ``x`` (direct ``[B, C, H, W]``, frames ``[B, T, C, H, W]``)."""
        before = torch.get_num_threads()
        if self.threads and self.threads != before:
            torch.set_num_threads(self.threads)
        try:
            with torch.no_grad():
                return self._run(x, time_steps, record, raw)
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)

    def _run(self, x: torch.Tensor, time_steps: int | None, record: Any, raw: bool) -> Trace:
        g, p = self.graph, self.p
        T, frame = graph_steps(g, x, time_steps)
        N = T + self.latency
        wanted = population_names(g, record)
        B = int(x.shape[0])
        zeros = {n.name: torch.zeros(B, *g.shape(n.inputs[0]), dtype=torch.int64) for n in self._pops}
        u = {n.name: zeros[n.name].clone() for n in self._pops if isinstance(n.op, (LoihiLIF, LoihiReadout))}
        v = {k: t.clone() for k, t in u.items()}
        silu_state: dict[str, Any] = {}
        lines = {
            name: deque([torch.zeros(B, *g.shape(name), dtype=torch.int64)] * (1 + node.op.delay_u6))
            for name, node in self._terms.items()
            if isinstance(node.op, (SynConv, SynSparse))
        }
        host_cache: dict[int, torch.Tensor] = {}
        term_cache: dict[tuple[str, int], torch.Tensor] = {}
        static = g.encoding == "direct"  # the same image every step: host terms are computed once
        outs: dict[str, torch.Tensor] = {}
        recs: dict[str, dict[str, list[torch.Tensor]]] = {n: {} for n in wanted}
        self.stats = {n.name: {} for n in self._pops}

        def quantized_frame(n: int) -> torch.Tensor | None:
            if n < 0 or n >= T:
                return None
            if n not in host_cache:
                fr = frame(n)
                in_scale = float(g.attrs.get("input_scale", 255.0))
                host_cache[n] = quantize_input(fr, in_scale)
            return host_cache[n]

        # Outside its T valid steps a population's values reach only other populations' invalid
        # steps (which their resets wipe): unless the raw trace is asked for, skip them.
        window_only = not raw
        term_zero = {name: torch.zeros(B, *g.shape(name), dtype=torch.int64) for name in lines}
        for n in range(N):
            arrived = {name: line.popleft() for name, line in lines.items()}
            for node in self._pops:
                op = node.op
                if window_only and not op.latency <= n < op.latency + T:
                    outs[node.name] = None  # type: ignore[assignment]
                    continue
                a = None
                for i in node.inputs:
                    top = g[i].op
                    if isinstance(top, (HostConv, HostSparse)):
                        k = n - top.delay_u6
                        if k < 0 or k >= T:
                            val = zeros[node.name]
                        else:
                            key = (i, 0 if static else k)
                            if key not in term_cache:
                                term_cache[key] = host_payload(top, self._weights[i], quantized_frame(k))
                            val = term_cache[key]
                    else:
                        val = arrived[i]
                    a = val if a is None else a + val
                sb = self._sum_bound[node.name]
                if sb is None or sb >= 1 << 31:
                    a = wrap(a, 32)  # InPort sums in int32
                valid = op.latency <= n < op.latency + T
                st = self.stats[node.name] if valid else None
                if isinstance(op, (LoihiLIF, LoihiReadout)):
                    if n == op.latency:
                        u[node.name].zero_()
                        v[node.name].zero_()
                    s, u[node.name], v[node.name] = lif_step(
                        op, a, u[node.name], v[node.name], self._bias[node.name], p, st, sb
                    )
                    out = s.to(torch.int64)
                elif isinstance(op, GradedRelay):
                    out = a + self._graded_bias[node.name]  # GradedVec: v = a_in (+ the bias buffer), sent as is
                elif isinstance(op, FixedMaxPool):
                    k = op.kernel
                    c, h, w = op.in_shape()
                    pre = a + self._graded_bias[node.name]
                    pre = pre[:, :, : (h // k) * k, : (w // k) * k]
                    out = pre.reshape(B, c, h // k, k, w // k, k).amax(dim=(3, 5))
                    r = op.out_shift_u5
                    if r:
                        out = (out + (1 << (r - 1))) >> r
                else:  # FixedSiLU
                    state = None if n == op.latency else silu_state.get(node.name)
                    y, silu_state[node.name] = silu_fixed_step(op, a.numpy(), state)
                    out = torch.from_numpy(y)
                outs[node.name] = out
                if node.name in wanted and not isinstance(op, LoihiReadout):
                    r = recs[node.name]
                    key = "s" if isinstance(op, LoihiLIF) else "y"
                    if raw:
                        r.setdefault(f"{key}_raw", []).append(out.to(torch.float32) if key == "s" else out)
                    if valid:
                        r.setdefault(key, []).append(out.to(torch.float32) if key == "s" else out)
                        if isinstance(op, LoihiLIF):
                            r.setdefault("v", []).append(v[node.name].clone())
            for name, line in lines.items():
                src = g[name].inputs[0]
                top = g[name].op
                xs = outs[src]
                if xs is None:  # a skipped step of the source: nothing valid to deliver
                    line.append(term_zero[name])
                elif isinstance(top, SynConv) and self._weights[name].dtype == torch.float64:
                    line.append(graded_conv_payload(top, self._weights[name], xs, p))
                elif isinstance(top, SynConv):
                    line.append(conv_payload(top, self._weights[name], xs, p, self._bound[name]))
                else:
                    line.append(sparse_payload(top, self._weights[name], xs, p, self._bound[name]))

        outputs: dict[str, torch.Tensor] = {}
        records = {n: {k: torch.stack(val) for k, val in r.items()} for n, r in recs.items()}
        act = 1 << p["act_shift"]
        for node in self._pops:
            if isinstance(node.op, LoihiReadout):
                vi = v[node.name]
                outputs[node.name] = vi.to(torch.float64) / (act * node.op.scale * T)
                records.setdefault(node.name, {})["v"] = vi.clone()
        for node in g:
            if isinstance(node.op, Decode):
                outputs[node.name] = decode_boxes([outputs[i] for i in node.inputs], node.op)
        return Trace({o: outputs[o] for o in g.outputs if o in outputs}, records, T)

    @property
    def run_steps(self) -> int:
        """Steps of a run beyond T (the readout latency)."""
        return self.latency
