"""remove_dead keeps exactly the ancestors of the outputs."""

import numpy as np

from emsdeploy.ir import LIF, Conv2d, Graph, Input, Readout
from emsdeploy.passes import remove_dead


def test_unreachable_nodes_go():
    g = Graph({"time_steps": 1})
    g.add("input", Input((1, 2, 2)))
    g.add("conv", Conv2d(np.ones((1, 1, 1, 1))), ["input"])
    g.add("lif", LIF(), ["conv"])
    g.add("orphan", LIF(), ["conv"])
    g.add("ro", Readout(), ["conv"])
    g.outputs = ["ro"]
    out = remove_dead(g.validate())
    assert out.names() == ["input", "conv", "ro"]
    assert g.names() == ["input", "conv", "lif", "orphan", "ro"]
