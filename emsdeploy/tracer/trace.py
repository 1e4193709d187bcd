"""Trace a PyTorch EMS-YOLO into the IR with torch.fx, neurons and layers as leaf modules.

fx records the data flow between leaves (adds, concats, the YOLO ``from`` routing) without
unrolling any time loop; handlers turn each leaf into IR nodes named after its module path.
Anything without a handler fails with its module path, its type and the supported set.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.fx as fx
from torch import nn

from ..errors import TraceError
from ..ir import Graph, Input
from ..models import EMSYOLO, run_layers
from ..models.spikeyolo import SpikeYOLO
from .handlers import FUNCTION_HANDLERS, LEAF_TYPES, MODULE_HANDLERS, TraceContext

__all__ = ["supported_modules", "trace"]


class _Layers(nn.Module):
    """The model's layers under the same attribute name (``model``), so fx paths equal module paths."""

    def __init__(self, model: EMSYOLO | SpikeYOLO) -> None:
        super().__init__()
        self.model = model.model
        self.save = model.save

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return run_layers(self.model, self.save, x)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        # Our leaves, and every torch.nn module (fx's default): the latter have no handler and
        # are reported by name instead of being traced into.
        return isinstance(m, LEAF_TYPES) or super().is_leaf_module(m, qualname)


def supported_modules() -> list[str]:
    return sorted(c.__name__ for c in MODULE_HANDLERS)


def _function_name(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    owner = next(reversed(stack), None) if stack else None
    label = FUNCTION_HANDLERS[node.target][0]
    if isinstance(owner, tuple):  # some torch versions store (path, type)
        owner = owner[0]
    return f"{owner}.{label}" if owner else label


def trace(model: EMSYOLO | SpikeYOLO, input_shape: Sequence[int] | None = None, *, source: str | None = None) -> Graph:
    """Trace ``model`` (eval mode is used) into a validated IR graph.

    Args:
        model: an EMS-YOLO or a SpikeYOLO built by :mod:`emsdeploy.models`.
        input_shape: ``(C, H, W)`` or ``(H, W)`` of one input frame; the IR is shape-specialised.
            Default: 640×640 for direct encoding, 320×320 for frames (the official training sizes).
        source: provenance recorded in ``graph.attrs["source"]``.
    """
    if not isinstance(model, (EMSYOLO, SpikeYOLO)):
        raise TraceError(f"can trace an emsdeploy EMSYOLO or SpikeYOLO model, got {type(model).__name__}")
    size = input_shape or ((640, 640) if model.encoding == "direct" else (320, 320))
    shape = tuple(int(s) for s in (size if len(size) == 3 else (model.in_channels, *size)))
    if shape[0] != model.in_channels:
        raise TraceError(f"input has {shape[0]} channels but the model expects {model.in_channels}")
    was_training = model.training
    model.eval()
    try:
        try:
            fx_graph = _Tracer().trace(_Layers(model))
        except TraceError:
            raise
        except Exception as e:  # fx reports data-dependent control flow etc.
            raise TraceError(f"torch.fx could not trace the model: {type(e).__name__}: {e}") from None
        graph = Graph(
            {
                "time_steps": model.time_steps,
                "encoding": model.encoding,
                "names": list(model.names),
                "nc": model.nc,
                "dt": 1,
                "reset": "soft" if isinstance(model, SpikeYOLO) else "hard-zero",
                "source": source or "",
            }
        )
        ctx = TraceContext(graph)
        modules = dict(model.named_modules())
        env: dict[fx.Node, object] = {}
        for node in fx_graph.nodes:
            env[node] = _lower(ctx, node, env, modules, shape, model.encoding)
        graph.outputs = ctx.outputs
        return graph.validate()
    finally:
        model.train(was_training)


def _names(arg: object, env: dict, where: str) -> list[str]:
    """Input node names for an fx argument (a node, or a list of nodes for Concat/Detect)."""
    items = arg if isinstance(arg, (list, tuple)) else [arg]
    out = []
    for a in items:
        if not isinstance(a, fx.Node) or not isinstance(env.get(a), str):
            raise TraceError(f"{where}: unsupported argument {a!r} (only tensors from other layers)")
        out.append(env[a])
    return out


def _lower(ctx: TraceContext, node: fx.Node, env: dict, modules: dict, shape: tuple, encoding: str) -> object:
    if node.op == "placeholder":
        return ctx.add("input", Input(shape, encoding), [])
    if node.op == "output":
        return None
    if node.op == "call_module":
        module = modules[node.target]
        handler = MODULE_HANDLERS.get(type(module))
        if handler is None:
            raise TraceError(
                f"{node.target} ({type(module).__name__}): no IR mapping. Supported modules: "
                f"{', '.join(supported_modules())}. Add a handler with @handles({type(module).__name__}) "
                "in emsdeploy/tracer/handlers.py."
            )
        if len(node.args) != 1 or node.kwargs:
            raise TraceError(
                f"{node.target} ({type(module).__name__}): called with {len(node.args)} args; expected one input"
            )
        target = str(node.target)  # a module path for call_module
        return handler(ctx, target, module, _names(node.args[0], env, target))
    if node.op == "call_function" and node.target in FUNCTION_HANDLERS:
        name = _function_name(node)
        inputs = [env[a] for a in _flat_nodes(node.args)]
        if not all(isinstance(i, str) for i in inputs):
            raise TraceError(f"{name}: arguments must be tensors from other layers")
        return FUNCTION_HANDLERS[node.target][1](ctx, name, node.args, node.kwargs, inputs)
    stack = list((node.meta.get("nn_module_stack") or {}).keys())
    where = stack[-1] if stack else "model"
    what = getattr(node.target, "__name__", str(node.target))
    raise TraceError(
        f"{where}: {node.op} {what!r} has no IR mapping. Supported functions: "
        f"{', '.join(sorted({v[0] for v in FUNCTION_HANDLERS.values()}))}; supported modules: {', '.join(supported_modules())}"
    )


def _flat_nodes(args: object) -> list[fx.Node]:
    out: list[fx.Node] = []
    for a in args if isinstance(args, (list, tuple)) else [args]:
        if isinstance(a, fx.Node):
            out.append(a)
        elif isinstance(a, (list, tuple)):
            out += _flat_nodes(a)
    return out
