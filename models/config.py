"""YOLOv5-style model configs: ``[from, number, module, args]`` rows, parsed without ``eval``.

The official EMS-YOLO YAML files parse unchanged. Module names are the official class names;
:data:`MODULES` maps each to the builder that makes our module and states what it is.
Optional keys beyond the official format (all with the official defaults):
``tau``, ``v_th``, ``surrogate_width``, ``silu_inplace``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from emsdeploy.errors import EmsdeployError
from emsdeploy.fileio import check_limit, read_text

from .blocks import ConvSiLU, EMSBlock2, MSBlock, NeuronParams, Stem
from .detect import Detect
from .layers import Concat, Sample

__all__ = [
    "MODULES",
    "ConfigError",
    "LayerSpec",
    "Row",
    "builtin_config_path",
    "builtin_configs",
    "checked_nc",
    "concat_row",
    "load_config",
    "parse_config",
    "parse_rows",
]

CONFIG_DIR = Path(__file__).parent / "configs"


class ConfigError(ValueError):
    """A model config that cannot be built; the message names the layer and the rule."""


@dataclass(frozen=True)
class ModuleKind:
    """How one official module name is built: ``build(c_in, c_out, args, neuron)``."""

    build: Callable[..., tuple[nn.Module, int]]  # (the module, its stride)
    description: str
    changes_channels: bool = True  # the first arg is the output width (scaled by width_multiple)


def _conv_args(name: str, args: list) -> tuple[int, int]:
    """Official ``Conv``-style signature: ``[c_out, k=1, s=1, p=None, g=1, act=True]``."""
    rest = args[3:]
    if len(rest) > 3 or any(v != d for v, d in zip(rest, [None, 1, True])):
        raise ConfigError(f"{name}: only the default padding, groups and activation are supported, got {args}")
    k = args[1] if len(args) > 1 else 1
    s = args[2] if len(args) > 2 else 1
    return int(k), int(s)


def _stem(c1, c2, args, neuron):
    k, s = _conv_args("Conv_1/Conv_2", args)
    return Stem(c1, c2, k, s), s


def _conv_silu(c1, c2, args, neuron):
    k, s = _conv_args("Conv", args)
    return ConvSiLU(c1, c2, k, s, neuron), s


def _block_args(name: str, args: list) -> tuple[int, int, float]:
    k = args[1] if len(args) > 1 else 3
    s = args[2] if len(args) > 2 else 1
    e = args[3] if len(args) > 3 else 0.5
    if len(args) > 4:
        raise ConfigError(f"{name}: at most [c_out, k, s, e], got {args}")
    if k not in (1, 3):
        raise ConfigError(f"{name}: kernel size must be 1 or 3 (as in the official code), got {k}")
    return int(k), int(s), float(e)


def _basic2(c1, c2, args, neuron):
    k, s, _ = _block_args("BasicBlock_2", args)
    return MSBlock(c1, c2, k, s, hidden=c2, shortcut_lif=True, neuron=neuron), s


def _basic1(c1, c2, args, neuron):
    if len(args) > 3:
        raise ConfigError(f"BasicBlock_1: at most [c_out, s, e], got {args}")
    s = int(args[1]) if len(args) > 1 else 1
    return MSBlock(c1, c2, 3, s, hidden=1024, shortcut_lif=True, neuron=neuron), s


def _basic_ms(c1, c2, args, neuron):
    k, s, e = _block_args("BasicBlock_ms", args)
    return MSBlock(c1, c2, k, s, hidden=int(c2 * e), shortcut_lif=False, neuron=neuron), s


def _concat_res2(c1, c2, args, neuron):
    k, s, _ = _block_args("Concat_res2", args)
    return EMSBlock2(c1, c2, k, s, hidden=c2, neuron=neuron), s


def _concat_ms(c1, c2, args, neuron):
    k, s, e = _block_args("ConcatBlock_ms", args)
    return EMSBlock2(c1, c2, k, s, hidden=int(c2 * e), neuron=neuron), s


MODULES: dict[str, ModuleKind] = {
    "Conv_1": ModuleKind(_stem, "stem: conv(k, s) → tdBN on the input, no neuron"),
    "Conv_2": ModuleKind(_stem, "stem: conv(k, s) → tdBN on the input, no neuron (-ee configs)"),
    "Conv": ModuleKind(_conv_silu, "conv → tdBN → SiLU neuron (non-spiking head layer)"),
    "BasicBlock_2": ModuleKind(_basic2, "MS-Block (identity) / EMS-Block1 (MaxPool → LIF → conv1×1 → BN shortcut)"),
    "BasicBlock_1": ModuleKind(_basic1, "EMS-Block1 with hidden width 1024, k = 3"),
    "BasicBlock_ms": ModuleKind(_basic_ms, "-ee MS-Block, hidden c_out·e; LIF-less MaxPool → conv1×1 → BN shortcut"),
    "Concat_res2": ModuleKind(_concat_res2, "EMS-Block2: R(x) + MaxPool(cat[LIF → conv1×1 → BN, x])"),
    "ConcatBlock_ms": ModuleKind(_concat_ms, "-ee EMS-Block2, hidden c_out·e"),
    "Sample": ModuleKind(None, "nearest upsampling by an integer factor", changes_channels=False),  # type: ignore[arg-type]
    "Concat": ModuleKind(None, "channel concat in `from` order", changes_channels=False),  # type: ignore[arg-type]
    "Detect": ModuleKind(None, "1×1 conv with bias per scale, mean over T, YOLOv5 decoding", changes_channels=False),  # type: ignore[arg-type]
}


@dataclass
class LayerSpec:
    """One built layer: its index, sources, module and bookkeeping for the next rows."""

    index: int
    source: int | list[int]
    module_name: str
    module: nn.Module
    out_channels: int
    stride: float  # cumulative downsampling of this layer's output w.r.t. the input
    args: list = field(default_factory=list)


def _resolve_arg(a: Any, nc: int, anchors: Any) -> Any:
    """The official parser ``eval``s string args; we accept exactly the names it ever uses."""
    if not isinstance(a, str):
        return a
    table = {"nc": nc, "anchors": anchors, "None": None, "True": True, "False": False}
    return table.get(a, a)


def _make_divisible(x: float, divisor: int = 8) -> int:
    return int(math.ceil(x / divisor) * divisor)


def load_config(path: str | Path) -> dict:
    """Read a YAML config file into a plain dict (safe loader only)."""
    path = Path(path)
    try:
        cfg = yaml.safe_load(read_text(path, error=ConfigError))  # size bounded before reading
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: a model config is a mapping with nc, anchors, backbone and head")
    return cfg


def builtin_configs() -> list[str]:
    """Names of the configs shipped in ``models/configs``."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def builtin_config_path(name: str) -> Path:
    path = CONFIG_DIR / f"{name.removesuffix('.yaml')}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown config {name!r}; shipped configs: {', '.join(builtin_configs())}")
    return path


def neuron_params(cfg: dict) -> NeuronParams:
    return NeuronParams(
        tau=float(cfg.get("tau", 0.25)),
        v_th=float(cfg.get("v_th", 0.5)),
        surrogate_width=float(cfg.get("surrogate_width", 1.0)),
        silu_inplace=bool(cfg.get("silu_inplace", True)),
    )


@dataclass(frozen=True)
class Row:
    """One checked config row: its index, its sources' widths and strides, its repeat count
    (depth-scaled), and its resolved arguments."""

    i: int
    f: Any
    n: int
    name: str
    args: list
    c_ins: list[int]
    s_ins: list[float]
    where: str


def parse_rows(
    rows: list, in_ch: int, modules: Any, depth: float, resolve: Callable[[Any], Any],
    build: Callable[[Row], tuple[nn.Module, int, float]],
) -> list[LayerSpec]:  # fmt: skip
    """Walk ``[from, number, module, args]`` rows (both families' config format): check each row,
    its module name against ``modules``, its ``from`` indices (earlier layers only) and repeat
    count (bounded), build it with ``build`` (module, output width, stride) and name the layer in
    every error."""
    specs: list[LayerSpec] = []
    chans: list[int] = []
    strides: list[float] = []
    for i, row in enumerate(rows):
        where = f"layer {i}"
        if not (isinstance(row, (list, tuple)) and len(row) == 4):
            raise ConfigError(f"{where}: each row is [from, number, module, args], got {row!r}")
        f, n, name, args = row
        if name not in modules:
            raise ConfigError(f"{where}: module {name!r} is not supported. Supported: {', '.join(modules)}")
        args = [resolve(a) for a in (args or [])]
        sources = [f] if isinstance(f, int) else list(f) if isinstance(f, list) else [f]
        for src in sources:
            if not isinstance(src, int) or isinstance(src, bool) or not (-i <= src < i if i else src == -1):
                raise ConfigError(f"{where} ({name}): 'from' index {src!r} does not name an earlier layer")
        abs_src = [(s + i if s < 0 else s) for s in sources]
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigError(f"{where} ({name}): number must be a positive integer, got {n!r}")
        n = max(round(n * depth), 1) if n > 1 else n
        _bounded("repeats", n, f"{where} ({name}): number of repeats")
        c_ins = [in_ch if j < 0 else chans[j] for j in abs_src]
        s_ins = [1.0 if j < 0 else strides[j] for j in abs_src]
        try:
            module, c2, stride = build(Row(i, f, n, name, args, c_ins, s_ins, where))
        except ConfigError as e:
            if str(e).startswith("layer "):
                raise
            raise ConfigError(f"{where}: {e}") from None
        except (TypeError, ValueError, IndexError) as e:
            raise ConfigError(f"{where} ({name} {args}): {e}") from None
        module.i, module.f, module.type = i, f, name  # type: ignore[assignment]
        specs.append(LayerSpec(i, f, name, module, c2, stride, args))
        chans.append(c2)
        strides.append(stride)
    return specs


def concat_row(r: Row) -> tuple[nn.Module, int, float]:
    """A ``Concat`` row (both families): channels only, inputs of one stride."""
    if r.args not in ([2], [-3]):
        raise ConfigError(f"{r.where}: Concat supports only the channel axis (dimension 2), got {r.args}")
    if len(set(r.s_ins)) != 1:
        raise ConfigError(f"{r.where}: Concat inputs have different strides {r.s_ins}")
    return Concat(), sum(r.c_ins), r.s_ins[0]


def checked_nc(cfg: dict, keys: tuple[str, ...], needs: str) -> int:
    """The config's class count, after checking that it has every key in ``keys``."""
    for key in keys:
        if key not in cfg:
            raise ConfigError(f"config has no {key!r} key (needs {needs})")
    nc = cfg["nc"]
    if not isinstance(nc, int) or isinstance(nc, bool) or nc < 1:
        raise ConfigError(f"nc must be a positive integer, got {nc!r}")
    _bounded("classes", nc, "config nc")
    return nc


def parse_config(cfg: dict, ch: int | None = None) -> list[LayerSpec]:
    """Build the layers of a config dict. Raises :class:`ConfigError` naming the failing row."""
    cfg = copy.deepcopy(cfg)
    nc = checked_nc(cfg, ("nc", "anchors", "backbone", "head"), "nc, anchors, backbone, head")
    gd = float(cfg.get("depth_multiple", 1.0))
    gw = float(cfg.get("width_multiple", 1.0))
    anchors = cfg["anchors"]
    na = len(anchors[0]) // 2 if isinstance(anchors, list) else int(anchors)
    no = na * (nc + 5)
    neuron = neuron_params(cfg)
    in_ch = int(ch if ch is not None else cfg.get("ch", 3))

    rows = list(cfg["backbone"]) + list(cfg["head"])

    def build(r: Row) -> tuple[nn.Module, int, float]:
        where, name, args = r.where, r.name, r.args
        if name == "Concat":
            return concat_row(r)
        if name == "Sample":
            size, scale, mode = (args + [None, None, "nearest"][len(args) :])[:3]
            if size is not None or mode != "nearest" or not isinstance(scale, int) or scale < 1:
                raise ConfigError(f"{where}: Sample supports [None, k, 'nearest'] with integer k, got {args}")
            _bounded("upsample_factor", scale, f"{where}: Sample factor")
            return Sample(scale), r.c_ins[0], r.s_ins[0] / scale
        if name == "Detect":
            det_nc, det_anchors = args[0], args[1]
            if isinstance(det_anchors, int):
                det_anchors = [list(range(det_anchors * 2))] * len(r.c_ins)
            if len(det_anchors) != len(r.c_ins):
                raise ConfigError(f"{where}: Detect has {len(r.c_ins)} inputs but {len(det_anchors)} anchor sets")
            return Detect(det_nc, det_anchors, r.c_ins, list(r.s_ins)), no, 0.0
        c2 = make_c2(args, no, gw)
        if r.n > 1 and r.c_ins[0] != c2:
            raise ConfigError(f"{where}: {name} repeated {r.n}× must keep its width, but it maps {r.c_ins[0]} -> {c2}")
        if c2 < 1:
            raise ConfigError(f"{where} ({name}): output width must be positive, got {c2}")
        if c2 != no:
            _bounded("channels", c2, f"{where} ({name}): output width {args[0]} x width_multiple {gw}")
        built = [MODULES[name].build(r.c_ins[0], c2, args, neuron) for _ in range(r.n)]
        mods = [m for m, _ in built]
        return (nn.Sequential(*mods) if r.n > 1 else mods[0]), c2, r.s_ins[0] * built[0][1]

    specs = parse_rows(rows, in_ch, MODULES, gd, lambda a: _resolve_arg(a, nc, anchors), build)
    if not specs or specs[-1].module_name != "Detect":
        raise ConfigError("the last layer of a config must be Detect")
    return specs


def _bounded(name: str, value: int, what: str) -> None:
    """A size from the config within its named limit, checked before any module is built."""
    try:
        check_limit(name, value, what)
    except EmsdeployError as e:
        raise ConfigError(str(e)) from None


def make_c2(args: list, no: int, gw: float) -> int:
    if not args or not isinstance(args[0], int):
        raise ConfigError(f"the first argument must be the output width, got {args}")
    c2 = args[0]
    return _make_divisible(c2 * gw, 8) if c2 != no else c2
