"""fold_affine: conv+BN pairs become one conv; results unchanged (float64); other Affines kept."""

import numpy as np
import torch

from emsdeploy.ir import LIF, Add, Affine, Conv2d, Graph, Input, Readout
from emsdeploy.passes import fold_affine
from emsdeploy.simulators import RefFloat
from emsdeploy.tracer import trace
from tests.helpers import tiny_ee
from tests.tolerances import FLOAT64_REFORMED


def test_folds_every_conv_bn_pair_and_keeps_results():
    graph = trace(tiny_ee(), (32, 32))
    folded = fold_affine(graph)
    assert not folded.of_type(Affine)
    assert len(folded) == len(graph) - len(graph.of_type(Affine))
    conv = folded["model.1.residual_function.1"]
    assert conv.meta["folded"] == ["model.1.residual_function.2"] and conv.op.bias is not None
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    a = RefFloat(graph, torch.float64).run(x, record="neurons")
    b = RefFloat(folded, torch.float64).run(x, record="neurons")
    for n in graph.of_type(LIF):
        assert torch.equal(a.records[n.name]["s"], b.records[n.name]["s"]), n.name
    torch.testing.assert_close(a.outputs[graph.outputs[-1]], b.outputs[folded.outputs[-1]], **FLOAT64_REFORMED)
    assert len(graph.of_type(Affine)) > 0  # the input graph is untouched


def _graph(shared_conv: bool) -> Graph:
    g = Graph({"time_steps": 1})
    g.add("input", Input((2, 4, 4)))
    g.add("conv", Conv2d(np.ones((2, 2, 1, 1)), np.array([1.0, 2.0])), ["input"])
    g.add("bn", Affine(np.array([2.0, 3.0]), np.array([0.5, -1.0])), ["conv"])
    g.add("sum", Add(), ["bn", "conv" if shared_conv else "bn"])
    g.add("bn2", Affine(np.array([1.0, 1.0]), np.array([0.0, 0.0])), ["sum"])
    g.add("lif", LIF(), ["bn2"])
    g.add("ro", Readout(), ["bn2"])
    g.outputs = ["ro", "lif"]
    return g.validate()


def test_fold_arithmetic_and_what_is_not_folded():
    g = fold_affine(_graph(shared_conv=False))
    conv = g["conv"].op
    np.testing.assert_array_equal(conv.weight[:, :, 0, 0], [[2.0, 2.0], [3.0, 3.0]])
    np.testing.assert_array_equal(conv.bias, [2.5, 5.0])  # a·b + c
    assert "bn2" in g  # after an Add: nothing to fold into
    shared = fold_affine(_graph(shared_conv=True))
    assert "bn" in shared  # the conv has another reader: folding would change it
