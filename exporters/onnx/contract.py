"""The stepwise ONNX contract (DESIGN.md §9): tensor names, state rule and metadata.

Written once here and read by both the exporter and the runtime, so the two cannot drift.

One graph call is one time step::

    inputs : x                      [B, C, H, W]   this step's image (direct) or event frame (frames)
             state_in.<node>.h      [B, C, H, W]   one per neuron node, in graph order
    outputs: head.<i>               [B, na·(nc+5), H_i, W_i]  Detect scale i's 1×1 conv, this step
             state_out.<node>.h     same order and shapes as state_in
             spikes.<lif node>      bool, this step's spikes        (only with spikes=True;
                                    uint8 0..D for an I-LIF)
             values.<silu node>     the SiLU neuron's output        (only with spikes=True)

State rule: each neuron carries one tensor, the leaked and reset membrane the next step starts
from. For a LIF, ``h[t] = τ·U[t]·(1 − S[t])``, so that ``U[t+1] = h[t] + I[t+1]``; zeros at
t = 0 give ``U[0] = I[0]``. The products are taken in the order of the reference kernels
(``(U·τ)·(1 − S)``), so carrying ``h`` instead of ``(U, S)`` changes no bit. A SiLU neuron
carries ``h[t] = (y[t]·τ)·(1 − y[t])`` when in place (the official quirk) and
``(m[t]·τ)·(1 − y[t])`` otherwise. An I-LIF (SpikeYOLO) carries ``h[t] = (U[t] − S[t])·β``
(soft reset, then leak, the reference's order), with ``S = Round(Clip(U, 0, D))``.

Neurons that read the same inputs, in the same order, with the same parameters (the two branch
LIFs of an EMS-Block2, for instance) have the same membrane at every step, bit for bit. The
graph computes such a group once: the first carries the state, and ``metadata_props["aliases"]``
maps every other member to it (with spikes, ``spikes.<alias>`` is still an output).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from emsdeploy.errors import ExportError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "INPUT",
    "NeuronInfo",
    "StepwiseMeta",
    "head_name",
    "ref_name",
    "spikes_name",
    "state_in_name",
    "state_out_name",
    "values_name",
]

FORMAT = "emsdeploy.onnx.stepwise"
FORMAT_VERSION = 1
INPUT = "x"
STATE_VAR = "h"
BATCH = "batch"  # the symbolic batch axis

STATE_RULE = (
    "one tensor h per neuron, zeros at t=0. LIF: U[t] = h[t-1] + I[t]; S[t] = U[t] > v_th; "
    "h[t] = (U[t]*tau)*(1-S[t]). SiLU neuron: m[t] = h[t-1] + I[t]; y[t] = m[t]*sigmoid(m[t]); "
    "h[t] = (y[t]*tau)*(1-y[t]) in place, (m[t]*tau)*(1-y[t]) otherwise. I-LIF (IntegerLIF): "
    "U[t] = h[t-1] + I[t]; S[t] = round_half_even(clip(U[t], 0, levels)); h[t] = (U[t]-S[t])*tau"
)
NEURON_TYPES = ("LIF", "IntegerLIF", "SiLUNeuron")
SPIKING = ("LIF", "IntegerLIF")
DECODE_KINDS = ("yolov5", "dfl")  # Decode (anchors, objectness) and DFLDecode (anchor-free)
LAYOUT = (
    "one call = one time step; x is [B, C, H, W] (direct: the same image every step; frames: "
    "frame t of [B, T, C, H, W]); head.<i> is [B, na*(nc+5), H_i, W_i] before the mean over T"
)


def state_in_name(node: str) -> str:
    return f"state_in.{node}.{STATE_VAR}"


def state_out_name(node: str) -> str:
    return f"state_out.{node}.{STATE_VAR}"


def head_name(i: int) -> str:
    return f"head.{i}"


def spikes_name(node: str) -> str:
    return f"spikes.{node}"


def values_name(node: str) -> str:
    return f"values.{node}"


def ref_name(node: str) -> str:
    """Input that replaces a neuron's output downstream in a node-isolated graph."""
    return f"ref.{node}"


@dataclass(frozen=True)
class NeuronInfo:
    """One neuron node of the graph: its IR name, type (``LIF`` or ``SiLUNeuron``) and parameters."""

    name: str
    type: str
    shape: tuple[int, ...]  # (C, H, W)
    tau: float
    v_th: float | None = None  # LIF only
    inplace: bool | None = None  # SiLUNeuron only
    levels: int | None = None  # IntegerLIF only: D (tau is its decay)

    @property
    def spiking(self) -> bool:
        """Emits spikes (``spikes.<node>``: bool for a LIF, uint8 0..D for an I-LIF), not values."""
        return self.type in SPIKING

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": self.type, "shape": list(self.shape), "tau": self.tau}
        if self.v_th is not None:
            d["v_th"] = self.v_th
        if self.inplace is not None:
            d["inplace"] = self.inplace
        if self.levels is not None:
            d["levels"] = self.levels
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> NeuronInfo:
        if d["type"] not in NEURON_TYPES:
            raise ValueError(f"neuron type {d['type']!r} unknown (known: {', '.join(NEURON_TYPES)})")
        levels = d.get("levels")
        return cls(
            d["name"],
            d["type"],
            tuple(d["shape"]),
            float(d["tau"]),
            d.get("v_th"),
            d.get("inplace"),
            None if levels is None else int(levels),
        )


@dataclass(frozen=True)
class StepwiseMeta:
    """Everything a runtime needs besides the graph, stored in the model's ``metadata_props``.

    Attributes:
        time_steps: the T the model was trained with (a run may choose another).
        encoding: ``direct`` or ``frames``.
        input_shape: ``(C, H, W)`` of ``x``.
        neurons: every neuron node that carries state, in state order.
        aliases: neuron node -> the neuron that carries it (same inputs and parameters).
        heads: per Detect scale, the IR Readout node that averages ``head.<i>`` over T.
        decode: the IR decoding node's name (None without one).
        decode_kind: ``yolov5`` (``Decode``: anchors, objectness) or ``dfl`` (``DFLDecode``:
            anchor-free, ``reg_max`` bins per side, output ``[B, 4+nc, A]``).
        nc, anchors (grid units, ``[nl][na][2]``; empty for ``dfl``), strides: for box decoding.
        names: class names.
        spikes, isolated: which optional outputs/inputs the graph has.
    """

    time_steps: int
    encoding: str
    input_shape: tuple[int, int, int]
    neurons: tuple[NeuronInfo, ...]
    heads: tuple[str, ...]
    decode: str | None
    nc: int
    anchors: tuple = ()
    strides: tuple[float, ...] = ()
    names: tuple[str, ...] = ()
    spikes: bool = False
    isolated: bool = False
    dtype: str = "float32"
    source: str = ""
    aliases: dict[str, str] = field(default_factory=dict)
    decode_kind: str = "yolov5"
    reg_max: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def na(self) -> int:
        return len(self.anchors[0]) if self.anchors else 0

    @property
    def no(self) -> int:
        return self.nc + 5

    def to_props(self) -> dict[str, str]:
        """The metadata_props, all strings; scalar facts readable without JSON."""
        lif = [n for n in self.neurons if n.v_th is not None]
        taus = sorted({n.tau for n in self.neurons})
        vths = sorted({n.v_th for n in lif if n.v_th is not None})
        return {
            "format": FORMAT,
            "format_version": str(FORMAT_VERSION),
            "time_steps": str(self.time_steps),
            "encoding": self.encoding,
            "input_shape": json.dumps(list(self.input_shape)),
            "layout": LAYOUT,
            "dtype": self.dtype,
            # τ and V_th of every neuron are in "neurons"; here the value when all agree.
            "tau": str(taus[0]) if len(taus) == 1 else "per-node (see neurons)",
            "v_th": str(vths[0]) if len(vths) == 1 else ("none" if not vths else "per-node (see neurons)"),
            "reset": (
                "LIF: hard, to zero: multiplicative (1 - S[t-1]), no refractory period; "
                "I-LIF: soft, the emitted integer is subtracted"
            ),
            "comparison": "LIF: strict: S = U > v_th; I-LIF: S = round half to even of clip(U, 0, levels)",
            "state": STATE_RULE,
            "neurons": json.dumps([n.to_json() for n in self.neurons]),
            "aliases": json.dumps(self.aliases),
            "heads": json.dumps(list(self.heads)),
            "decode": json.dumps(self.decode),
            "decode_kind": self.decode_kind,
            "reg_max": str(self.reg_max),
            "nc": str(self.nc),
            "names": json.dumps(list(self.names)),
            "anchors": json.dumps([[list(a) for a in level] for level in self.anchors]),
            "anchors_unit": "grid cells (pixels / stride)",
            "strides": json.dumps(list(self.strides)),
            "spikes": json.dumps(self.spikes),
            "isolated": json.dumps(self.isolated),
            "source": self.source,
            **self.extra,
        }

    @classmethod
    def from_props(cls, props: Mapping[str, str], where: str = "model") -> StepwiseMeta:
        """Parse ``metadata_props``; :class:`ExportError` if they are not ours or too new."""
        if props.get("format") != FORMAT:
            raise ExportError(
                f"{where}: not a stepwise emsdeploy ONNX graph (metadata 'format' is {props.get('format')!r}); "
                "make one with `emsdeploy export SRC --target onnx -o model.onnx`"
            )
        try:
            version = int(props["format_version"])
        except (KeyError, ValueError):
            raise ExportError(f"{where}: metadata 'format_version' is missing or not an integer") from None
        if version > FORMAT_VERSION:
            raise ExportError(
                f"{where}: stepwise format version {version} is newer than this emsdeploy reads ({FORMAT_VERSION})"
            )
        try:
            known = {
                "format", "format_version", "time_steps", "encoding", "input_shape", "layout", "dtype", "tau",
                "v_th", "reset", "comparison", "state", "neurons", "aliases", "heads", "decode", "nc", "names", "anchors",
                "anchors_unit", "strides", "spikes", "isolated", "source", "decode_kind", "reg_max",
            }  # fmt: skip
            decode_kind = props.get("decode_kind", "yolov5")
            if decode_kind not in DECODE_KINDS:
                raise ValueError(f"decode_kind {decode_kind!r} unknown (known: {', '.join(DECODE_KINDS)})")
            return cls(
                time_steps=int(props["time_steps"]),
                encoding=props["encoding"],
                input_shape=tuple(json.loads(props["input_shape"])),
                neurons=tuple(NeuronInfo.from_json(d) for d in json.loads(props["neurons"])),
                heads=tuple(json.loads(props["heads"])),
                decode=json.loads(props["decode"]),
                nc=int(props["nc"]),
                anchors=tuple(tuple(tuple(a) for a in level) for level in json.loads(props["anchors"])),
                strides=tuple(float(s) for s in json.loads(props["strides"])),
                names=tuple(json.loads(props["names"])),
                spikes=bool(json.loads(props.get("spikes", "false"))),
                isolated=bool(json.loads(props.get("isolated", "false"))),
                dtype=props.get("dtype", "float32"),
                source=props.get("source", ""),
                aliases=dict(json.loads(props.get("aliases", "{}"))),
                decode_kind=decode_kind,
                reg_max=int(props.get("reg_max", "0")),
                extra={k: v for k, v in props.items() if k not in known},
            )
        except (KeyError, ValueError, TypeError) as e:
            raise ExportError(f"{where}: stepwise metadata is damaged ({type(e).__name__}: {e})") from None
