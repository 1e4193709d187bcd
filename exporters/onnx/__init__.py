"""Stepwise ONNX export (DESIGN.md §9) and its runtime.

* :func:`build_onnx` / :func:`export_onnx`: IR graph -> one-time-step ONNX graph with the neuron
  state as inputs and outputs (tensor names and metadata in :mod:`.contract`).
* :class:`StepwiseSession`: runs it in onnxruntime for T steps, or one frame at a time
  (:meth:`StepwiseSession.stream`), returns the run contract's ``Trace`` with the boxes decoded
  (:mod:`emsdeploy.ir.runtime`), and applies NMS (:mod:`.detect`).

Stands on :mod:`emsdeploy.ir`; imports neither the simulators nor torch (a test checks).
"""

from __future__ import annotations

from pathlib import Path

from emsdeploy.ir import Graph

from .contract import FORMAT, FORMAT_VERSION, NeuronInfo, StepwiseMeta
from .detect import Detections, nms
from .export import OPSET, build_onnx, export_onnx
from .options import OnnxOptions
from .runtime import StepwiseSession, Stream

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "OPSET",
    "Detections",
    "NeuronInfo",
    "OnnxOptions",
    "StepwiseMeta",
    "StepwiseSession",
    "Stream",
    "build_onnx",
    "export_cli",
    "export_onnx",
    "nms",
]


def export_cli(graph: Graph, output: Path, options: OnnxOptions) -> list[str]:
    """``emsdeploy export --target onnx``: write the stepwise graph; return the lines to print."""
    if options.arithmetic == "fixed":
        from .fixed import export_cli_fixed

        return export_cli_fixed(graph, output, options)
    model = export_onnx(graph, output, spikes=options.spikes)
    meta = StepwiseMeta.from_props({p.key: p.value for p in model.metadata_props})
    lif = sum(n.type == "LIF" for n in meta.neurons)
    ilif = sum(n.type == "IntegerLIF" for n in meta.neurons)
    silu = len(meta.neurons) - lif - ilif
    lif_nodes = lif + sum(1 for a in meta.aliases.values() if _type(meta, a) == "LIF")
    ilif_nodes = ilif + sum(1 for a in meta.aliases.values() if _type(meta, a) == "IntegerLIF")
    silu_nodes = len(meta.neurons) + len(meta.aliases) - lif_nodes - ilif_nodes
    size = Path(output).stat().st_size
    heads = ", ".join(f"head.{i} {[d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]}"
                      for i, o in enumerate(model.graph.output[: len(meta.heads)]))  # fmt: skip
    shared = f"; {len(meta.aliases)} neurons share the state of an identical one" if meta.aliases else ""
    lines = [
        f"graph        : one time step, opset {OPSET}, {len(model.graph.node)} nodes, checked by onnx.checker",
        f"input        : x [batch, {', '.join(map(str, meta.input_shape))}] ({meta.encoding} encoding, T = {meta.time_steps})",
        f"state        : {len(meta.neurons)} tensors state_in/state_out.<node>.h ({lif} LIF"
        + (f", {ilif} I-LIF" if ilif else "")
        + (f", {silu} SiLU neurons" if silu else "")
        + f"){shared}",
        f"heads        : {heads}",
    ]
    if meta.spikes:
        lines.append(
            f"spikes       : spikes.<node> for {lif_nodes} LIF nodes"
            + (f", {ilif_nodes} I-LIF nodes (uint8 0..D)" if ilif_nodes else "")
            + (f", values.<node> for {silu_nodes} SiLU neurons" if silu_nodes else "")
        )
    lines.append(f"wrote        : {output} ({size / 1e6:.2f} MB)")
    return lines


def _type(meta: StepwiseMeta, name: str) -> str:
    return next(n.type for n in meta.neurons if n.name == name)
