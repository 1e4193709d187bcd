"""Hand-sized networks for the fit tests: host stem -> LIF "a" -> conv -> LIF "b" -> 1×1 -> readout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emsdeploy.ir import LIF, Conv2d, Graph, Input, Readout
from tests.loihi_cases import lowered

CHIPS = Path(__file__).resolve().parents[2] / "emsdeploy" / "profiles" / "chips"


def two_layers(c_in: int, c_out: int, size: int | tuple[int, int], k: int = 3, seed: int = 0) -> Graph:
    """Quantized graph whose population ``b`` (c_out × H × W) reads ``a`` (c_in × H × W) through a
    k×k conv (padding k//2): ``b`` has c_out·H·W neurons and fan-in c_in·k·k."""
    h, w = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    g = Graph({"time_steps": 2, "dt": 1, "reset": "hard-zero"})
    g.add("input", Input((3, h, w), "direct"))
    g.add("stem", Conv2d(rng.normal(0, 1.0, (c_in, 3, 1, 1)), rng.normal(0.3, 0.2, c_in), 1, 0), ["input"])
    g.add("a", LIF(), ["stem"])
    g.add("conv", Conv2d(rng.normal(0, 1.5 / np.sqrt(c_in * k * k), (c_out, c_in, k, k)), None, 1, k // 2), ["a"])
    g.add("b", LIF(), ["conv"])
    g.add("head", Conv2d(rng.normal(0, 0.5, (2, c_out, 1, 1)), None, 1, 0), ["b"])
    g.add("ro", Readout(), ["head"])
    g.outputs = ["ro"]
    return lowered(g.validate())


def chip_file(tmp_path: Path, base: str = "loihi1", **changes: object) -> Path:
    """A user chip file: the shipped ``base`` with ``section.key = value`` changes."""
    text = (CHIPS / f"{base}.toml").read_text()
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        head = f"[{section}.{key}]\nvalue = "
        start = text.index(head) + len(head)
        end = text.index("\n", start)
        lit = str(value).lower() if isinstance(value, bool) else str(value)
        text = text[:start] + lit + text[end:]
    path = tmp_path / "mychip.toml"
    path.write_text(text.replace('name = "loihi1"', 'name = "mychip"'))
    return path


@pytest.fixture
def make_chip(tmp_path):
    return lambda base="loihi1", **changes: chip_file(tmp_path, base, **changes)
