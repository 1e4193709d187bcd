"""Quantize a float IR graph to Loihi fixed point (DESIGN.md §8): the Loihi ops of ``ir/ops/loihi.py``.

Pre: a simplified (``fold_affine``, ``flatten_fanin``, ``remove_dead``) and partitioned graph
(``node.meta["partition"]`` from :func:`~emsdeploy.passes.partition`), its fan-in expanded by
:func:`~emsdeploy.passes.expand_fanin.expand_fanin` with ``fold_max_synapses`` (quantize runs
that pass itself on a graph that does not carry it yet).

Post: a graph of populations and synapse groups (see :mod:`emsdeploy.ir.ops.loihi`), all
parameters integers within the profile's widths, ``latency``/``delay`` still 0 (run
:func:`~emsdeploy.passes.align_delays` next), ``graph.attrs["quantization"]`` holding the report
and ``graph.attrs["loihi"]`` the profile. Node names: a population keeps its IR node's name; a
synapse group is ``"<population><-<source>"``.

The scheme (every number from the profile, every choice in :class:`QuantizeOptions`):

* every linear IR op is folded into per-source synapse groups (the
  :func:`~emsdeploy.passes.expand_fanin.expand_fanin` pass, run first when the graph lacks it);
* one scale ``S = 2**k`` per population, shared by all its incoming groups, its bias and its
  threshold: a current I arrives as ``round(S·I)`` weight units. ``k = scale_bits_max`` unless
  a width forces it lower (the weight exponent range, the threshold or the bias);
* each group has its own weight exponent e: mantissas ``m = rint(w·S/S_src / 2**e)`` fill
  [-128, 127] (8 bits, Loihi's weight mantissa); a group reading spikes lowers to Lava's Conv,
  which has no right shift, so there e >= 0;
* LIF: ``du = 4095`` (u is this step's input), ``dv = rint(4096·(1 − τ))``,
  ``vth = rint(V_th·S)``; the bias ``b·S·64`` in v units as ``bias_mant · 2**bias_exp``;
* readouts are non-leaky integrators (``dv = 0``, the largest threshold);
* SpikeYOLO's integer LIF becomes a :class:`LoihiIntegerLIF` (decay 2**-d as an exact shift:
  the membrane keeps ``f = d·(T − 1)`` fraction bits); its integers 0..D are read like spikes
  (Conv groups, e >= 0) with the bound D;
* max-pools of spikes become a LIF with threshold 0 behind an all-ones window synapse (S = 1);
  max-pools of currents and SiLU neurons become :class:`FixedMaxPool` / :class:`FixedSiLU`
  populations, placed ``custom`` or ``host`` as the partition says;
* terms that read the input image are computed on the host from ``x_int = rint(x·input_scale)``
  with wide integer weights and a rounding shift, and injected straight into ``a_in``.

Values that do not fit raise :class:`QuantizationError` naming node, field, observed and
allowed range; with ``allow_clip`` they are clipped instead and every clip is in the report.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import PassError, QuantizationError
from ..ir import DECODES, LIF, Graph, Input, IntegerLIF, Kind, MaxPool2d, Readout, SiLUNeuron
from ..ir.linear import ConvMap, Fanin, LinearMap, Term, identity, to_sparse
from ..ir.ops import loihi
from ..profiles.loihi import LoihiProfile, load_profile
from .expand_fanin import FOLD_MAX_SYNAPSES, expand_fanin, fanins, relays

__all__ = ["QuantizeOptions", "format_quant_report", "quantize"]

Array = NDArray[Any]

_BINARY_OR_INTEGER = (Kind.SPIKE, Kind.INTEGER)  # read through Conv groups with e >= 0, unscaled sources
GRADED_MAX_COARSENING = 4  # bits a graded output may drop below its population's scale
CONV_READER_ERROR = 1.0 / 128  # relative weight error a graded Conv reader may take (7-bit mantissa)


@dataclass(frozen=True)
class QuantizeOptions:
    """Policy choices of the quantization (hardware limits come from the profile).

    Attributes:
        profile: Loihi profile name or TOML path.
        scale_bits_max: the population scale exponent k (S = 2**k) unless a limit forces it
            lower: headroom for currents (|I|·S must stay below 2**17 for u).
        readout_scale_bits_max: the same for readouts, which sum T steps in v (|ΣI|·S < 2**17).
        input_scale: the host quantizes the input as ``rint(x · input_scale)`` (255: 8-bit pixels).
        bias_exp: fixed bias exponent for every population (netx hard-codes 6), or None to pick
            the finest that fits per population.
        allow_clip: clip values that do not fit (each clip is reported) instead of raising.
        fold_max_synapses: a synapse group whose folded form would be a matrix of more synapses
            than this is made weight-shared instead: the current it unrolls at is carried by a
            relay population and read through convolutions (``expand_fanin.choose_cuts``), and a
            graded source is read through a Conv instead of a Sparse.
        readout_split: a readout's Conv group of spikes with exponent e > 0 gets a second Conv
            group from the same source (``<group>@lo``) carrying the rounding remainder at a
            finer exponent (>= 0): two 8-bit mantissas, up to 8 + e bits in all. Readouts feed
            the boxes directly; with one 8-bit mantissa the shipped model loses 2.1 points of
            mAP@0.5:0.95 (docs/onnx.md), with the split none. Costs the head's synapses twice.
    """

    profile: str = "loihi_bitacc"
    scale_bits_max: int = 12
    readout_scale_bits_max: int = 10
    input_scale: float = 255.0
    bias_exp: int | None = None
    allow_clip: bool = False
    fold_max_synapses: int = FOLD_MAX_SYNAPSES
    readout_split: bool = True

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---- helpers --------------------------------------------------------------------------------


@dataclass
class _Ctx:
    profile: LoihiProfile
    options: QuantizeOptions
    clips: list[dict[str, Any]] = field(default_factory=list)

    def fit(self, node: str, fld: str, values: Array, lo: int, hi: int, fmt: str) -> Array:
        """Check integer ``values`` against [lo, hi]; clip (and record) or raise."""
        if values.size == 0:
            return values
        vmin, vmax = int(values.min()), int(values.max())
        if vmin >= lo and vmax <= hi:
            return values
        n = int(np.count_nonzero((values < lo) | (values > hi)))
        if not self.options.allow_clip:
            raise QuantizationError(
                f"{node}: {fld} needs [{vmin}, {vmax}] but {fmt} allows [{lo}, {hi}] ({n} values out of range); "
                "pass allow_clip (--allow-clip) to clip, or change the quantization options"
            )
        self.clips.append({"node": node, "field": fld, "count": n, "observed": [vmin, vmax], "allowed": [lo, hi]})
        return np.clip(values, lo, hi)

    def fail(self, node: str, fld: str, bound: int, limit: int) -> None:
        """A worst-case sum that Lava would wrap: raise, or record it under allow_clip (Lava and
        ref-fixed then wrap it the same way, bit-exact but not the float value)."""
        if not self.options.allow_clip:
            raise QuantizationError(
                f"{node}: {fld} can reach {bound} but Lava wraps at {limit} (signed 24 bits); "
                "pass allow_clip (--allow-clip) to accept a reported wrap, or lower scale_bits_max"
            )
        self.clips.append(
            {"node": node, "field": fld, "count": 1, "observed": [-bound, bound], "allowed": [-limit, limit]}
        )


def _rint(x: Array | float) -> Array:
    return np.rint(np.asarray(x, dtype=np.float64)).astype(np.int64)


def _weights(m: LinearMap) -> Array:
    return m.weight if isinstance(m, ConvMap) else to_sparse(m).matrix.data


def _mantissa_exp(w: Array, lo: int, hi: int, e_min: int, e_max: int) -> tuple[Array, int]:
    """Smallest exponent e in [e_min, e_max] with rint(w / 2**e) inside [lo, hi] (e_max if none)."""
    peak = float(np.abs(w).max()) if w.size else 0.0
    if peak == 0.0:
        return np.zeros(w.shape, np.int64), max(e_min, 0) if e_min <= 0 <= e_max else e_min
    e = max(e_min, math.floor(math.log2(peak / hi)) if peak > hi else e_min)
    e = max(e_min, min(e, e_max))
    while True:
        m = _rint(w / 2.0**e)
        if (m.min() >= lo and m.max() <= hi) or e >= e_max:
            return m, e
        e += 1


def _bits(m: Array) -> float:
    peak = int(np.abs(m).max()) if m.size else 0
    return round(math.log2(peak) + 1, 2) if peak else 0.0


def _source_info(
    graph: Graph, src: str, scales: dict[str, float], options: QuantizeOptions, bounds: dict[str, int]
) -> tuple[str, float, float]:
    """(kind, scale, bound on |value| in its units) of a term's source: 'input' (host),
    'spike' (0/1) or 'graded' (integers: a relay, max-pool or SiLU output)."""
    if src in graph and isinstance(graph[src].op, IntegerLIF):
        return "integer", 1.0, float(graph[src].op.levels)  # type: ignore[attr-defined]
    if src in bounds:
        return "graded", scales[src], float(bounds[src])
    op = graph[src].op
    if isinstance(op, Input):
        return "input", options.input_scale, math.ceil(options.input_scale)
    if src not in bounds and graph.kind(src) == Kind.SPIKE:
        return "spike", 1.0, 1.0
    return "graded", scales[src], float(bounds[src])  # the graded output's scale


def _form(graph: Graph, t: Term, cuts: dict[str, str], limit: int) -> tuple[str, str]:
    """(form, why) of the group for term ``t``: ``conv`` (weight-shared), ``sparse`` or ``host``."""
    src = graph[t.source].op
    m = t.map
    if isinstance(src, Input):
        return "host", "reads the input image"
    if t.source not in cuts and graph.kind(t.source) in _BINARY_OR_INTEGER:
        if isinstance(m, ConvMap):
            return "conv", f"a convolution of {graph.kind(t.source).value} spikes"
        return "sparse", f"folded map is not a convolution; {to_sparse(m).matrix.nnz} synapses <= {limit}"
    if isinstance(m, ConvMap):
        n = int(np.prod(m.out_shape[1:])) * int(np.count_nonzero(m.weight))  # the matrix's size, borders aside
        if n > limit:
            return "conv", f"graded Conv: as a matrix {n} synapses > {limit}"
        return "sparse", f"graded Sparse (finer exponent): {n} synapses <= {limit}"
    return "sparse", "index map (one-hot upsampling) or small folded matrix"


def _row_abs_max(m: LinearMap) -> float:
    """max over outputs of Σ|w| (float): the worst case gain of a map."""
    if isinstance(m, ConvMap):
        w = np.abs(m.weight)
        return float(w.reshape(w.shape[0], -1).sum(1).max()) if w.size else 0.0
    mat = to_sparse(m).matrix
    return float(np.asarray(abs(mat).sum(axis=1)).max()) if mat.nnz else 0.0


def _csr_row_max(data: Array, indptr: Array) -> int:
    """max over rows of Σ|data| of a CSR matrix (0 when empty)."""
    c = np.concatenate(([0], np.cumsum(np.abs(data.astype(np.int64)))))
    return int((c[indptr[1:]] - c[indptr[:-1]]).max()) if len(indptr) > 1 else 0


def _payload_bound(op: Any, src_bound: int) -> int:
    """A proven bound on |payload| of a quantized group whose source values satisfy |x| <= src_bound."""
    if isinstance(op, loihi.SynConv):
        w = np.abs(op.effective_weight())
        return int(w.reshape(w.shape[0], -1).sum(1).max()) * src_bound if w.size else 0
    if isinstance(op, loihi.SynSparse):
        acc = _csr_row_max(op.weight_s8, op.indptr)
        acc *= src_bound
        e = op.weight_exp_s4
        return acc << e if e >= 0 else (acc >> -e) + 1
    if isinstance(op, loihi.HostConv):
        w = np.abs(op.weight_s24.astype(np.int64))
        rows = int(w.reshape(w.shape[0], -1).sum(1).max()) if w.size else 0
    else:
        rows = _csr_row_max(op.weight_s24, op.indptr)
    return int((rows * math.ceil(op.in_scale)) >> op.shift_u5) + 1


def _rel_error(v: Array, e_min: int, ctx: _Ctx) -> float:
    """Relative error (to the largest weight) of ``v`` as 8-bit mantissas with exponent >= e_min."""
    peak = float(np.abs(v).max()) if v.size else 0.0
    if peak == 0.0:
        return 0.0
    lo, hi = ctx.profile.weight_range
    m, e = _mantissa_exp(v, lo, hi, e_min, ctx.profile.weight_exp_max)
    return float(np.abs(m * 2.0**e - v).max()) / peak


def _relay_bits(reader_ws: list[Array], in_ws: list[tuple[Array, bool]], k_hi: int, ctx: _Ctx) -> int:
    """A relay's scale 2**k (0 <= k <= k_hi): no right shift on either side, so a coarse relay
    costs its graded Conv readers nothing but rounds its own input weights, and a fine one the
    reverse. Picks the k with the smallest worse relative weight error of the two sides
    (the finest on ties); ``in_ws`` are (weights per source unit, read by a Conv)."""
    best, best_err = 0, math.inf
    for k in range(k_hi, -1, -1):
        err = max((_rel_error(w / 2.0**k, 0, ctx) for w in reader_ws), default=0.0)
        for w, conv in in_ws:
            err = max(err, _rel_error(w * 2.0**k, 0 if conv else ctx.profile.weight_exp_min, ctx))
        if err < best_err - 1e-12:
            best, best_err = k, err
    return best


def _conv_reader_bits(reader_ws: list[Array], k_hi: int, ctx: _Ctx) -> int:
    """The finest output scale 2**k (k <= k_hi, k >= 0) at which every graded Conv reader's
    weights (given per unit of the source at scale 1) keep a relative error <= CONV_READER_ERROR
    with an 8-bit mantissa and no right shift (Lava's Conv): coarser sources, finer weights."""
    lo, hi = ctx.profile.weight_range
    for k in range(k_hi, 0, -1):
        ok = True
        for w in reader_ws:
            v = w / 2.0**k
            m, e = _mantissa_exp(v, lo, hi, 0, ctx.profile.weight_exp_max)
            if float(np.abs(m * 2.0**e - v).max()) > CONV_READER_ERROR * float(np.abs(v).max()):
                ok = False
                break
        if ok:
            return k
    return 0


# ---- the pass ---------------------------------------------------------------------------------


def quantize(graph: Graph, options: QuantizeOptions | None = None) -> Graph:
    """Quantize ``graph`` for Loihi fixed point; see the module docstring."""
    options = options or QuantizeOptions()
    profile = load_profile(options.profile)
    ctx = _Ctx(profile, options)
    missing = [n.name for n in graph if "partition" not in n.meta]
    if missing:
        raise PassError(f"quantize needs a partitioned graph (run partition first); {missing[0]} has no partition")
    for name in graph.outputs:
        if not isinstance(graph[name].op, (LIF, IntegerLIF, Readout, *DECODES, SiLUNeuron, MaxPool2d)):
            raise PassError(
                f"output {name} ({graph[name].op.type_name}) is not a population; "
                "a fixed-point graph can output spikes, readouts or decoded boxes"
            )
    if "fanin" not in graph.attrs:
        graph = expand_fanin(graph, options.fold_max_synapses)
    elif graph.attrs["fanin"]["fold_max_synapses"] != options.fold_max_synapses:
        raise PassError(
            f"the graph's fan-in was expanded with fold_max_synapses={graph.attrs['fanin']['fold_max_synapses']} "
            f"but quantize was asked for {options.fold_max_synapses}; expand it with the same limit"
        )
    cuts = relays(graph)
    fans = fanins(graph)
    forms = {
        (reader, t.source): _form(graph, t, cuts, options.fold_max_synapses)
        for reader, fi in fans.items()
        for t in fi.terms
    }
    # the weights of each group reading a graded source, times the reader's nominal scale:
    # what its integer weights will be per unit of the source (to pick the output scale)
    readers: dict[str, list[tuple[str, Array]]] = {}
    for reader, fi in fans.items():
        bits = options.readout_scale_bits_max if isinstance(graph[reader].op, Readout) else options.scale_bits_max
        for t in fi.terms:
            if (t.source not in cuts and graph.kind(t.source) in _BINARY_OR_INTEGER) or isinstance(
                graph[t.source].op, Input
            ):
                continue
            w = _weights(t.map)
            if w.size and np.abs(w).max() > 0:
                readers.setdefault(t.source, []).append((forms[(reader, t.source)][0], w * 2.0**bits))
    # Lava's Conv on a custom process's graded output would need a right shift: such readers go
    # through a GradedVec relay fed 1:1 by a diagonal Sparse (whose exponent does the shift)
    custom_relays = {
        src
        for (reader, src), (form, _) in forms.items()
        if form == "conv"
        and src not in cuts
        and isinstance(graph[src].op, (MaxPool2d, SiLUNeuron))
        and graph.kind(src) != Kind.SPIKE
    }
    out = Graph({k: v for k, v in graph.attrs.items() if k != "fanin"})  # consumed here
    scales: dict[str, float] = {}
    bounds: dict[str, int] = {}
    report_pops: list[dict[str, Any]] = []
    for node in graph:
        op = node.op
        if isinstance(op, Input):
            out.add(node.name, op, (), {**node.meta})
        elif node.name in fans:
            why = cuts.get(node.name)
            fi = fans[node.name]
            # graded Conv readers of a custom population read it through a relay (below)
            fi = Fanin(
                [
                    Term(f"{t.source}@relay", t.map, t.path)
                    if t.source in custom_relays and forms[(node.name, t.source)][0] == "conv"
                    else t
                    for t in fi.terms
                ],
                fi.bias,
            )
            for t in fi.terms:
                if t.source.endswith("@relay") and t.source[: -len("@relay")] in custom_relays:
                    forms[(node.name, t.source)] = forms[(node.name, t.source[: -len("@relay")])]
            own_readers = readers.get(node.name, [])
            if node.name in custom_relays:  # its conv readers read the relay; the relay reads it 1:1
                own_readers = [r for r in own_readers if r[0] != "conv"]
                own_readers.append(("sparse", np.ones(1) * 2.0**options.scale_bits_max))
            rep = _population(graph, out, node.name, fi, scales, ctx, own_readers, forms, bounds, why)
            report_pops.append(rep)
            if node.name in custom_relays:
                conv_rs = [w for f, w in readers.get(node.name, []) if f == "conv"]
                report_pops.append(_custom_relay(graph, out, node.name, scales, bounds, ctx, conv_rs))
        elif isinstance(op, DECODES):
            out.add(node.name, op, node.inputs, {**node.meta})
        # linear ops live on in the synapse groups
    out.outputs = list(graph.outputs)
    out.attrs["quantized"] = True
    out.attrs["loihi"] = profile.as_dict()
    out.attrs["input_scale"] = float(options.input_scale)
    out.attrs["quantization"] = {
        "options": options.as_dict(),
        "profile": profile.name,
        "populations": report_pops,
        "relays": dict(cuts),
        "clips": ctx.clips,
    }
    return out.validate()


def _population(
    graph: Graph,
    out: Graph,
    name: str,
    fanin: Fanin,
    scales: dict[str, float],
    ctx: _Ctx,
    readers: list[tuple[str, Array]],
    forms: dict[tuple[str, str], tuple[str, str]],
    bounds: dict[str, int],
    relay_why: str | None = None,
) -> dict[str, Any]:
    node = graph[name]
    op = node.op
    p, opts = ctx.profile, ctx.options
    hi = p.weight_range[1]
    relay = relay_why is not None
    spike_pool = not relay and isinstance(op, MaxPool2d) and graph.kind(node.inputs[0]) == Kind.SPIKE
    terms = [(t, *_source_info(graph, t.source, scales, opts, bounds)) for t in fanin.terms]
    reader_weights = [float(np.abs(w).max()) for f, w in readers if f == "sparse"]
    conv_readers = [w for f, w in readers if f == "conv"]
    g_half = (1 << (p.graded_message_bits - 1)) - 1  # a graded payload and a Conv sum: signed 24 bits

    # -- the population scale S = 2**k: as large as the limits allow, up to scale_bits_max ------
    # (a larger S never costs weight precision, since each group has its own exponent, but
    # it sharpens threshold, bias and graded inputs; scale_bits_max keeps headroom for currents)
    if isinstance(op, Readout) and not relay:
        limits: dict[str, int] = {"readout_scale_bits_max": opts.readout_scale_bits_max}
    else:
        limits = {"scale_bits_max": opts.scale_bits_max}
    bias = fanin.bias
    bmax = float(np.abs(bias).max()) if bias is not None and bias.size else 0.0
    gain = bmax  # worst case |input current| (current units), for relays' 24-bit payload
    for t, kind, s_src, b_src in terms:
        w = _weights(t.map)
        r = float(np.abs(w).max()) / s_src if w.size else 0.0
        if kind != "input" and r > 0.0:
            limits[f"weight exponent ({t.source})"] = math.floor(math.log2((hi + 0.5) * 2.0**p.weight_exp_max / r))
        row = _row_abs_max(t.map) * b_src / s_src
        gain += row
        if kind in ("graded", "integer") and forms[(name, t.source)][0] == "conv" and row > 0:
            # Lava's Conv wraps its sum at 24 bits: bound it (src values x weights, in our units)
            limits[f"conv sum s24 ({t.source})"] = math.floor(math.log2(g_half / (row * (1 + 2.0**-7))))
    if relay:
        if gain > 0:
            limits["relay payload s24"] = math.floor(math.log2(g_half / (gain * (1 + 2.0**-7))))
        if conv_readers:
            ins = [
                (_weights(t.map) * (1.0 / s_src), forms[(name, t.source)][0] == "conv" or kind == "spike")
                for t, kind, s_src, _ in terms
                if kind != "input"
            ]
            kc = _relay_bits(conv_readers, ins, min(limits.values()), ctx)
            limits["balance: graded Conv readers vs relay inputs"] = kc
        if reader_weights:
            limits["graded Sparse readers (weight_exp_min)"] = math.floor(
                math.log2(min(reader_weights) / ((hi + 1) / 2 * 2.0**p.weight_exp_min))
            )
    if isinstance(op, IntegerLIF) and not relay:
        d, f = _ilif_shifts(name, op, graph.time_steps)
        # |U| <= gain · Σ_{t<T} β**t + 1/2 (a reset leaves at most half a unit below zero): V = U·S·2**f
        geo = sum(2.0 ** (-d * t) for t in range(graph.time_steps))
        limits["membrane s24 (U·S·2**f)"] = math.floor(math.log2((p.uv_half - 1) / (2.0**f * (gain * geo + 1.0))))
        if bmax > 0:
            limits["bias_s24"] = math.floor(math.log2(g_half / bmax))
    if isinstance(op, LIF) and op.v_th > 0:
        limits["vth_u17"] = math.floor(math.log2((p.vth_max + 0.5) / op.v_th))
    if bmax > 0 and isinstance(op, (LIF, Readout)):
        e_b = opts.bias_exp if opts.bias_exp is not None else p.bias_exp_max
        limits["bias_mant_s13"] = math.floor(
            math.log2((p.bias_mant_range[1] + 0.5) * 2.0**e_b / (bmax * (1 << p.act_shift)))
        )
    if bmax > 0 and isinstance(op, (SiLUNeuron, MaxPool2d)):
        limits["bias_s24"] = math.floor(math.log2(((1 << (p.graded_message_bits - 1)) - 1) / bmax))
    limited = min(limits, key=limits.__getitem__)
    k = int(limits[limited])
    if spike_pool:
        k, limited = 0, "spike max-pool (OR of 0/1 inputs)"
    if relay and k < 0:
        k = 0  # coarser than one unit per current unit: the 24-bit checks below report it
    if isinstance(op, IntegerLIF) and not relay and k < 0:  # even S = 1 cannot hold the membrane
        ctx.fail(name, "membrane_s24", int(gain * 2 ** _ilif_shifts(name, op, graph.time_steps)[1]), p.uv_half - 1)
        k = 0
    scale = 2.0**k
    scales[name] = scale
    k_out = k
    if isinstance(op, (SiLUNeuron, MaxPool2d)) and not spike_pool and not relay and (reader_weights or conv_readers):
        # Graded outputs are read through Sparse synapses whose exponent cannot go below
        # weight_exp_min: send them at a scale where the smallest reading weights still fill
        # most of the mantissa, w·S_reader/S_out >= 2**(weight_bits-2) · 2**weight_exp_min,
        # but never more than GRADED_MAX_COARSENING bits coarser than the population's input.
        # Graded Conv readers (no right shift) may need a coarser output still.
        if reader_weights:
            target = math.floor(math.log2(min(reader_weights) / ((hi + 1) / 2 * 2.0**p.weight_exp_min)))
            k_out = max(0, k - GRADED_MAX_COARSENING, min(k, target))
        if conv_readers:
            k_out = min(k_out, _conv_reader_bits(conv_readers, k_out, ctx))
        scales[name] = 2.0**k_out

    # -- synapse groups -----------------------------------------------------------------------------
    inputs: list[str] = []
    term_reports = []
    a_bound = 0
    for t, kind, s_src, b_src in terms:
        tname = f"{name}<-{t.source}"
        form, why = forms[(name, t.source)]
        trep, top = _term(tname, t, kind, s_src, scale, ctx, form == "conv")
        trep["why"] = why
        tmeta = {
            "partition": "host" if kind == "input" else "chip",
            "source": t.source,
            "ir_path": list(t.path),
            "population": name,
            "form_why": why,
        }
        pb = _payload_bound(top, 1 if kind == "spike" else int(b_src))
        if kind in ("graded", "integer") and isinstance(top, loihi.SynConv) and pb > g_half:
            ctx.fail(tname, "conv_sum_s24", pb, g_half)
        a_bound += pb
        out.add(tname, top, [t.source], tmeta)
        inputs.append(tname)
        term_reports.append(trep)
        if opts.readout_split and isinstance(op, Readout) and not relay and kind == "spike":
            low = _remainder_group(t, top, scale / s_src, ctx)
            if low is not None:
                lname = f"{tname}@lo"
                a_bound += _payload_bound(low, 1)
                out.add(lname, low, [t.source], {**tmeta, "split_of": tname})
                inputs.append(lname)
                assert isinstance(t.map, ConvMap)  # _remainder_group splits Conv groups only
                w = t.map.weight.astype(np.float64) * (scale / s_src)
                err = np.abs(top.effective_weight() + low.effective_weight() - w)
                term_reports.append(
                    {"name": lname, "source": t.source, "source_kind": kind, "form": "conv", "why":
                     f"readout split: the rounding remainder of {tname} at a finer exponent", "split_of": tname,
                     "weight_exp_s4": low.weight_exp_s4, "weights": int(np.count_nonzero(low.weight_s8)),
                     "weights_zeroed": 0, "mantissa_range": [int(low.weight_s8.min()), int(low.weight_s8.max())],
                     "effective_bits": _bits(low.weight_s8), "weight_error_max": float(err.max() / scale),
                     "ir_path": list(t.path)}
                )  # fmt: skip

    # -- the population itself ------------------------------------------------------------------------
    shape = fanin_shape(graph, name)
    b = np.zeros(shape) if bias is None else bias
    meta: dict[str, Any] = {"partition": node.meta.get("partition", "chip"), "ir_op": op.type_name}
    rep: dict[str, Any] = {
        "name": name,
        "op": "",
        "placement": meta["partition"],
        "scale": scale,
        "scale_bits": k,
        "limited_by": limited,
    }
    qop: Any  # the population's Loihi op
    if relay:
        bq = ctx.fit(name, "bias_s24", _rint(b * scale), -g_half - 1, g_half, "s24")
        bound = a_bound + (int(np.abs(bq).max()) if bq.size else 0)
        if bound > g_half:
            ctx.fail(name, "relay_payload_s24", bound, g_half)
        bounds[name] = bound
        qop = loihi.GradedRelay(bq, scale, 0, bound)
        meta.update({"ir_op": f"relay({op.type_name})", "partition": "chip"})
        rep["placement"] = "chip"
        rep.update({"bias_range": [int(bq.min()), int(bq.max())], "scale_out": scale, "bound": bound, "why": relay_why})
    elif isinstance(op, IntegerLIF):
        d, f = _ilif_shifts(name, op, graph.time_steps)
        bq = ctx.fit(name, "bias_s24", _rint(b * scale), -g_half - 1, g_half, "s24")
        qop = loihi.LoihiIntegerLIF(bq, op.levels, d, f, scale, 0, op.decay)
        bounds[name] = op.levels
        rep.update(
            {
                "levels": op.levels,
                "decay_shift": d,
                "frac_bits": f,
                "bias_range": [int(bq.min()), int(bq.max())] if bq.size else [0, 0],
                "bias_error_max": float(np.abs(bq / scale - b).max()) if b.size else 0.0,
            }
        )
    elif isinstance(op, (LIF, Readout)) or spike_pool:
        if spike_pool:
            du, dv, vth = p.du_max, p.dv_max, 0  # v = a<<6 each step (it never holds a charge): fires iff a > 0
            tau, v_th = 0.0, 0.0
        elif isinstance(op, LIF):
            du = p.du_max  # EMS-YOLO LIF: no synaptic memory, u is this step's input
            dv = int(ctx.fit(name, "dv_u12", _rint(p.decay_unity * (1.0 - op.tau)).reshape(1), 0, p.dv_max, "u12")[0])
            vth = int(ctx.fit(name, "vth_u17", _rint(op.v_th * scale).reshape(1), 0, p.vth_max, "u17")[0])
            tau, v_th = op.tau, op.v_th
        else:
            du, dv, vth = p.du_max, 0, p.vth_max
        eff = b * scale * (1 << p.act_shift)  # v units
        emax = float(np.abs(eff).max()) if eff.size else 0.0
        blo, bhi = p.bias_mant_range
        if opts.bias_exp is not None:
            e_b = int(opts.bias_exp)
        else:
            # with integer spikes a readout may run spike-driven (D sub-steps per step): its
            # bias then enters a_in once per step, so it must be a whole number of a_in units
            e_b = p.act_shift if isinstance(op, Readout) and _has_integer_spikes(graph) else 0
            while e_b < p.bias_exp_max and emax / 2.0**e_b > bhi + 0.5:
                e_b += 1
        mant = ctx.fit(name, "bias_mant_s13", _rint(eff / 2.0**e_b), blo, bhi, "s13")
        rep.update(
            {
                "vth_u17": vth,
                "dv_u12": dv,
                "du_u12": du,
                "bias_exp_u3": e_b,
                "bias_mant_range": [int(mant.min()), int(mant.max())],
                "bias_error_max": float(np.abs(mant * 2.0**e_b - eff).max() / (scale * (1 << p.act_shift)))
                if eff.size
                else 0.0,
                "threshold_error": float(abs(vth / scale - v_th)) if isinstance(op, LIF) else 0.0,
            }
        )
        if isinstance(op, Readout):
            qop = loihi.LoihiReadout(du, dv, vth, mant, e_b, scale)
        else:
            qop = loihi.LoihiLIF(du, dv, vth, mant, e_b, scale, 0, tau, v_th)
        if spike_pool:
            meta["ir_op"] = "MaxPool2d(spike)"
    else:
        bq = ctx.fit(
            name,
            "bias_s24",
            _rint(b * scale),
            -(1 << (p.graded_message_bits - 1)),
            (1 << (p.graded_message_bits - 1)) - 1,
            "s24",
        )
        rep["bias_range"] = [int(bq.min()), int(bq.max())]
        rep["scale_out"] = 2.0**k_out
        pre = a_bound + (int(np.abs(bq).max()) if bq.size else 0)
        if isinstance(op, MaxPool2d):
            qop = loihi.FixedMaxPool(bq, op.kernel, scale, k - k_out, 0, op.stride, op.padding)
            bounds[name] = (pre >> (k - k_out)) + 1
        elif isinstance(op, SiLUNeuron):
            qop = loihi.FixedSiLU(bq, op.tau, op.inplace, scale, 2.0**k_out)
            # |silu output| <= |input| + 0.5 whatever the recurrence (docs/lava.md §1)
            bounds[name] = math.ceil((pre / scale + 0.5) * 2.0**k_out) + 1
        else:
            raise PassError(
                f"{name} ({op.type_name}): not a population; populations: LIF, SiLUNeuron, MaxPool2d, Readout"
            )
    if name in bounds:
        meta["out_bound"] = int(bounds[name])  # |graded output| <= this (the DRC's 24-bit Conv check)
    rep["op"] = qop.type_name
    rep["neurons"] = int(np.prod(shape))
    rep["terms"] = term_reports
    out.add(name, qop, inputs, meta)
    return rep


def _custom_relay(
    graph: Graph,
    out: Graph,
    src: str,
    scales: dict[str, float],
    bounds: dict[str, int],
    ctx: _Ctx,
    conv_readers: list[Array],
) -> dict[str, Any]:
    """``<src>@relay``: a GradedVec carrying a custom population's graded output to its graded
    Conv readers, fed by a diagonal Sparse from ``src`` (its exponent rescales, as Conv cannot)."""
    p, opts = ctx.profile, ctx.options
    g_half = (1 << (p.graded_message_bits - 1)) - 1
    name = f"{src}@relay"
    shape = tuple(graph.shape(src))
    s_src, b_src = scales[src], float(bounds[src])
    limits = {"scale_bits_max": opts.scale_bits_max}
    if b_src > 0:
        limits["relay payload s24"] = math.floor(math.log2(g_half * s_src / (b_src * (1 + 2.0**-7))))
    k_hi = min(limits.values())
    limits["balance: graded Conv readers vs relay inputs"] = _relay_bits(
        conv_readers, [(np.ones(1) / s_src, False)], k_hi, ctx
    )
    limited = min(limits, key=limits.__getitem__)
    k = max(0, int(limits[limited]))
    scale = 2.0**k
    t = Term(src, identity(shape), ())
    tname = f"{name}<-{src}"
    rep_t, top = _term(tname, t, "graded", s_src, scale, ctx)
    rep_t["why"] = "diagonal Sparse: rescales the custom output for its Conv readers"
    out.add(
        tname,
        top,
        [src],
        {"partition": "chip", "source": src, "ir_path": [], "population": name, "form_why": rep_t["why"]},
    )
    bound = _payload_bound(top, int(bounds[src]))
    if bound > g_half:
        ctx.fail(name, "relay_payload_s24", bound, g_half)
    bounds[name], scales[name] = bound, scale
    why = f"carries {src}'s graded output to its graded Conv readers"
    out.add(
        name,
        loihi.GradedRelay(np.zeros(shape, np.int32), scale, 0, bound),
        [tname],
        {"partition": "chip", "ir_op": f"relay({graph[src].op.type_name})", "out_bound": bound},
    )
    return {
        "name": name,
        "op": "GradedRelay",
        "placement": "chip",
        "scale": scale,
        "scale_bits": k,
        "limited_by": limited,
        "bias_range": [0, 0],
        "scale_out": scale,
        "bound": bound,
        "why": why,
        "neurons": int(np.prod(shape)),
        "terms": [rep_t],
    }


def _ilif_shifts(name: str, op: IntegerLIF, time_steps: int) -> tuple[int, int]:
    """(d, f) of an I-LIF: its decay as a right shift by d, and the f = d·(T − 1) fraction bits
    that keep every shift of a T-step inference exact (docs/spikeyolo.md, Fixed point)."""
    if op.decay == 1.0:
        return 0, 0
    d = -math.log2(op.decay) if op.decay > 0 else math.inf
    if d != int(d) or not 1 <= d <= 15:
        raise QuantizationError(
            f"{name}: IntegerLIF decay {op.decay} is no power of two 2**-d (d in 1..15); the fixed-point "
            "I-LIF applies its decay as an exact right shift"
        )
    f = int(d) * (time_steps - 1)
    if f > 31:
        raise QuantizationError(
            f"{name}: an exact I-LIF over T = {time_steps} steps needs {f} fraction bits; at most 31"
        )
    return int(d), f


def _has_integer_spikes(graph: Graph) -> bool:
    return any(isinstance(n.op, IntegerLIF) for n in graph)


def fanin_shape(graph: Graph, name: str) -> tuple[int, ...]:
    """The shape of a population's a_in (a max-pool sums at its input resolution)."""
    node = graph[name]
    if isinstance(node.op, MaxPool2d) and graph.kind(node.inputs[0]) != Kind.SPIKE:
        return tuple(graph.shape(node.inputs[0]))
    if not isinstance(node.op, (LIF, IntegerLIF, Readout, MaxPool2d, SiLUNeuron)):  # a relay carries the node's value
        return tuple(graph.shape(name))
    if isinstance(node.op, Readout):
        return tuple(graph.shape(node.inputs[0]))
    return tuple(graph.shape(name))


def _remainder_group(t: Term, top: Any, gain: float, ctx: _Ctx) -> loihi.SynConv | None:
    """The second Conv group of a split readout group: w − m·2^e (w in the population's units)
    as 8-bit mantissas at the finest exponent in [0, e − 1] that holds it; None when the group
    has no finer exponent (e = 0), is not a Conv, or leaves no remainder."""
    if not isinstance(top, loihi.SynConv) or top.weight_exp_s4 <= 0 or not isinstance(t.map, ConvMap):
        return None
    lo, hi = ctx.profile.weight_range
    rest = t.map.weight.astype(np.float64) * gain - top.effective_weight().astype(np.float64)
    m, e = _mantissa_exp(rest, lo, hi, 0, top.weight_exp_s4 - 1)
    if not np.any(m) or m.min() < lo or m.max() > hi:
        return None
    return loihi.SynConv(m.reshape(top.weight_s8.shape), e, top.stride, top.padding, top.dilation, top.groups)


def _term(
    tname: str, t: Term, kind: str, s_src: float, scale: float, ctx: _Ctx, graded_conv: bool = False
) -> tuple[dict[str, Any], Any]:
    p = ctx.profile
    lo, hi = p.weight_range
    m = t.map
    rep: dict[str, Any] = {"name": tname, "source": t.source, "source_kind": kind}
    # graded chip groups are Sparse (its right shift) unless weight-sharing is needed (a Conv)
    cm = m if isinstance(m, ConvMap) and (kind in ("spike", "integer", "input") or graded_conv) else None
    conv = cm is not None
    sm: Any = None if conv else to_sparse(m).matrix  # scipy CSR
    w_all = (cm.weight if cm is not None else sm.data).astype(np.float64) * (scale / s_src)
    if kind == "input":
        hlo, hhi = p.host_weight_range
        peak = float(np.abs(w_all).max()) if w_all.size else 0.0
        shift = p.host_max_shift if peak == 0 else max(0, min(p.host_max_shift, math.floor(math.log2(hhi / peak))))
        mant = ctx.fit(tname, "weight_s24", _rint(w_all * 2.0**shift), hlo, hhi, "s24")
        err = np.abs(mant / 2.0**shift - w_all)
        rep.update({"form": "host", "shift_u5": shift})
        if cm is not None:
            top: Any = loihi.HostConv(
                mant.reshape(cm.weight.shape),
                shift,
                ctx.options.input_scale,
                cm.stride,
                cm.padding,
                cm.dilation,
                cm.groups,
            )
        else:
            top = loihi.HostSparse(mant, sm.indices, sm.indptr, m.in_shape, m.out_shape, shift, ctx.options.input_scale)
    else:
        e_min = 0 if conv else p.weight_exp_min
        mant, e = _mantissa_exp(w_all, lo, hi, e_min, p.weight_exp_max)
        mant = ctx.fit(
            tname, "weight_s8", mant, lo, hi, f"s{p.weight_bits} mantissa with weight_exp <= {p.weight_exp_max}"
        )
        err = np.abs(mant * 2.0**e - w_all)
        rep.update({"form": "conv" if conv else "sparse", "weight_exp_s4": e})
        if cm is not None:
            top = loihi.SynConv(mant.reshape(cm.weight.shape), e, cm.stride, cm.padding, cm.dilation, cm.groups)
        else:
            top = loihi.SynSparse(mant, sm.indices, sm.indptr, m.in_shape, m.out_shape, e)
    nz = w_all != 0
    rep.update(
        {
            "weights": int(np.count_nonzero(mant)),
            "weights_zeroed": int(np.count_nonzero(nz & (mant == 0))),
            "mantissa_range": [int(mant.min()), int(mant.max())] if mant.size else [0, 0],
            "effective_bits": _bits(mant),
            "weight_error_max": float(err.max() / scale) if err.size else 0.0,  # in current units per unit input
            "ir_path": list(t.path),
        }
    )
    return rep, top


def format_quant_report(graph: Graph) -> str:
    """The per-population quantization report of a quantized graph as a text table."""
    q = graph.attrs.get("quantization")
    if not q:
        return "(not a quantized graph)"
    lines = [
        f"Quantization ({q['profile']}; options {q['options']})",
        f"{'population':<34} {'op':<12} {'place':<6} {'S':>6} {'limited by':<28} {'vth':>6} {'dv':>5} {'b_exp':>5} groups (form:exp:bits)",
    ]
    for r in q["populations"]:
        groups = ", ".join(
            f"{t['source'].split('.')[-2] if '.' in t['source'] else t['source']}:{t['form']}:"
            f"{t.get('weight_exp_s4', t.get('shift_u5'))}:{t['effective_bits']}"
            for t in r["terms"]
        )
        lines.append(
            f"{r['name']:<34} {r['op']:<12} {r['placement']:<6} {r['scale']:>6g} {r['limited_by'][:28]:<28} "
            f"{r.get('vth_u17', ''):>6} {r.get('dv_u12', ''):>5} {r.get('bias_exp_u3', ''):>5} {groups}"
        )
    clips = q["clips"]
    lines.append(f"clips: {len(clips)}" + "".join(f"\n  {c}" for c in clips))
    return "\n".join(lines)
