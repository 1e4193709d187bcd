"""Design rules of the Lava/Loihi target: small functions, one per rule, limits from the profile.

Each rule takes a quantized, delay-aligned graph and the :class:`LoihiProfile` and raises
:class:`~emsdeploy.errors.DRCError` carrying its own name. :func:`check` runs them all (in
:data:`RULES` order) and reports the first violation of each rule.

Legal edges (``LEGAL_EDGES``), source → synapse group → population:

=====================  =========================  ==============================================
source                 synapse group              why
=====================  =========================  ==============================================
Input (host)           HostConv, HostSparse       the host computes it and injects into a_in
LoihiLIF (spikes)      SynConv, SynSparse         binary spikes into Conv / (Delay)Sparse
LoihiIntegerLIF        SynConv, SynSparse         integers 0..D: graded spikes, or D binary spikes
                                                  over D sub-steps (spike-driven export)
FixedMaxPool, FixedSiLU SynSparse                 graded spikes need Sparse's exponent shift
GradedRelay            SynSparse, SynConv         graded spikes (num_message_bits > 0); a relay is
                                                  scaled for its Conv readers (no shift needed)
=====================  =========================  ==============================================

A Conv reading graded spikes cannot shift right and wraps at 24 bits: its worst-case sum (the
source's proven bound ``meta["out_bound"]`` times the largest Σ|weight| of an output) must fit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from emsdeploy.errors import DRCError
from emsdeploy.ir import DECODES, Graph, Input
from emsdeploy.ir.ops import loihi
from emsdeploy.profiles.loihi import LoihiProfile

__all__ = ["LEGAL_EDGES", "RULES", "check"]

Rule = Callable[[Graph, LoihiProfile], None]

# (source op type, synapse group op type): the legal edges into any population
LEGAL_EDGES: dict[tuple[type, type], str] = {
    (Input, loihi.HostConv): "host conv of the input, injected into a_in",
    (Input, loihi.HostSparse): "host matrix of the input, injected into a_in",
    (loihi.LoihiLIF, loihi.SynConv): "binary spikes through lava Conv",
    (loihi.LoihiLIF, loihi.SynSparse): "binary spikes through lava Sparse / DelaySparse",
    (loihi.LoihiIntegerLIF, loihi.SynConv): "integer spikes (graded, or D binary sub-steps) through lava Conv",
    (loihi.LoihiIntegerLIF, loihi.SynSparse): "integer spikes (graded, or D binary sub-steps) through Sparse",
    (loihi.FixedMaxPool, loihi.SynSparse): "graded spikes (num_message_bits > 0) through Sparse",
    (loihi.FixedSiLU, loihi.SynSparse): "graded spikes (num_message_bits > 0) through Sparse",
    (loihi.GradedRelay, loihi.SynSparse): "a relayed current through Sparse (index maps, small matrices)",
    (loihi.GradedRelay, loihi.SynConv): "a relayed current through a weight-shared Conv (no shift, 24-bit sum)",
}


def graph_is_lowered(graph: Graph, p: LoihiProfile) -> None:
    """The graph went through quantize and align_delays and holds only Loihi ops."""
    if not graph.attrs.get("quantized") or not graph.attrs.get("delays_aligned"):
        raise DRCError("graph_is_lowered", "run quantize and align_delays first (the lava flow)")
    allowed = (Input, *DECODES, *loihi.POPULATIONS, *loihi.CHIP_SYNAPSES, *loihi.HOST_TERMS)
    for n in graph:
        if not isinstance(n.op, allowed):
            raise DRCError(
                "graph_is_lowered",
                f"{n.name} ({n.op.type_name}) has no Lava process; supported: {', '.join(c.__name__ for c in allowed)}",
            )


def populations_are_placed(graph: Graph, p: LoihiProfile) -> None:
    """Standard populations run on the chip; the others are marked custom or host."""
    for n in graph:
        where = n.meta.get("partition")
        if isinstance(n.op, (loihi.LoihiLIF, loihi.LoihiReadout, loihi.GradedRelay)) and where != "chip":
            raise DRCError(
                "populations_are_placed",
                f"{n.name}: a {n.op.type_name} is a standard Lava LIF; it must be on the chip, not {where!r}",
            )
        if isinstance(n.op, (loihi.FixedMaxPool, loihi.FixedSiLU, loihi.LoihiIntegerLIF)) and where not in (
            "custom",
            "host",
        ):
            raise DRCError(
                "populations_are_placed",
                f"{n.name}: {n.op.type_name} has no standard Loihi neuron model; mark it 'custom' (simulation only) or 'host', not {where!r}",
            )


def edges_are_legal(graph: Graph, p: LoihiProfile) -> None:
    """Every synapse group joins a legal source to one population (table in the module doc)."""
    users = graph.users()
    for n in graph:
        op = n.op
        if isinstance(op, loihi.CHIP_SYNAPSES + loihi.HOST_TERMS):
            src = graph[n.inputs[0]].op
            if (type(src), type(op)) not in LEGAL_EDGES:
                ok = ", ".join(f"{a.__name__}->{b.__name__}" for a, b in LEGAL_EDGES)
                raise DRCError(
                    "edges_are_legal",
                    f"{n.name}: {type(src).__name__} -> {op.type_name} is not a legal edge; legal: {ok}",
                )
            readers = users[n.name]
            if len(readers) != 1 or not isinstance(graph[readers[0]].op, loihi.POPULATIONS):
                raise DRCError(
                    "edges_are_legal", f"{n.name}: a synapse group feeds exactly one population, it feeds {readers}"
                )
        elif isinstance(op, loihi.POPULATIONS):
            for i in n.inputs:
                if not isinstance(graph[i].op, loihi.CHIP_SYNAPSES + loihi.HOST_TERMS):
                    raise DRCError(
                        "edges_are_legal", f"{n.name}: input {i} ({graph[i].op.type_name}) is not a synapse group"
                    )
        elif isinstance(op, DECODES):
            for i in n.inputs:
                if not isinstance(graph[i].op, loihi.LoihiReadout):
                    raise DRCError(
                        "edges_are_legal", f"{n.name}: Decode reads readouts only, {i} is a {graph[i].op.type_name}"
                    )


def _range(name: str, rule: str, field: str, values: np.ndarray, lo: int, hi: int, fmt: str) -> None:
    values = np.asarray(values)
    if values.size and (values.min() < lo or values.max() > hi):
        raise DRCError(rule, f"{name}: {field} spans [{values.min()}, {values.max()}], {fmt} allows [{lo}, {hi}]")


def weights_fit(graph: Graph, p: LoihiProfile) -> None:
    """Chip weights are 8-bit mantissas with an exponent in range (Conv: no right shift)."""
    lo, hi = p.weight_range
    hlo, hhi = p.host_weight_range
    for n in graph:
        op = n.op
        if isinstance(op, loihi.CHIP_SYNAPSES):
            _range(n.name, "weights_fit", "weight_s8", op.weight_s8, lo, hi, f"s{p.weight_bits}")
            e_lo = 0 if isinstance(op, loihi.SynConv) else p.weight_exp_min
            _range(
                n.name,
                "weights_fit",
                "weight_exp_s4",
                np.array([op.weight_exp_s4]),
                e_lo,
                p.weight_exp_max,
                "the exponent",
            )
        elif isinstance(op, loihi.HOST_TERMS):
            _range(n.name, "weights_fit", "weight_s24", op.weight_s24, hlo, hhi, f"s{p.host_weight_bits}")
            _range(n.name, "weights_fit", "shift_u5", np.array([op.shift_u5]), 0, p.host_max_shift, "the host shift")


def neuron_params_fit(graph: Graph, p: LoihiProfile) -> None:
    """Decays, thresholds and biases fit Lava's bit-accurate LIF (and the graded payload)."""
    blo, bhi = p.bias_mant_range
    half = 1 << (p.graded_message_bits - 1)
    for n in graph:
        op = n.op
        if isinstance(op, (loihi.LoihiLIF, loihi.LoihiReadout)):
            _range(n.name, "neuron_params_fit", "du_u12", np.array([op.du_u12]), 0, p.du_max, "u12")
            _range(n.name, "neuron_params_fit", "dv_u12", np.array([op.dv_u12]), 0, p.dv_max, "u12")
            _range(n.name, "neuron_params_fit", "vth_u17", np.array([op.vth_u17]), 0, p.vth_max, "u17")
            _range(n.name, "neuron_params_fit", "bias_mant_s13", op.bias_mant_s13, blo, bhi, "s13")
            _range(n.name, "neuron_params_fit", "bias_exp_u3", np.array([op.bias_exp_u3]), 0, p.bias_exp_max, "u3")
        elif isinstance(op, (loihi.FixedMaxPool, loihi.FixedSiLU, loihi.GradedRelay, loihi.LoihiIntegerLIF)):
            _range(n.name, "neuron_params_fit", "bias_s24", op.bias_s24, -half, half - 1, f"s{p.graded_message_bits}")


def delays_fit(graph: Graph, p: LoihiProfile) -> None:
    """Delays are within DelaySparse's range (a delayed conv is lowered to a DelaySparse)."""
    for n in graph:
        op = n.op
        if isinstance(op, loihi.CHIP_SYNAPSES + loihi.HOST_TERMS):
            if isinstance(op, loihi.CHIP_SYNAPSES) and op.delay_u6 > p.max_delay:
                raise DRCError(
                    "delays_fit",
                    f"{n.name}: delay {op.delay_u6} exceeds DelaySparse's maximum {p.max_delay}; add relay populations",
                )


def accumulators_exact(graph: Graph, p: LoihiProfile) -> None:
    """Worst-case sums fit where Lava computes them: int32 (Conv output before its 24-bit wrap,
    binary Sparse rows) and float64 below 2**53 (host convolutions). Graded Sparse rows wrap in
    int32 like numpy; ref-fixed models that wrap, so it is allowed."""
    lim32 = 1 << (p.sparse_accumulator_bits - 1)
    lim_f = 1 << p.float_exact_bits
    for n in graph:
        op = n.op
        src = graph[n.inputs[0]].op if n.inputs else None
        if isinstance(op, loihi.SynConv):
            w = np.abs(op.effective_weight())
            bound = int(w.reshape(w.shape[0], -1).sum(1).max()) if w.size else 0
            if not isinstance(src, loihi.LoihiLIF):  # graded input: Lava's Conv wraps its sum at 24 bits
                x_max = graph[n.inputs[0]].meta.get("out_bound")
                lim24 = 1 << (p.conv_accumulator_bits - 1)
                if x_max is None or bound * int(x_max) >= lim24:
                    allowed = any(c["node"] == n.name for c in graph.attrs.get("quantization", {}).get("clips", []))
                    if not allowed:
                        raise DRCError(
                            "accumulators_exact",
                            f"{n.name}: a graded Conv sum can reach {bound} x {x_max} >= 2**23 (it would wrap)",
                        )
            if bound >= lim32:
                raise DRCError(
                    "accumulators_exact", f"{n.name}: a Conv output can reach {bound} >= 2**31 before its 24-bit wrap"
                )
        elif isinstance(op, loihi.SynSparse) and isinstance(src, loihi.LoihiLIF):
            rows = _row_abs_sums(op.weight_s8, op.indices, op.indptr) * 2
            if rows.size and int(rows.max()) >= lim32:
                raise DRCError("accumulators_exact", f"{n.name}: a Sparse row can reach {int(rows.max())} >= 2**31")
        elif isinstance(op, (loihi.HostConv, loihi.HostSparse)):
            x_max = int(np.ceil(op.in_scale))
            if isinstance(op, loihi.HostConv):
                w = np.abs(op.weight_s24.astype(np.int64))
                rows = w.reshape(w.shape[0], -1).sum(1)
            else:
                rows = _row_abs_sums(op.weight_s24, op.indices, op.indptr)
            bound = int(rows.max()) * x_max if rows.size else 0
            if bound >= lim_f:
                raise DRCError(
                    "accumulators_exact", f"{n.name}: a host sum can reach {bound} >= 2**{p.float_exact_bits}"
                )


def _row_abs_sums(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    n = len(indptr) - 1
    m = sp.csr_matrix(
        (np.abs(data.astype(np.int64)), indices, indptr), shape=(n, int(indices.max()) + 1 if indices.size else 1)
    )
    return np.asarray(m.sum(axis=1)).ravel()


def readouts_aligned(graph: Graph, p: LoihiProfile) -> None:
    """All readouts share one latency (one run of T + latency steps reads them together)."""
    lat = {n.name: n.op.latency for n in graph if isinstance(n.op, loihi.LoihiReadout)}
    if len(set(lat.values())) > 1:
        raise DRCError("readouts_aligned", f"readout latencies differ: {lat}; run align_delays")


RULES: list[Rule] = [
    graph_is_lowered,
    populations_are_placed,
    edges_are_legal,
    weights_fit,
    neuron_params_fit,
    delays_fit,
    accumulators_exact,
    readouts_aligned,
]


def check(graph: Graph, profile: LoihiProfile, rules: list[Rule] | None = None) -> None:
    """Run every rule; raise the first :class:`DRCError` (its ``rule`` names the rule)."""
    for rule in rules or RULES:
        rule(graph, profile)
