"""emsdeploy.ir.fixed_point: the one home of the fixed-point population steps (hand-computed
values here; the LIF against lava-nc's own model in tests/simulators/test_ref_fixed.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import torch

from emsdeploy.ir import fixed_point
from emsdeploy.ir.fixed_point import maxpool_step, trunc_shift, wrap
from emsdeploy.ir.ops.loihi import FixedMaxPool
from tests.loihi_cases import lowered, mixed_graph

REPO = Path(__file__).resolve().parents[2]
FIXED_POINT = REPO / "emsdeploy" / "ir" / "fixed_point.py"


def test_maxpool_step_by_hand():
    """k = 2 over a 5×4 input (the odd last row fills no window and is dropped), a bias, then
    (z + 2**(r-1)) >> r: a floor shift, so -3 rounds to -1 and 5 to 3."""
    a = np.array([[[1, 2, -9, -8], [3, 4, -7, -6], [0, 0, 5, 0], [0, -9, 0, 0], [99, 99, 99, 99]]])
    bias = np.zeros((1, 5, 4), np.int32)
    bias[0, 0, 0] = 10  # 1 + 10 = 11 wins its window
    out = maxpool_step(FixedMaxPool(bias, 2), a)
    assert out.tolist() == [[[11, -6], [0, 5]]]
    halved = maxpool_step(FixedMaxPool(bias, 2, out_shift_u5=1), a[None])  # any leading axes
    assert halved.shape == (1, 1, 2, 2) and halved.tolist() == [[[[6, -3], [0, 3]]]]
    assert (
        maxpool_step(FixedMaxPool(np.zeros((1, 2, 2), np.int32), 2, out_shift_u5=1), [[[-3, -5], [-4, -6]]]).item()
        == -1
    )


def test_maxpool_step_with_stride_and_padding_is_torchs():
    """SpikeYOLO's SPPF pool (k 5, stride 1, padding 2) and a strided padded one: padded taps never
    win, even when every real value is negative (PyTorch pads with -inf)."""
    rng = np.random.default_rng(0)
    for k, s, p, shape in ((5, 1, 2, (3, 7, 6)), (3, 2, 1, (2, 9, 8))):
        a = rng.integers(-(2**20), 2**20, shape)
        bias = rng.integers(-1000, 0, shape).astype(np.int32)
        want = torch.nn.functional.max_pool2d(torch.from_numpy(a + bias).double()[None], k, s, p)[0]
        out = maxpool_step(FixedMaxPool(bias, k, stride=s, padding=p), a)
        assert out.tolist() == want.long().tolist()


def test_trunc_shift_and_wrap():
    x = np.array([-4097, -4096, -1, 0, 1, 4095, 4096, 8191])
    assert trunc_shift(x, 12).tolist() == [-1, -1, 0, 0, 0, 0, 1, 1]  # toward zero, not floor
    assert wrap([2**23, -(2**23) - 1, 5, 2**24 + 3], 24).tolist() == [-(2**23), 2**23 - 1, 5, 3]


def _strided(node: ast.AST) -> bool:
    """A subscript with a stepped slice, ``z[..., i::k, j::k]``: one offset of a k×k window."""
    return isinstance(node, ast.Subscript) and any(
        isinstance(s, ast.Slice) and s.step is not None for s in ast.walk(node.slice)
    )


def _window_maxes(tree: ast.AST) -> list[int]:
    """Lines that compute a windowed max: a max over two axes at once (``.max(axis=(..))``,
    ``.amax(dim=(..))``, ``np.max(x, axis=(..))``: the reshaped k×k pooling), or an elementwise
    ``maximum`` of strided views (the same max, window offset by window offset)."""
    lines = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr in ("max", "amax"):
            axes = [k.value for k in node.keywords if k.arg in ("axis", "dim")] + node.args[1:2]
            if any(isinstance(a, ast.Tuple) and len(a.elts) == 2 for a in axes):
                lines.append(node.lineno)
        elif node.func.attr in ("maximum", "fmax") and any(_strided(a) for a in node.args):
            lines.append(node.lineno)
    return lines


def test_one_fixed_point_max_pool():
    """The windowed integer max is written once, in fixed_point.maxpool_step: no other module of
    the project computes one, and ref-fixed and the Lava ProcessModel import that function."""
    found = {}
    for folder in ("emsdeploy", "simulators", "exporters", "models"):
        for path in sorted((REPO / folder).rglob("*.py")):
            lines = _window_maxes(ast.parse(path.read_text(encoding="utf-8")))
            if lines:
                found[str(path.relative_to(REPO))] = lines
    assert list(found) == ["emsdeploy/ir/fixed_point.py"], found
    probe = "y = z.reshape(2, 2, 2, 2).max(axis=(1, 3))\nw = np.max(z, axis=(0, 1))\nv = np.maximum(y, z[:, 1::2])\n"
    assert _window_maxes(ast.parse(probe + "u = np.maximum(a[i], a[rest])\nt = x.max(axis=1)")) == [1, 2, 3]

    def imports_from_fixed_point(path: Path) -> set[str]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "emsdeploy.ir.fixed_point":
                names |= {a.name for a in node.names}
            if (
                isinstance(node, ast.ImportFrom)
                and node.module == "emsdeploy.ir"
                and any(a.name == "fixed_point" for a in node.names)
            ):
                names.add("fixed_point")
        return names

    assert "maxpool_step" in imports_from_fixed_point(REPO / "exporters" / "lava" / "procs" / "processes.py")
    assert "fixed_point" in imports_from_fixed_point(REPO / "simulators" / "ref_fixed.py")


def test_ref_fixed_runs_the_shared_max_pool(monkeypatch):
    """ref-fixed's max-pool population calls fixed_point.maxpool_step (and nothing else pools)."""
    from emsdeploy.simulators.ref_fixed import RefFixed

    calls = []
    real = fixed_point.maxpool_step

    def counting(op, a):
        calls.append(op)
        return real(op, a)

    q = lowered(mixed_graph(seed=1))
    n_pools = sum(isinstance(n.op, FixedMaxPool) for n in q)
    assert n_pools >= 1
    monkeypatch.setattr(fixed_point, "maxpool_step", counting)
    RefFixed(q).run(torch.rand(1, 3, 16, 16))
    assert len(calls) == n_pools * q.time_steps
