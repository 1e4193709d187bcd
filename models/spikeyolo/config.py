"""SpikeYOLO configs: the official ``snn_yolov8.yaml`` rows, parsed without ``eval``.

The official parser (``ultralytics/nn/tasks.py`` ``parse_model``) scales each module's width
by its own rule, which :data:`SPIKE_MODULES` states per module; ``scale`` picks
``[depth, width, max_channels]`` from ``scales``. The shipped names ``spikeyolo-n/s/m/l`` are
the official file at that scale, with layer 25 widened to ``MS_ConvBlock [2, 7]`` for m and l as
the official comments say. Optional keys (official defaults): ``decay`` 0.25, ``levels`` (D) 4,
``bn_eps`` 1e-3; T is ``MS_GetT``'s second argument.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..config import (
    ConfigError,
    LayerSpec,
    Row,
    _bounded,
    _make_divisible,
    checked_nc,
    concat_row,
    load_config,
    parse_rows,
)
from ..layers import Sample
from .blocks import AllConvBlock, ConvBlock, DownSampling, GetT, ILIFParams, SpikeConv, SpikeSPPF
from .head import SpikeDetect

__all__ = [
    "SCALES",
    "SPIKE_MODULES",
    "ParsedSpikeYOLO",
    "builtin_spikeyolo_configs",
    "is_spikeyolo_config",
    "parse_spikeyolo",
    "spikeyolo_config",
]

CONFIG_FILE = Path(__file__).parent / "configs" / "snn_yolov8.yaml"
SCALES = ("n", "s", "m", "l")
WIDER_LAST_BLOCK = {"m", "l"}  # layer 25 becomes MS_ConvBlock [2, 7] (official yaml comments)
LAST_BLOCK_ROW = 25


def is_spikeyolo_config(cfg: Any) -> bool:
    """A config is SpikeYOLO's when its last row is the ``SpikeDetect`` head."""
    try:
        return cfg["head"][-1][2] == "SpikeDetect"
    except (TypeError, KeyError, IndexError):
        return False


def builtin_spikeyolo_configs() -> list[str]:
    return [f"spikeyolo-{s}" for s in SCALES]


def spikeyolo_config(name: str) -> dict:
    """The config dict of a shipped name (``spikeyolo-n`` … ``spikeyolo-l``, or just the scale)."""
    scale = name.removeprefix("spikeyolo-")
    if scale not in SCALES:
        raise ConfigError(f"unknown SpikeYOLO config {name!r}; shipped: {', '.join(builtin_spikeyolo_configs())}")
    cfg = load_config(CONFIG_FILE)
    cfg["scale"] = scale
    if scale in WIDER_LAST_BLOCK:
        rows = cfg["backbone"] + cfg["head"]
        row = rows[LAST_BLOCK_ROW]
        cfg["head"][LAST_BLOCK_ROW - len(cfg["backbone"])] = [row[0], row[1], row[2], [2, 7]]
    cfg["yaml_file"] = f"snn_yolov8{scale}.yaml"
    return cfg


@dataclass(frozen=True)
class SpikeModule:
    """How one official module name is built: ``build(c_in, args, scaling, params) -> (module, c_out, stride)``."""

    build: Callable[..., tuple[nn.Module, int, float]]
    description: str


@dataclass(frozen=True)
class Scaling:
    depth: float
    width: float
    max_channels: float


def _ints(name: str, args: list, n: int, what: str) -> list[int]:
    vals = args[:n]
    if len(args) < n or not all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        raise ConfigError(f"{name}: expected {what}, got {args}")
    return [int(v) for v in vals]


def _getT(c1, args, sc, params):
    if not (len(args) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in args)) or args[1] < 1:
        raise ConfigError(f"MS_GetT: expected [channels, T >= 1], got {args}")
    return GetT(), int(args[0]), 1.0


def _downsampling(c1, args, sc, params):
    c2, k, s, p = _ints("MS_DownSampling", args, 4, "[c_out, k, s, p, first]")
    first = args[4] if len(args) > 4 else True
    if not isinstance(first, bool) or len(args) > 5:
        raise ConfigError(f"MS_DownSampling: expected [c_out, k, s, p, first] with first true/false, got {args}")
    c2 = int(c2 * sc.width)
    _bounded("channels", c2, f"MS_DownSampling width {args[0]} x {sc.width}")
    return DownSampling(c1, c2, k, s, p, first, params), c2, float(s)


def _block(cls):
    def build(c1, args, sc, params):
        ratio = args[0] if args else 4
        k = args[1] if len(args) > 1 else 7
        if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0 < ratio <= 16:
            raise ConfigError(f"{cls.__name__}: mlp_ratio must be a number in (0, 16], got {args}")
        if not isinstance(k, int) or k < 1 or k % 2 == 0 or len(args) > 2:
            raise ConfigError(f"{cls.__name__}: expected [mlp_ratio, odd kernel size], got {args}")
        _bounded("channels", int(c1 * ratio), f"{cls.__name__} hidden width {c1} x {ratio}")
        return cls(c1, ratio, k, params), c1, 1.0

    return build


def _standard_conv(c1, args, sc, params):
    if not 1 <= len(args) <= 3 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in args):
        raise ConfigError(f"MS_StandardConv: expected [c_out, k=1, s=1] of positive integers, got {args}")
    c2, k, s = [*args, 1, 1][:3]
    c2 = min(int(c2 * sc.width), int(sc.max_channels * sc.width))
    _bounded("channels", c2, f"MS_StandardConv width {args[0]} x {sc.width}")
    return SpikeConv(c1, c2, k, s, params), c2, float(s)


def _sppf(c1, args, sc, params):
    c2 = _ints("SpikeSPPF", args, 1, "[c_out, k]")[0]
    k = args[1] if len(args) > 1 else 5
    if not isinstance(k, int) or k < 1 or k % 2 == 0 or len(args) > 2:
        raise ConfigError(f"SpikeSPPF: expected [c_out, odd kernel size], got {args}")
    c2 = _make_divisible(min(c2, sc.max_channels) * sc.width, 8)
    _bounded("channels", c2, f"SpikeSPPF width {args[0]} x {sc.width}")
    return SpikeSPPF(c1, c2, k, params), c2, 1.0


_TUPLE = re.compile(r"^\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)$")


def _upsample(c1, args, sc, params):
    size, scale, mode = [*args, *[None, None, "nearest"][len(args) :]] if len(args) <= 3 else (None, None, None)
    found = _TUPLE.match(scale) if isinstance(scale, str) else None
    if found is not None:
        t, h, w = (int(v) for v in found.groups())
        scale = h if (t, h) == (1, w) else None
    if size not in (None, "None") or mode != "nearest" or not isinstance(scale, int) or scale < 1:
        raise ConfigError(f"nn.Upsample: supported is [None, '(1,k,k)', 'nearest'] with integer k, got {args}")
    _bounded("upsample_factor", scale, f"nn.Upsample factor {scale}")
    return Sample(scale), c1, 1.0 / scale


SPIKE_MODULES: dict[str, SpikeModule] = {
    "MS_GetT": SpikeModule(_getT, "the image repeated T times (args [channels, T])"),
    "MS_DownSampling": SpikeModule(_downsampling, "[LIF] → conv(k, s, p) with bias → BN; width int(c·w)"),
    "MS_AllConvBlock": SpikeModule(_block(AllConvBlock), "x + SepConv(x), then + two 3×3 spiking convs"),
    "MS_ConvBlock": SpikeModule(_block(ConvBlock), "x + SepConv(x), then + two RepConvs with LIF and BN"),
    "MS_StandardConv": SpikeModule(_standard_conv, "LIF → conv(k, s) → BN; width min(c, max)·w"),
    "SpikeSPPF": SpikeModule(_sppf, "SPPF: LIF → 1×1 → BN, three 5×5 max-pools of currents, LIF → 1×1 → BN"),
    "nn.Upsample": SpikeModule(_upsample, "nearest upsampling by an integer factor in H and W"),
    "Concat": SpikeModule(None, "channel concat in `from` order"),  # type: ignore[arg-type]
    "SpikeDetect": SpikeModule(None, "anchor-free head: box (DFL) and class branches, mean over T"),  # type: ignore[arg-type]
}


@dataclass
class ParsedSpikeYOLO:
    layers: list[LayerSpec]
    params: ILIFParams
    time_steps: int
    scale: str | None


def _scaling(cfg: dict) -> tuple[Scaling, str | None]:
    scales = cfg.get("scales")
    if scales is None:
        gd, gw = cfg.get("depth_multiple", 1.0), cfg.get("width_multiple", 1.0)
        for key, v in (("depth_multiple", gd), ("width_multiple", gw)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v <= 16:
                raise ConfigError(f"{key} must be a number in (0, 16], got {v!r}")
        return Scaling(float(gd), float(gw), math.inf), None
    scale = cfg.get("scale")
    if not isinstance(scales, dict) or not scales:
        raise ConfigError("scales must map a scale name to [depth, width, max_channels]")
    if scale not in scales:
        raise ConfigError(f"config scale {scale!r} is not one of its scales: {', '.join(map(str, scales))}")
    row = scales[scale]
    if not (
        isinstance(row, list)
        and len(row) == 3
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in row)
        and row[0] <= 16
        and row[1] <= 16
    ):
        raise ConfigError(f"scales[{scale!r}] must be [depth, width, max_channels] of positive numbers, got {row!r}")
    return Scaling(float(row[0]), float(row[1]), float(row[2])), str(scale)


def _resolve(a: Any, nc: int) -> Any:
    """The official parser ``eval``s string args; we accept exactly the names it uses."""
    if not isinstance(a, str):
        return a
    return {"nc": nc, "None": None, "True": True, "False": False}.get(a, a)


def parse_spikeyolo(cfg: dict, ch: int | None = None) -> ParsedSpikeYOLO:
    """Build the layers of a SpikeYOLO config dict; :class:`ConfigError` names the failing row."""
    cfg = copy.deepcopy(cfg)
    nc = checked_nc(cfg, ("nc", "backbone", "head"), "nc, backbone, head, and scales + scale")
    sc, scale = _scaling(cfg)
    params = ILIFParams(cfg.get("decay", 0.25), cfg.get("levels", 4), cfg.get("bn_eps", 1e-3))
    if not (0 <= params.decay <= 1 and 1 <= params.levels <= 255 and 0 < params.bn_eps < 1):
        raise ConfigError(
            f"decay must be in [0, 1], levels in [1, 255], bn_eps in (0, 1); got {params.decay}, "
            f"{params.levels}, {params.bn_eps}"
        )
    in_ch = int(ch if ch is not None else cfg.get("ch", 3))
    rows = list(cfg["backbone"]) + list(cfg["head"])
    time_steps = 1

    def build(r: Row) -> tuple[nn.Module, int, float]:
        nonlocal time_steps
        where, name, args, n = r.where, r.name, r.args, r.n
        if (name == "MS_GetT") != (r.i == 0):
            raise ConfigError(f"{where}: MS_GetT must be layer 0, and only layer 0")
        if name == "Concat":
            return concat_row(r)
        if name == "SpikeDetect":
            if r.i != len(rows) - 1 or args[:1] != [nc] or len(args) > 2:
                raise ConfigError(f"{where}: SpikeDetect must be the last row with args [nc], got {args}")
            return SpikeDetect(nc, r.c_ins, r.s_ins, params), 0, 0.0
        built = [SPIKE_MODULES[name].build(r.c_ins[0], args, sc, params) for _ in range(n)]
        c2, step = built[0][1], built[0][2]
        if n > 1 and c2 != r.c_ins[0]:
            raise ConfigError(f"{where}: {name} repeated {n}× must keep its width, but it maps {r.c_ins[0]} -> {c2}")
        if name == "MS_GetT":
            time_steps = int(args[1])
        return (nn.Sequential(*(m for m, _, _ in built)) if n > 1 else built[0][0]), c2, r.s_ins[0] * step

    specs = parse_rows(rows, in_ch, SPIKE_MODULES, sc.depth, lambda a: _resolve(a, nc), build)
    if not specs or specs[-1].module_name != "SpikeDetect":
        raise ConfigError("the last layer of a SpikeYOLO config must be SpikeDetect")
    return ParsedSpikeYOLO(specs, params, time_steps, scale)
