"""Will it fit? A Loihi resource map of the quantized Lava graph: cores, chips, board, binding limit.

Pure functions of the graph :func:`~.api.lower` returns, a :class:`Chip` (limits as data, with
sources: ``emsdeploy/profiles/chips/*.toml``) and, optionally, the spike counts of one inference
per population (the CLI measures them in ref-fixed; exporters never run simulators, DESIGN §1).

**Cores.** Every chip population (LIF, readout, relay, and the custom max-pool/SiLU ones) is split
into cores of ``n`` neurons, consecutive in Lava's (W, H, C) order: ``n < C`` neurons are a channel
slice of one position, otherwise ``n`` is a whole number ``p`` of positions (all channels), a strip
down the columns (``min(p, H)`` rows by ``ceil(p / H)`` columns). A core of ``n`` neurons needs,
summed over the synapse groups into it (host terms inject into ``a_in`` and cost no core):

* ``neurons``: n;
* ``input_axons``: the distinct source neurons its neurons read. Conv: source channels read times
  the input rows and columns the tile's receptive field covers (interior tile, no border
  clipping). Sparse: the distinct columns of its rows (exact, per core; the largest core counts);
* ``output_axons``: n times, over the groups reading the population, the destination cores one
  spike reaches (a spike is one message per destination core): ``min(cores of the reader,
  ceil(fan-out / reader's n) + 1)``, 1 when the reader has one core. Found by iterating the
  split of every population until no count changes;
* ``synapse_memory``: bits. A weight-shared conv (``shares_conv_weights``, undelayed ``SynConv``)
  stores its kernel once: ``c_out × C_in/groups × kH × kW × w`` bits for the ``c_out`` output
  channels it holds, in whole words. Anything else stores one entry list per input axon,
  ``synapses_per_entry`` weights per entry of ``count × (w + index_bits) + entry_overhead_bits``
  bits rounded up to words (nengo-loihi ``SynapseFmt.bits_per_axon``). ``w`` is the smallest
  width the chip offers that holds the group's largest |mantissa| (plus a sign bit when its
  weights have both signs).

The largest ``n`` meeting all four is found by bisection (every need grows with ``n``);
``cores = ceil(N / n)``. The **binding** limit is the one that alone would need the most cores
(ties go to ``neurons``). A layer that cannot fit even one neuron per core (one neuron's fan-in
past the input axons, one output channel's kernel past the memory) is a DRC error naming the
layer, the limit and both numbers.

**Chips.** Cores are placed in graph order, a new chip when the next core would exceed the chip's
cores, neurons or stored synapses. The board is the smallest listed that holds that many chips.

**Traffic** (with counts): each spike (a nonzero output: binary or graded) of a source is one
message to each destination core it reaches, per reading group (see ``output_axons``); populations
never share cores, so every message crosses cores. A message crosses chips when its destination
core is on another chip than its source core; with per-core spikes unknown, the source's spikes
are spread over its cores evenly. Synaptic ops are exact: each spike at (c, y, x) reaches the
kernel taps that land on it (the fan-out maps of ``simulators/sops.py``), each nonzero of a sparse
column its entries.

**Integer spikes** (SpikeYOLO's I-LIF, values 0..D): the map is the same in both spike modes; the
traffic is not. Graded, a neuron sending s > 0 is one message (and one synaptic op per weight it
reaches); spike-driven, it is s binary spikes over D sub-steps (s messages, s ops per weight), and
every step of the run is D time steps. ``FitReport.modes`` holds both modes' totals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from emsdeploy.errors import DRCError, EmsdeployError
from emsdeploy.ir import Graph
from emsdeploy.ir.ops.loihi import (
    FixedMaxPool,
    FixedSiLU,
    GradedRelay,
    LoihiIntegerLIF,
    LoihiLIF,
    LoihiReadout,
    SynConv,
    SynSparse,
)
from emsdeploy.profiles import KINDS, ProfileError, read_profile

from .dag import SPIKE_MODES, integer_levels, lava_steps

__all__ = [
    "CHIP_DIR",
    "LIMITS",
    "Chip",
    "ProfileError",
    "FitReport",
    "LayerFit",
    "PopulationCounts",
    "fit",
    "fit_json",
    "format_fit",
    "load_chip",
]

CHIP_DIR = KINDS["chip"].folder
LIMITS = ("neurons", "input_axons", "output_axons", "synapse_memory")
_POPS = (LoihiLIF, LoihiReadout, GradedRelay, FixedMaxPool, FixedSiLU, LoihiIntegerLIF)

# chip-file keys: section -> {key: type}
_SCHEMA: dict[str, dict[str, type]] = {
    "core": {
        "neurons": int,
        "input_axons": int,
        "output_axons": int,
        "synapse_memory_bits": int,
        "weight_bits": list,
        "index_bits": int,
        "synapses_per_entry": int,
        "entry_overhead_bits": int,
        "word_bits": int,
        "shares_conv_weights": bool,
        "programmable_neurons": bool,
    },
    "chip": {"cores": int, "neurons": int, "synapses": int},
    "timing": {"synop_ns": float, "neuron_update_ns": float},
    "energy": {"hop_pj": float},
}
_STATUS = ("published", "from code", "assumed")
_MAX_INT = 1 << 40  # no chip limit comes near; bounds what a user file can make us compute with


@dataclass(frozen=True)
class Chip:
    """One chip kind's limits (``values[section.key]``), each with its status and source."""

    name: str
    description: str
    values: dict[str, Any]
    sources: dict[str, tuple[str, str]]  # "core.neurons" -> (status, source)
    boards: tuple[tuple[str, int], ...]
    path: Path | None = None

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    @property
    def limits(self) -> dict[str, int]:
        return {
            "neurons": self["core.neurons"],
            "input_axons": self["core.input_axons"],
            "output_axons": self["core.output_axons"],
            "synapse_memory": self["core.synapse_memory_bits"],
        }


def load_chip(name_or_path: str | Path) -> Chip:
    """A shipped chip (``loihi1``, ``loihi2``) or a user's TOML file; every problem is one
    :class:`ProfileError` line naming the file and the field."""
    path, data = read_profile("chip", name_or_path, allowed={"name", "description", "boards", *_SCHEMA})
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ProfileError(f'{path}: needs a name = "..." entry')
    values: dict[str, Any] = {}
    sources: dict[str, tuple[str, str]] = {}
    for section, keys in _SCHEMA.items():
        table = data.get(section)
        if not isinstance(table, dict):
            raise ProfileError(f"{path}: needs a [{section}.<key>] table for each of {', '.join(keys)}")
        extra = sorted(set(table) - set(keys))
        if extra:
            raise ProfileError(f"{path}: [{section}.{extra[0]}] is not a chip field; fields: {', '.join(keys)}")
        for key, kind in keys.items():
            where = f"{path}: [{section}.{key}]"
            entry = table.get(key)
            if not isinstance(entry, dict) or "value" not in entry:
                raise ProfileError(f"{where}: missing; give value, status ({' | '.join(_STATUS)}) and source")
            bad = sorted(set(entry) - {"value", "status", "source"})
            if bad:
                raise ProfileError(f"{where}: unknown key {bad[0]!r}; allowed: value, status, source")
            status, source = entry.get("status"), entry.get("source")
            if status not in _STATUS:
                raise ProfileError(f"{where}: status must be one of {', '.join(_STATUS)}, got {status!r}")
            if not isinstance(source, str) or not source.strip():
                raise ProfileError(f"{where}: needs a source (where the value comes from)")
            values[f"{section}.{key}"] = _check_value(entry["value"], kind, where)
            sources[f"{section}.{key}"] = (status, source)
    boards = data.get("boards", [])
    if not isinstance(boards, list) or len(boards) > 64:
        raise ProfileError(f"{path}: [[boards]] must be a list of at most 64 tables")
    out_boards = []
    for i, b in enumerate(boards):
        where = f"{path}: [[boards]] #{i + 1}"
        if (
            not isinstance(b, dict)
            or not isinstance(b.get("name"), str)
            or b.get("status") not in _STATUS
            or not isinstance(b.get("source"), str)
        ):
            raise ProfileError(f"{where}: needs name, chips, status ({' | '.join(_STATUS)}) and source")
        out_boards.append((b["name"], _check_value(b.get("chips"), int, f"{where} chips")))
    return Chip(
        name, str(data.get("description", "")), values, sources, tuple(sorted(out_boards, key=lambda b: b[1])), path
    )


def _check_value(value: Any, kind: type, where: str) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise ProfileError(f"{where}: must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_INT:
            raise ProfileError(f"{where}: must be an integer in 1..{_MAX_INT}, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e6 or value != value:
            raise ProfileError(f"{where}: must be a number in [0, 1e6), got {value!r}")
        return float(value)
    # list of weight widths
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= 32
        or any(isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 32 for v in value)
    ):
        raise ProfileError(f"{where}: must be a list of 1 to 32 integer bit widths in 1..32, got {value!r}")
    return sorted(set(value))


# --- counts ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PopulationCounts:
    """One inference of one population: nonzero outputs per valid step ``(T,)`` and per neuron
    summed over the steps ``(C, H, W)`` (binary spikes or graded messages); for integer spikes
    also the sums of the values (the unit spikes a spike-driven export sends), else None."""

    per_step: np.ndarray
    per_neuron: np.ndarray
    per_step_units: np.ndarray | None = None
    per_neuron_units: np.ndarray | None = None

    def sent(self, unit_spikes: bool) -> tuple[np.ndarray, np.ndarray]:
        """(per step, per neuron): messages, or unit spikes where asked for and counted."""
        if unit_spikes and self.per_step_units is not None and self.per_neuron_units is not None:
            return self.per_step_units, self.per_neuron_units
        return self.per_step, self.per_neuron


# --- geometry of one synapse group -------------------------------------------------------------
def _axis_fanout(n_in: int, n_out: int, k: int, s: int, p: int, d: int) -> np.ndarray:
    """Per input index, the (output, tap) pairs that read it (taps in the padding read nothing)."""
    idx = (np.arange(n_out)[:, None] * s - p + np.arange(k)[None, :] * d).ravel()
    idx = idx[(idx >= 0) & (idx < n_in)]
    return np.bincount(idx, minlength=n_in).astype(np.int64)


def _span(count: int, k: int, s: int, d: int, n_in: int) -> int:
    """Distinct input indices read by ``count`` consecutive outputs (interior, no clipping)."""
    if count <= 0:
        return 0
    idx = (np.arange(count)[:, None] * s + np.arange(k)[None, :] * d).ravel()
    return min(n_in, int(np.unique(idx).size))


def _width(chip: Chip, m: np.ndarray) -> int:
    """Smallest weight width of the chip holding the mantissas (a sign bit if both signs occur)."""
    if m.size == 0:
        return chip["core.weight_bits"][0]
    need = max(1, int(np.abs(m).max()).bit_length()) + int(bool((m < 0).any() and (m > 0).any()))
    for w in chip["core.weight_bits"]:
        if w >= need:
            return w
    return chip["core.weight_bits"][-1]  # the quantizer's 8-bit mantissas always fit a Loihi width


def _entry_bits(counts: np.ndarray, bits_per_syn: int, chip: Chip) -> np.ndarray:
    """Memory of one input axon's entry list per count of synapses (nengo-loihi bits_per_axon)."""
    per, over, word = chip["core.synapses_per_entry"], chip["core.entry_overhead_bits"], chip["core.word_bits"]
    full, rest = np.divmod(counts.astype(np.int64), per)
    one = -(-(per * bits_per_syn + over) // word) * word
    last = np.where(rest > 0, -(-(rest * bits_per_syn + over) // word) * word, 0)
    return full * one + last


@dataclass
class _Group:
    """One chip synapse group into a population, and what a core of it needs."""

    name: str
    source: str
    op: Any
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    fan_in: int
    synapses: int
    width: int
    shared: bool
    _cache: dict[tuple[int, int], tuple[int, int, int]] = field(default_factory=dict)

    def needs(self, c_t: int, p: int, chip: Chip) -> tuple[int, int, int]:
        """(input axons, synapse-memory bits, stored synapses) of a core holding ``c_t`` channels
        at ``p`` positions."""
        key = (c_t, p)
        if key not in self._cache:
            self._cache[key] = self._conv(c_t, p, chip) if isinstance(self.op, SynConv) else self._sparse(c_t, p, chip)
        return self._cache[key]

    def _conv(self, c_t: int, p: int, chip: Chip) -> tuple[int, int, int]:
        c, h, _ = self.out_shape
        cs, hs, ws = self.in_shape
        w = self.op.weight_s8
        groups = self.op.groups
        kh, kw = int(w.shape[2]), int(w.shape[3])
        (sh, sw), (dh, dw) = self.op.stride, self.op.dilation
        ch_in = cs if groups == 1 else min(cs, (cs // groups) * math.ceil(c_t * groups / c))
        axons = ch_in * _span(min(p, h), kh, sh, dh, hs) * _span(math.ceil(p / h), kw, sw, dw, ws)
        word = chip["core.word_bits"]
        if self.shared:  # one kernel table for the core's output channels, read through the axon index
            stored = c_t * (cs // groups) * kh * kw
            return axons, -(-(stored * self.width) // word) * word, stored
        syn = c_t * p * self.fan_in
        per_axon = np.array([math.ceil(syn / max(axons, 1))])
        return axons, int(_entry_bits(per_axon, self.width + chip["core.index_bits"], chip)[0]) * axons, syn

    def _sparse(self, c_t: int, p: int, chip: Chip) -> tuple[int, int, int]:
        """Exact for the middle core (positions from about H·W/2, channels from 0): a
        representative interior core, read through the row index (no pass over every entry)."""
        _, h, w = self.out_shape
        p0 = (h * w // 2 // p) * p
        q = np.arange(p0, min(p0 + p, h * w), dtype=np.int64)  # positions x·H + y
        rows = (np.arange(c_t, dtype=np.int64)[:, None] * (h * w) + ((q % h) * w + q // h)[None, :]).ravel()
        starts = self.op.indptr[rows]
        n = self.op.indptr[rows + 1] - starts
        if n.sum() == 0:
            return 0, 0, 0
        idx = np.repeat(starts - np.concatenate(([0], np.cumsum(n)[:-1])), n) + np.arange(int(n.sum()))
        _, counts = np.unique(self.op.indices[idx], return_counts=True)
        bits = int(_entry_bits(counts, self.width + chip["core.index_bits"], chip).sum())
        return int(counts.size), bits, int(counts.sum())

    def reach(self, c_t: int, p: int, cores: int) -> int:
        """Destination cores one source spike reaches when the reader is tiled (c_t, p): the
        channel slices its kernel writes to, times the expected tiles a window of w positions
        overlaps, 1 + (w − 1)/p; exact (1) when the reader has one core."""
        if cores <= 1:
            return 1
        c = self.out_shape[0]
        if isinstance(self.op, SynConv):
            w = self.op.weight_s8
            per_channel = c if self.op.groups == 1 else c // self.op.groups
            slices = min(math.ceil(c / c_t), math.ceil(per_channel / c_t))
            window = math.ceil(w.shape[2] / self.op.stride[0]) * math.ceil(w.shape[3] / self.op.stride[1])
            return min(cores, math.ceil(slices * (1 + (window - 1) / p)))
        fan = self.synapses / max(1, int(np.prod(self.in_shape)))
        return min(cores, max(1, math.ceil(fan / (c_t * p) + (fan - 1) / (c_t * p))))


def _conv_synapses(op: SynConv, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
    w = op.weight_s8
    (sh, sw), (ph, pw), (dh, dw) = op.stride, op.padding, op.dilation
    fy = _axis_fanout(in_shape[1], out_shape[1], int(w.shape[2]), sh, ph, dh).sum()
    fx = _axis_fanout(in_shape[2], out_shape[2], int(w.shape[3]), sw, pw, dw).sum()
    return int(out_shape[0] * w.shape[1] * fy * fx)


def _chw(shape: Any) -> tuple[int, int, int]:
    c, h, w = (int(v) for v in shape)
    return c, h, w


def _groups(graph: Graph, pop: str, chip: Chip) -> list[_Group]:
    out = []
    node = graph[pop]
    for i in node.inputs:
        op = graph[i].op
        if not isinstance(op, (SynConv, SynSparse)):
            continue  # host terms inject into a_in: no core resources
        src = graph[i].inputs[0]
        in_shape, out_shape = _chw(graph.shape(src)), _chw(graph.shape(i))
        if isinstance(op, SynConv):
            w = op.weight_s8
            fan_in = int(w.shape[1] * w.shape[2] * w.shape[3])
            syn = _conv_synapses(op, in_shape, out_shape)
            shared = bool(chip["core.shares_conv_weights"]) and op.delay_u6 == 0
            out.append(_Group(i, src, op, in_shape, out_shape, fan_in, syn, _width(chip, w), shared))
        else:
            fan_in = int(np.diff(op.indptr).max()) if op.indptr.size > 1 else 0
            g = _Group(
                i, src, op, in_shape, out_shape, fan_in, int(op.weight_s8.size), _width(chip, op.weight_s8), False
            )
            out.append(g)
    return out


# --- the map -----------------------------------------------------------------------------------
@dataclass
class LayerFit:
    """One population as mapped: its sizes, cores, what binds, and (with counts) its traffic."""

    name: str
    kind: str
    shape: tuple[int, int, int]
    neurons: int
    fan_in: int
    synapses: int
    weight_bytes: int
    cores: int
    tile: tuple[int, int]  # (channels, positions) per core
    binding: str
    needs: dict[str, int] = field(default_factory=dict)  # per core, at the tile

    @property
    def neurons_per_core(self) -> int:
        return self.tile[0] * self.tile[1]

    error: str = ""
    chips: tuple[int, ...] = ()
    spikes: int | None = None  # nonzero outputs per inference
    messages: int | None = None  # spike messages sent to other cores
    chip_messages: int | None = None  # of which to another chip
    sops: int | None = None  # synaptic ops into this population


@dataclass
class FitReport:
    chip: Chip
    layers: list[LayerFit]
    cores: int
    chips: int
    board: str | None
    errors: list[str]
    time_steps: int
    latency: int
    counted: bool
    step_messages: np.ndarray | None = None  # per run step (T + L): messages sent at that step
    step_chip_messages: np.ndarray | None = None  # of which to another chip
    spike_mode: str = "graded"  # how integer spikes travel (the traffic of the layers)
    substeps: int = 1  # time steps per network step: D spike-driven
    lava_steps: int = 0  # time steps of one inference
    modes: dict[str, dict[str, Any]] = field(default_factory=dict)  # integer spikes: both modes' totals

    @property
    def neurons(self) -> int:
        return sum(r.neurons for r in self.layers)

    @property
    def synapses(self) -> int:
        return sum(r.synapses for r in self.layers)


def _needs_at(c_t: int, p: int, groups: list[_Group], out_per_neuron: int, chip: Chip) -> dict[str, int]:
    axons = bits = 0
    for g in groups:
        a, b, _ = g.needs(c_t, p, chip)
        axons += a
        bits += b
    n = c_t * p
    return {"neurons": n, "input_axons": axons, "output_axons": n * out_per_neuron, "synapse_memory": bits}


def _largest(ok, hi: int) -> int:
    """The largest p in 1..hi with ok(p) (ok is true, then false, as p grows); 0 if none."""
    lo = 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True)
class _Split:
    cores: int
    c_t: int
    p: int
    binding: str
    needs: dict[str, int]
    error: str = ""


def _split(name: str, shape, groups: list[_Group], out_per_neuron: int, chip: Chip) -> _Split:
    """Tile a population into cores of ``c_t`` channels × ``p`` positions, fewest cores first."""
    c, h, w = (int(v) for v in shape)
    hw = h * w
    lim = chip.limits

    def needs(c_t: int, p: int) -> dict[str, int]:
        return _needs_at(c_t, p, groups, out_per_neuron, chip)

    one = needs(1, 1)
    for key in LIMITS:
        if one[key] > lim[key]:
            what = {
                "input_axons": f"one neuron reads {one[key]} source neurons (fan-in), past the {lim[key]} input axons of a core",
                "output_axons": f"one neuron needs {one[key]} output axons, past the {lim[key]} of a core",
                "synapse_memory": f"one neuron's weights need {one[key]} bits, past the {lim[key]} bits of a core's synapse memory",
                "neurons": f"needs {one[key]} neurons per core, past {lim[key]}",
            }[key]
            return _Split(0, 0, 0, key, one, f"{name}: {what} ({chip.name} {key} limit)")
    # channel slices: C, C/2, C/4, ... (rounded up), each with as many positions as fit
    options = sorted({-(-c // 2**k) for k in range(c.bit_length() + 1)}, reverse=True)
    options = [ct for ct in options if ct <= lim["neurons"]] or [1]

    def best(keys: tuple[str, ...]) -> tuple[int, int, int]:
        found = (0, 0, 0)
        for ct in options:
            p = _largest(lambda p, ct=ct: all(needs(ct, p)[k] <= lim[k] for k in keys), min(hw, lim["neurons"] // ct))
            if p == 0:
                continue
            cores = -(-c // ct) * -(-hw // p)
            if found[0] == 0 or cores < found[0]:
                found = (cores, ct, p)
        return found

    cores, ct, p = best(LIMITS)
    alone = {k: best((k,))[0] for k in LIMITS}
    binding = max(LIMITS, key=lambda k: (alone[k], -LIMITS.index(k)))
    return _Split(cores, ct, p, binding, needs(ct, p))


def _kind(op: Any) -> str:
    return {
        LoihiLIF: "lif",
        LoihiReadout: "readout",
        GradedRelay: "relay",
        FixedMaxPool: "custom",
        FixedSiLU: "custom",
        LoihiIntegerLIF: "ilif",
    }[type(op)]


def fit(
    graph: Graph, chip: Chip, counts: Mapping[str, PopulationCounts] | None = None, spike_mode: str = "graded"
) -> FitReport:
    """Map a quantized, delay-aligned graph onto ``chip``; with ``counts`` also count the traffic
    and synaptic ops of that inference. DRC errors are collected in the report (``errors``).
    ``spike_mode``: how integer spikes travel (``graded`` or ``spike-driven``; see above)."""
    if spike_mode not in SPIKE_MODES:
        raise EmsdeployError(f"unknown spike mode {spike_mode!r}; modes: {', '.join(SPIKE_MODES)}")
    pops = [n for n in graph if isinstance(n.op, _POPS) and n.meta.get("partition", "chip") != "host"]
    groups = {p.name: _groups(graph, p.name, chip) for p in pops}
    readers: dict[str, list[tuple[str, _Group]]] = {p.name: [] for p in pops}
    for p in pops:
        for g in groups[p.name]:
            readers.setdefault(g.source, []).append((p.name, g))
    shapes = {p.name: tuple(int(v) for v in cast(Any, p.op).in_shape()) for p in pops}
    split: dict[str, _Split] = {}

    def reach_of(g: _Group, dst: str) -> int:
        d = split.get(dst)
        return 1 if d is None or d.cores == 0 else g.reach(d.c_t, d.p, d.cores)

    memo: dict[tuple[str, int], _Split] = {}
    for _ in range(8):  # output axons depend on the readers' splits: iterate to a fixed point
        changed = False
        for p in pops:
            out_per = sum(reach_of(g, dst) for dst, g in readers.get(p.name, []))
            if (p.name, out_per) not in memo:
                memo[p.name, out_per] = _split(p.name, shapes[p.name], groups[p.name], out_per, chip)
            res = memo[p.name, out_per]
            old = split.get(p.name)
            if old is None or (old.cores, old.c_t, old.p) != (res.cores, res.c_t, res.p):
                changed = True
            split[p.name] = res
        if not changed:
            break
    reach = {p.name: {g.name: reach_of(g, dst) for dst, g in readers.get(p.name, [])} for p in pops}

    # place cores on chips in graph order
    chip_of: dict[str, list[int]] = {}
    cur, used_cores, used_neurons, used_syn = 0, 0, 0, 0
    cap_c, cap_n, cap_s = chip["chip.cores"], chip["chip.neurons"], chip["chip.synapses"]
    any_core = False
    for p in pops:
        sp = split[p.name]
        left = int(np.prod(shapes[p.name]))
        stored = sum(g.needs(sp.c_t, sp.p, chip)[2] for g in groups[p.name]) if sp.cores else 0
        chip_of[p.name] = []
        for _ in range(sp.cores):
            nn = min(sp.c_t * sp.p, left)
            left -= nn
            if any_core and (used_cores + 1 > cap_c or used_neurons + nn > cap_n or used_syn + stored > cap_s):
                cur, used_cores, used_neurons, used_syn = cur + 1, 0, 0, 0
            used_cores, used_neurons, used_syn, any_core = used_cores + 1, used_neurons + nn, used_syn + stored, True
            chip_of[p.name].append(cur)
    n_chips = cur + 1 if any_core else 0
    board = next((b for b, c in chip.boards if c >= n_chips), None)

    layers: list[LayerFit] = []
    errors: list[str] = []
    for p in pops:
        sp = split[p.name]
        if sp.error:
            errors.append(sp.error)
        g_list = groups[p.name]
        layers.append(
            LayerFit(
                name=p.name,
                kind=_kind(p.op),
                shape=shapes[p.name],  # type: ignore[arg-type]
                neurons=int(np.prod(shapes[p.name])),
                fan_in=sum(g.fan_in for g in g_list),
                synapses=sum(g.synapses for g in g_list),
                weight_bytes=sp.cores * -(-sp.needs["synapse_memory"] // 8) if sp.cores else 0,
                cores=sp.cores,
                tile=(sp.c_t, sp.p),
                binding=sp.binding,
                needs=sp.needs,
                error=sp.error,
                chips=tuple(sorted(set(chip_of[p.name]))),
            )
        )
    rep = FitReport(
        chip,
        layers,
        sum(r.cores for r in layers),
        n_chips,
        board,
        errors,
        int(graph.time_steps),
        int(graph.attrs.get("latency", 0)),
        counts is not None,
    )
    levels = integer_levels(graph)
    readouts = any(isinstance(n.op, LoihiReadout) for n in graph)
    rep.spike_mode = spike_mode if levels else "graded"
    rep.substeps = levels if levels and spike_mode == "spike-driven" else 1
    rep.lava_steps = lava_steps(rep.time_steps, rep.latency, rep.substeps, readouts)
    if counts is not None:
        for mode in SPIKE_MODES if levels else ():  # both modes' totals, the chosen one last
            if mode != rep.spike_mode:
                _traffic(rep, graph, groups, readers, reach, chip_of, counts, mode == "spike-driven")
                rep.modes[mode] = _mode_totals(rep, (levels or 1) if mode == "spike-driven" else 1, readouts)
        _traffic(rep, graph, groups, readers, reach, chip_of, counts, rep.substeps > 1)
        if levels:
            rep.modes[rep.spike_mode] = _mode_totals(rep, rep.substeps, readouts)
            rep.modes = {m: rep.modes[m] for m in SPIKE_MODES}
    return rep


def _step_ns(rep: FitReport, substeps: int) -> float:
    """A time step lasts as long as the busiest core (docs/fit.md §4); spike-driven, a network
    step's synaptic ops spread over its D time steps."""
    t_syn, t_upd = rep.chip["timing.synop_ns"], rep.chip["timing.neuron_update_ns"]
    T = rep.time_steps
    return max(
        ((r.sops or 0) / (T * substeps) / r.cores * t_syn + r.neurons_per_core * t_upd for r in rep.layers if r.cores),
        default=0.0,
    )


def _mode_totals(rep: FitReport, substeps: int, readouts: bool) -> dict[str, Any]:
    """One spike mode's traffic and latency, from the layers' counts as :func:`_traffic` left them."""
    steps = lava_steps(rep.time_steps, rep.latency, substeps, readouts)
    per_step = rep.step_messages if rep.step_messages is not None else np.zeros(1)
    step_ns = _step_ns(rep, substeps)
    return {
        "substeps": substeps,
        "lava_steps": steps,
        "messages": sum(r.messages or 0 for r in rep.layers),
        "chip_messages": sum(r.chip_messages or 0 for r in rep.layers),
        "sops": sum(r.sops or 0 for r in rep.layers),
        "messages_per_step_mean": float(per_step.mean()) if per_step.size else 0.0,
        "messages_per_step_max": float(per_step.max()) if per_step.size else 0.0,
        "step_us": step_ns / 1e3,
        "latency_ms": step_ns * steps / 1e6,
    }


def _sops(g: _Group, per_neuron: np.ndarray) -> int:
    """Exact synaptic ops of one group from its source's per-neuron nonzero counts."""
    if isinstance(g.op, SynConv):
        w = g.op.weight_s8
        (sh, sw), (ph, pw), (dh, dw) = g.op.stride, g.op.padding, g.op.dilation
        fy = _axis_fanout(g.in_shape[1], g.out_shape[1], int(w.shape[2]), sh, ph, dh)
        fx = _axis_fanout(g.in_shape[2], g.out_shape[2], int(w.shape[3]), sw, pw, dw)
        per_pos = per_neuron.reshape(g.in_shape).astype(np.int64).sum(axis=0)
        return int((g.out_shape[0] // g.op.groups) * int(fy @ per_pos @ fx))
    per_col = np.bincount(g.op.indices.astype(np.int64), minlength=int(np.prod(g.in_shape)))
    return int(per_neuron.reshape(-1).astype(np.int64) @ per_col)


def _traffic(rep: FitReport, graph: Graph, groups, readers, reach, chip_of, counts, unit_spikes: bool = False) -> None:
    """Messages, cross-chip messages and synaptic ops of every layer; ``unit_spikes``: integer
    spikes travel as s binary spikes (spike-driven), not as one graded message."""
    run = rep.time_steps + rep.latency
    rep.step_messages, rep.step_chip_messages = np.zeros(run, np.float64), np.zeros(run, np.float64)
    for r in rep.layers:
        c = counts.get(r.name)
        if c is None:
            raise EmsdeployError(f"no spike counts for population {r.name}")
        per_step = np.asarray(c.sent(unit_spikes)[0], dtype=np.float64)
        r.spikes = int(per_step.sum())
        msgs = chip_msgs = 0
        fan = cross = 0.0  # messages per spike, and of them across chips
        src_chips = chip_of[r.name]
        for dst, g in readers.get(r.name, []):
            m = reach[r.name][g.name]
            msgs += r.spikes * m
            fan += m
            dst_chips = chip_of.get(dst, [])
            if src_chips and dst_chips:
                # spikes spread evenly over the source's cores; each reaches m of the destination's
                # cores, taken as spread evenly over the destination's chips
                share = np.bincount(src_chips) / len(src_chips)
                dshare = np.bincount(dst_chips, minlength=len(share)) / len(dst_chips)
                dshare = np.pad(dshare, (0, max(0, len(share) - len(dshare))))
                same = float(share @ dshare[: len(share)])
                chip_msgs += round(r.spikes * m * (1.0 - same))
                cross += m * (1.0 - same)
        r.messages, r.chip_messages = msgs, chip_msgs
        # a population's valid step t is run step latency + t (align_delays)
        start = int(getattr(graph[r.name].op, "latency", 0))
        steps = np.arange(start, start + per_step.size)
        keep = steps < run
        np.add.at(rep.step_messages, steps[keep], per_step[keep] * fan)
        np.add.at(rep.step_chip_messages, steps[keep], per_step[keep] * cross)
    for r in rep.layers:
        sops = 0
        for g in groups[r.name]:
            c = counts.get(g.source)
            if c is None:
                raise EmsdeployError(f"no spike counts for population {g.source}")
            sops += _sops(g, np.asarray(c.sent(unit_spikes)[1]))
        r.sops = sops


# --- energy and latency ----------------------------------------------------------------------
def estimate(rep: FitReport, synop_pj: float, update_pj: float) -> dict[str, Any]:
    """Energy and latency of one inference from the counts (model in docs/fit.md §4).

    ``E = synop_pj·SOPs + update_pj·N·(T + L) + hop_pj·messages``: every compartment updates every
    step of the run, each message takes at least one tile hop. Steps are barrier-synchronised, so a
    step lasts as long as the busiest core: ``t_step = max over layers of (SOPs/T/cores)·t_synop +
    (neurons per core)·t_update`` and ``latency = (T + L)·t_step``.
    """
    if not rep.counted:
        raise EmsdeployError("energy and latency need spike counts")
    run = rep.lava_steps or rep.time_steps + rep.latency  # time steps: D per step spike-driven
    sops = sum(r.sops or 0 for r in rep.layers)
    msgs = sum(r.messages or 0 for r in rep.layers)
    updates = sum(r.neurons for r in rep.layers) * run
    hop = rep.chip["energy.hop_pj"]
    e_pj = synop_pj * sops + update_pj * updates + hop * msgs
    step_ns = _step_ns(rep, rep.substeps)
    return {
        "sops": sops,
        "neuron_updates": updates,
        "messages": msgs,
        "chip_messages": sum(r.chip_messages or 0 for r in rep.layers),
        "energy_uJ": e_pj / 1e6,
        "energy_parts_uJ": {
            "synops": synop_pj * sops / 1e6,
            "neuron_updates": update_pj * updates / 1e6,
            "messages": hop * msgs / 1e6,
        },
        "step_us": step_ns / 1e3,
        "run_steps": run,
        "steps_label": "T + L" if rep.substeps == 1 else f"{rep.substeps}·(T + L − 1) + 1",
        "latency_ms": step_ns * run / 1e6,
    }


# --- output ------------------------------------------------------------------------------------
def fit_json(rep: FitReport) -> dict[str, Any]:
    """The issue's schema, exactly."""
    return {
        "chip": rep.chip.name,
        "totals": {
            "cores": rep.cores,
            "chips": rep.chips,
            "board": rep.board,
            "neurons": rep.neurons,
            "synapses": rep.synapses,
        },
        "layers": [
            {
                "name": r.name,
                "neurons": r.neurons,
                "fan_in": r.fan_in,
                "synapses": r.synapses,
                "weight_bytes": r.weight_bytes,
                "cores": r.cores,
                "binding": r.binding,
            }
            for r in rep.layers
        ],
        "errors": list(rep.errors),
        **({"spike_modes": rep.modes} if rep.modes else {}),
    }


def format_fit(rep: FitReport, est: dict[str, Any] | None = None) -> str:
    """The map as text: one row per population, totals, traffic and the estimate when counted."""
    nw = max([len("layer"), *(len(r.name) for r in rep.layers)])
    head = f"{'layer':<{nw}} {'kind':<7} {'neurons':>9} {'fan-in':>7} {'synapses':>12} {'w bytes':>10} {'cores':>6} {'n/core':>6} binding"
    if rep.counted:
        head += f"{'':<6} {'spikes':>10} {'messages':>11} {'x-chip':>9} {'SOPs':>12}"
    lines = [f"chip: {rep.chip.name} ({rep.chip.description})", head]
    for r in rep.layers:
        row = (
            f"{r.name:<{nw}} {r.kind:<7} {r.neurons:>9} {r.fan_in:>7} {r.synapses:>12} {r.weight_bytes:>10} "
            f"{r.cores:>6} {r.neurons_per_core:>6} {r.binding:<14}"
        )
        if rep.counted:
            row += f"{r.spikes:>10} {r.messages:>11} {r.chip_messages:>9} {r.sops:>12}"
        lines.append(row.rstrip())
    lines.append("")
    lines.append(
        f"total: {rep.cores} cores on {rep.chips} chip(s) ({rep.chip['chip.cores']} cores each); "
        f"smallest board: {rep.board or 'none listed holds it'}; {rep.neurons} neurons, {rep.synapses} synapses"
    )
    bind = {k: sum(r.cores for r in rep.layers if r.binding == k) for k in LIMITS}
    lines.append("cores by binding limit: " + ", ".join(f"{k} {v}" for k, v in bind.items() if v))
    custom = [r.name for r in rep.layers if r.kind in ("custom", "ilif")]
    if custom and not rep.chip["core.programmable_neurons"]:
        lines.append(
            f"note: {len(custom)} custom populations (max-pool of currents, SiLU, I-LIF) have no neuron model on "
            f"{rep.chip.name}; mapped as if they had (--custom-to-host moves them to the host)"
        )
    if est is not None:
        p = est["energy_parts_uJ"]
        lines.append(
            f"per inference ({est['steps_label']} = {est['run_steps']} steps): {est['sops']} synaptic ops, {est['neuron_updates']} "
            f"neuron updates, {est['messages']} spike messages ({est['chip_messages']} across chips)"
        )
        lines.append(
            f"energy ~ {est['energy_uJ']:.4g} uJ (synops {p['synops']:.4g}, neuron updates {p['neuron_updates']:.4g}, "
            f"messages {p['messages']:.4g}); latency ~ {est['latency_ms']:.4g} ms ({est['step_us']:.4g} us per step)"
            + (" - over the mapped layers only: see the DRC errors" if rep.errors else "")
        )
    if rep.step_messages is not None and rep.step_chip_messages is not None and rep.step_messages.size:
        busiest = int(np.argmax(rep.step_messages))
        lines.append(
            f"messages per run step: mean {rep.step_messages.mean():.0f}, busiest step {busiest} "
            f"{rep.step_messages[busiest]:.0f} ({rep.step_chip_messages[busiest]:.0f} across chips)"
        )
    if rep.modes:
        lines.append(f"integer spikes, both modes (this report's traffic: {rep.spike_mode}):")
        for mode, m in rep.modes.items():
            what = "graded messages" if mode == "graded" else "binary spikes"
            lines.append(
                f"  {mode:<13} {m['messages']} {what} ({m['chip_messages']} across chips), "
                f"{m['messages_per_step_mean']:.0f} per step (busiest {m['messages_per_step_max']:.0f}), "
                f"{m['sops']} synaptic ops; {m['substeps']} sub-step(s) per step, {m['lava_steps']} time steps, "
                f"latency ~ {m['latency_ms']:.4g} ms"
            )
    for e in rep.errors:
        lines.append(f"DRC error: {e}")
    return "\n".join(lines)


def check_fits(rep: FitReport) -> None:
    """Raise the first DRC error of the map (the CLI's exit 2)."""
    if rep.errors:
        more = f" (and {len(rep.errors) - 1} more)" if len(rep.errors) > 1 else ""
        raise DRCError("fits_chip", rep.errors[0] + more)


# What ``emsdeploy export --target lava`` writes beside its mapping report (no counts: exporters
# run no simulator; `emsdeploy fit` adds the traffic).
EXPORT_CHIPS = ("loihi1", "loihi2")
EXPORT_FILES = frozenset({"fit.txt", *(f"fit-{c}.json" for c in EXPORT_CHIPS)})


def write_fit_reports(graph: Graph, folder: Path) -> dict[str, Path]:
    """Write ``fit.txt`` (the map on each shipped chip) and ``fit-<chip>.json`` (the ``--json``
    object) into ``folder``; DRC errors are listed in them, not raised (the export stands)."""
    import json

    from emsdeploy.fileio import atomic_write_text

    files: dict[str, Path] = {}
    texts = []
    for name in EXPORT_CHIPS:
        rep = fit(graph, load_chip(name))
        texts.append(format_fit(rep))
        files[f"fit_{name}"] = atomic_write_text(
            folder / f"fit-{name}.json", json.dumps(fit_json(rep), indent=1) + "\n"
        )
    files["fit_txt"] = atomic_write_text(folder / "fit.txt", "\n\n".join(texts) + "\n")
    return files
