"""Module and function handlers: how each traced leaf becomes IR nodes.

Handlers register by module class (``@handles``) or by function (``@handles_function``).
Each receives the :class:`TraceContext`, the IR node name, the module (or call arguments)
and its input node names, adds nodes, and returns the name of the node holding its output.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch

from ..errors import TraceError
from ..ir import (
    LIF,
    Add,
    Affine,
    Concat,
    Conv2d,
    Decode,
    DFLDecode,
    Graph,
    IntegerLIF,
    MaxPool2d,
    Readout,
    SiLUNeuron,
    Upsample,
)
from ..models import LIF as LIFModule  # noqa: N811
from ..models import Concat as ConcatModule
from ..models import Detect, Sample, SeqConv2d, SeqMaxPool2d, TdBatchNorm
from ..models import IntegerLIF as IntegerLIFModule
from ..models import SiLUNeuron as SiLUModule
from ..models.spikeyolo import BNAndPad, GetT, SeqBatchNorm2d, SeqMaxPoolSame, SpikeConv, SpikeDetect

__all__ = ["FUNCTION_HANDLERS", "LEAF_TYPES", "MODULE_HANDLERS", "TraceContext", "handles", "handles_function"]


@dataclass
class TraceContext:
    graph: Graph
    outputs: list[str] = field(default_factory=list)  # graph outputs collected by handlers

    def add(self, name: str, op, inputs: Sequence[str], **meta: Any) -> str:
        return self.graph.add(self.graph.unique_name(name), op, inputs, meta)


ModuleHandler = Callable[[TraceContext, str, torch.nn.Module, list[str]], str]
FunctionHandler = Callable[[TraceContext, str, tuple, dict, list[str]], str]

MODULE_HANDLERS: dict[type, ModuleHandler] = {}
FUNCTION_HANDLERS: dict[Any, tuple[str, FunctionHandler]] = {}


M = TypeVar("M", bound=torch.nn.Module)


def handles(cls: type[M]) -> Callable[[Callable[[TraceContext, str, M, list[str]], str]],
                                      Callable[[TraceContext, str, M, list[str]], str]]:  # fmt: skip
    """Register ``fn`` as the handler of modules of class ``cls`` (one handler per class)."""

    def register(fn: Callable[[TraceContext, str, M, list[str]], str]) -> Callable[[TraceContext, str, M, list[str]], str]:
        if cls in MODULE_HANDLERS:
            raise TraceError(f"a handler for {cls.__name__} is already registered")
        MODULE_HANDLERS[cls] = fn  # type: ignore[assignment]  # looked up by the module's own class
        return fn

    return register


def handles_function(*fns: Any, label: str) -> Callable[[FunctionHandler], FunctionHandler]:
    def register(handler: FunctionHandler) -> FunctionHandler:
        for fn in fns:
            FUNCTION_HANDLERS[fn] = (label, handler)
        return handler

    return register


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _meta(module: torch.nn.Module) -> dict[str, Any]:
    return {"class": type(module).__name__}


@handles(SeqConv2d)
def _conv(ctx: TraceContext, name: str, m: SeqConv2d, inputs: list[str]) -> str:
    if m.padding_mode != "zeros" or isinstance(m.padding, str):
        raise TraceError(
            f"{name} (SeqConv2d): only numeric zero padding is supported, got {m.padding_mode}/{m.padding}"
        )
    op = Conv2d(
        _np(m.weight),
        None if m.bias is None else _np(m.bias),
        _pair(m.stride),
        _pair(m.padding),  # a str padding was refused above
        _pair(m.dilation),
        m.groups,
    )
    return ctx.add(name, op, inputs, module=name, **_meta(m))


@handles(TdBatchNorm)
def _tdbn(ctx: TraceContext, name: str, m: TdBatchNorm, inputs: list[str]) -> str:
    if m.running_mean is None or m.running_var is None or not m.affine:
        raise TraceError(f"{name} (TdBatchNorm): needs running statistics and an affine part to map to Affine")
    # float64, so that folding and quantisation start from the exact BN map.
    var = m.running_var.detach().double()
    scale = m.weight.detach().double() / torch.sqrt(var + m.eps)
    shift = m.bias.detach().double() - m.running_mean.detach().double() * scale
    return ctx.add(name, Affine(_np(scale), _np(shift)), inputs, module=name, **_meta(m))


def _bn_affine(m: torch.nn.BatchNorm2d) -> Affine:
    """Eval BatchNorm as ``a·x + b`` in float64 (its own eps: SpikeYOLO's 1e-3)."""
    if m.running_mean is None or m.running_var is None or not m.affine:
        raise TraceError(f"{type(m).__name__}: needs running statistics and an affine part to map to Affine")
    var = m.running_var.detach().double()
    scale = m.weight.detach().double() / torch.sqrt(var + m.eps)
    shift = m.bias.detach().double() - m.running_mean.detach().double() * scale
    return Affine(_np(scale), _np(shift))


@handles(SeqBatchNorm2d)
def _seq_bn(ctx: TraceContext, name: str, m: SeqBatchNorm2d, inputs: list[str]) -> str:
    return ctx.add(name, _bn_affine(m), inputs, module=name, **_meta(m))


@handles(BNAndPad)
def _bn_and_pad(ctx: TraceContext, name: str, m: BNAndPad, inputs: list[str]) -> str:
    # BN, then a border of BN(0) = zero-pad, then BN: a depthwise 1×1 identity with zero padding
    # (exact: ×1.0), then the Affine. fold_affine makes it one conv whose border is the BN shift.
    src = inputs[0]
    if m.pad:
        c = int(m.bn.num_features)
        pad = Conv2d(np.ones((c, 1, 1, 1), np.float32), None, (1, 1), _pair(m.pad), (1, 1), c)
        src = ctx.add(f"{name}.pad", pad, [src], module=name, role="zero border of BN-and-pad", **_meta(m))
    return ctx.add(f"{name}.bn", _bn_affine(m.bn), [src], module=f"{name}.bn", **_meta(m.bn))


@handles(IntegerLIFModule)
def _integer_lif(ctx: TraceContext, name: str, m: IntegerLIFModule, inputs: list[str]) -> str:
    return ctx.add(name, IntegerLIF(m.decay, m.levels), inputs, module=name, **_meta(m))


@handles(SeqMaxPoolSame)
def _maxpool_same(ctx: TraceContext, name: str, m: SeqMaxPoolSame, inputs: list[str]) -> str:
    k = m.kernel_size
    return ctx.add(name, MaxPool2d(k, 1, k // 2), inputs, module=name, **_meta(m))


@handles(GetT)
def _get_t(ctx: TraceContext, name: str, m: GetT, inputs: list[str]) -> str:
    return inputs[0]  # the encoding is the Input node's; layer 0 passes it on


def _spike_conv(ctx: TraceContext, name: str, m: SpikeConv, inputs: list[str]) -> str:
    x = _integer_lif(ctx, f"{name}.lif", m.lif, inputs)
    x = _conv(ctx, f"{name}.conv", m.conv, [x])
    return x if m.bn is None else _seq_bn(ctx, f"{name}.bn", m.bn, [x])


@handles(SpikeDetect)
def _spike_detect(ctx: TraceContext, name: str, m: SpikeDetect, inputs: list[str]) -> str:
    if len(inputs) != m.nl:
        raise TraceError(f"{name} (SpikeDetect): expects {m.nl} inputs, got {len(inputs)}")
    readouts = []
    for i, src in enumerate(inputs):  # the official call order: cv2.0, cv3.0, cv2.1, ...
        branches = []
        for branch in ("cv2", "cv3"):
            x = src
            for j, layer in enumerate(getattr(m, branch)[i]):
                x = _spike_conv(ctx, f"{name}.{branch}.{i}.{j}", layer, [x])
            branches.append(x)
        raw = ctx.add(f"{name}.cat.{i}", Concat(), branches, module=name, scale=i)  # box bins, then classes
        readouts.append(ctx.add(f"{name}.readout.{i}", Readout(), [raw], module=name, scale=i))
    op = DFLDecode(m.nc, tuple(m.strides), m.reg_max)
    decode = ctx.add(f"{name}.decode", op, readouts, module=name, **_meta(m))
    ctx.outputs += [*readouts, decode]
    return decode


@handles(LIFModule)
def _lif(ctx: TraceContext, name: str, m: LIFModule, inputs: list[str]) -> str:
    return ctx.add(name, LIF(m.tau, m.v_th), inputs, module=name, surrogate_width=m.surrogate_width, **_meta(m))


@handles(SiLUModule)
def _silu(ctx: TraceContext, name: str, m: SiLUModule, inputs: list[str]) -> str:
    return ctx.add(name, SiLUNeuron(m.tau, m.inplace), inputs, module=name, **_meta(m))


@handles(SeqMaxPool2d)
def _maxpool(ctx: TraceContext, name: str, m: SeqMaxPool2d, inputs: list[str]) -> str:
    if m.stride == 1:  # MaxPool(1) is the identity; no node
        return inputs[0]
    return ctx.add(name, MaxPool2d(m.stride), inputs, module=name, **_meta(m))


@handles(Sample)
def _sample(ctx: TraceContext, name: str, m: Sample, inputs: list[str]) -> str:
    return ctx.add(name, Upsample(m.scale_factor), inputs, module=name, **_meta(m))


@handles(ConcatModule)
def _concat(ctx: TraceContext, name: str, m: ConcatModule, inputs: list[str]) -> str:
    return ctx.add(name, Concat(), inputs, module=name, **_meta(m))


@handles(Detect)
def _detect(ctx: TraceContext, name: str, m: Detect, inputs: list[str]) -> str:
    if len(inputs) != m.nl:
        raise TraceError(f"{name} (Detect): expects {m.nl} inputs, got {len(inputs)}")
    readouts = []
    for i, (conv, src) in enumerate(zip(m.m, inputs)):
        head = _conv(ctx, f"{name}.m.{i}", conv, [src])
        readouts.append(ctx.add(f"{name}.readout.{i}", Readout(), [head], module=name, scale=i))
    op = Decode(m.nc, _np(m.anchors), tuple(float(s) for s in m.stride.tolist()))
    decode = ctx.add(f"{name}.decode", op, readouts, module=name, **_meta(m))
    ctx.outputs += [*readouts, decode]
    return decode


@handles_function(operator.add, torch.add, label="add")
def _add(ctx: TraceContext, name: str, args: tuple, kwargs: dict, inputs: list[str]) -> str:
    if kwargs or len(inputs) != 2 or len(args) != 2:
        raise TraceError(f"{name}: only a plain sum of two tensors maps to Add, got args {args} {kwargs}")
    return ctx.add(name, Add(), inputs, function="add")


@handles_function(torch.cat, label="cat")
def _cat(ctx: TraceContext, name: str, args: tuple, kwargs: dict, inputs: list[str]) -> str:
    dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
    if dim not in (2, -3):
        raise TraceError(f"{name}: torch.cat on dim {dim}; only the channel axis (2 of [T, B, C, H, W]) is supported")
    return ctx.add(name, Concat(), inputs, function="cat")


LEAF_TYPES: tuple[type, ...] = tuple(MODULE_HANDLERS)
