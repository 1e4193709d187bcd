"""Exporters: lower the IR to deployment targets (``onnx``: stepwise graph; ``lava``: lava-nc
processes in Loihi fixed point; ``nir``: interop). Each stands on :mod:`emsdeploy.ir` and never
imports the simulators; each exposes ``export_cli(graph, output, options)`` for
``emsdeploy export --target <name>``, its options typed (:class:`~.lava.LavaOptions`,
:class:`~.onnx.OnnxOptions`, :class:`~.nir.NirOptions`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .lava.options import LavaOptions
    from .nir.options import NirOptions
    from .onnx.options import OnnxOptions

__all__ = ["export_options"]


def export_options(target: str, **flags: Any) -> LavaOptions | OnnxOptions | NirOptions:
    """The typed options of ``target`` from the CLI's flags (the one place flags become options;
    imported lazily, so that Lava's worker processes never import torch through here)."""
    if target == "lava":
        from .lava.options import LavaOptions

        return LavaOptions.from_flags(**flags)
    if target == "onnx":
        from .onnx.options import OnnxOptions

        return OnnxOptions.from_flags(**flags)
    if target == "nir":
        from .nir.options import NirOptions

        return NirOptions.from_flags(**flags)
    raise ValueError(f"no exporter named {target!r}")
