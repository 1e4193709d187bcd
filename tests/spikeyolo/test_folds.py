"""fold_affine chains and fold_convs: SpikeYOLO's RepConv / SepRepConv + BN become one 3×3 conv."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emsdeploy.ir import Affine, Conv2d, Graph, Input, IntegerLIF, Readout
from emsdeploy.passes import fold_affine, fold_convs, run_flow
from emsdeploy.passes.fold_convs import compose_convs
from emsdeploy.simulators.ref_float import RefFloat

RNG = np.random.default_rng(5)


def _w(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape)


def _run(op: Conv2d, x: torch.Tensor) -> torch.Tensor:
    b = None if op.bias is None else torch.tensor(op.bias, dtype=torch.float64)
    w = torch.tensor(op.weight, dtype=torch.float64)
    return F.conv2d(x, w, b, op.stride, op.padding, op.dilation, op.groups)


CASES = {
    "pointwise then padded 3x3 (A bias-free)": (Conv2d(_w(6, 4, 1, 1)), Conv2d(_w(5, 6, 3, 3), _w(5), 1, 1)),
    "pointwise with bias then unpadded strided 3x3": (Conv2d(_w(6, 4, 1, 1), _w(6)), Conv2d(_w(5, 6, 3, 3), None, 2)),
    "padded depthwise then pointwise": (Conv2d(_w(4, 1, 3, 3), _w(4), 1, 1, groups=4), Conv2d(_w(5, 4, 1, 1), _w(5))),
    "padded 3x3 then unpadded depthwise 3x3": (
        Conv2d(_w(4, 4, 3, 3), _w(4), 1, 1),
        Conv2d(_w(4, 1, 3, 3), None, groups=4),
    ),
    "BN-and-pad (depthwise 1x1, pad 1) then 3x3": (
        Conv2d(_w(4, 1, 1, 1), _w(4), 1, 1, groups=4),
        Conv2d(_w(3, 4, 3, 3)),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_compose_is_exact(name: str) -> None:
    a, b = CASES[name]
    op = compose_convs(a, b)
    assert op is not None
    x = torch.randn(2, a.in_channels, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(_run(op, x), _run(b, _run(a, x)), rtol=1e-12, atol=1e-12)


def test_compose_refuses_what_is_not_exact() -> None:
    # a pointwise conv with a bias under B's zero border: the border would see b_A, not 0
    assert compose_convs(Conv2d(_w(4, 4, 1, 1), _w(4)), Conv2d(_w(4, 4, 3, 3), None, 1, 1)) is None
    # a strided A under a 3x3 B
    assert compose_convs(Conv2d(_w(4, 4, 3, 3), None, 2, 1), Conv2d(_w(4, 4, 3, 3))) is None


def _repconv(c1: int = 6, c2: int = 5) -> Graph:
    """I-LIF spikes into RepConv (1×1 → BN-and-pad → dw 3×3 pad 0 → 1×1 → BN) and the block's BN."""
    g = Graph({"time_steps": 2})
    g.add("input", Input((c1, 8, 8)))
    g.add("lif", IntegerLIF(0.25, 4), ["input"])
    g.add("rep.0", Conv2d(_w(c1, c1, 1, 1).astype(np.float32)), ["lif"])
    g.add("rep.pad", Conv2d(np.ones((c1, 1, 1, 1), np.float32), None, 1, 1, groups=c1), ["rep.0"])
    g.add("rep.padbn", Affine(RNG.uniform(0.5, 1.5, c1), RNG.uniform(-1, 1, c1)), ["rep.pad"])
    g.add("rep.dw", Conv2d(_w(c1, 1, 3, 3).astype(np.float32), None, 1, 0, groups=c1), ["rep.padbn"])
    g.add("rep.pw", Conv2d(_w(c2, c1, 1, 1).astype(np.float32)), ["rep.dw"])
    g.add("rep.bn", Affine(RNG.uniform(0.5, 1.5, c2), RNG.uniform(-1, 1, c2)), ["rep.pw"])
    g.add("bn1", Affine(RNG.uniform(0.5, 1.5, c2), RNG.uniform(-1, 1, c2)), ["rep.bn"])
    g.add("lif2", IntegerLIF(0.25, 4), ["bn1"])
    g.add("readout", Readout(), ["bn1"])
    g.outputs = ["readout"]
    return g.validate()


def test_repconv_folds_into_one_padded_3x3() -> None:
    g = _repconv()
    folded = fold_convs(fold_affine(g))
    convs = folded.of_type(Conv2d)
    assert len(convs) == 1 and not folded.of_type(Affine)
    op = convs[0].op
    assert op.kernel_size == (3, 3) and op.padding == (1, 1) and op.groups == 1 and op.bias is not None
    assert convs[0].name == "rep.pw" and set(convs[0].meta["folded"]) >= {"rep.0", "rep.pad", "rep.dw"}
    x = torch.rand(2, 6, 8, 8, dtype=torch.float64) * 5
    ref = RefFloat(g, torch.float64).run(x, record="neurons")
    out = RefFloat(folded, torch.float64).run(x, record="neurons")
    torch.testing.assert_close(out.outputs["readout"], ref.outputs["readout"], rtol=1e-10, atol=1e-10)
    assert torch.equal(out.records["lif2"]["s"], ref.records["lif2"]["s"])
    simplified = run_flow(g, "simplify")
    assert len(simplified.of_type(Conv2d)) == 1
