"""Graph invariants (DESIGN.md §6): acyclic, shapes consistent, kinds accepted, errors name the node."""

import numpy as np
import pytest

from emsdeploy.errors import IRValidationError
from emsdeploy.ir import LIF, Add, Conv2d, Decode, Graph, Input, Kind, Readout


def small_graph() -> Graph:
    g = Graph({"time_steps": 2})
    g.add("input", Input((2, 4, 4)))
    g.add("conv", Conv2d(np.ones((3, 2, 1, 1), np.float32)), ["input"])
    g.add("lif", LIF(), ["conv"])
    g.add("head", Conv2d(np.ones((7 * 3, 3, 1, 1), np.float32), np.zeros(21, np.float32)), ["lif"])
    g.add("ro", Readout(), ["head"])
    g.add("dec", Decode(2, np.ones((1, 3, 2)), (4,)), ["ro"])
    g.outputs = ["ro", "dec"]
    return g.validate()


def test_shapes_kinds_and_queries():
    g = small_graph()
    assert g.shape("lif") == (3, 4, 4) and g.kind("lif") == Kind.SPIKE
    assert g.kind("conv") == Kind.CURRENT and g.shape("dec") == (48, 7)
    assert [n.name for n in g.consumers("lif")] == ["head"]
    assert g.users()["conv"] == ["lif"]
    assert g.input_node().name == "input"


def test_a_lif_fed_by_spikes_is_refused_with_the_node_name():
    g = small_graph()
    g.add("bad", LIF(), ["lif"])
    with pytest.raises(IRValidationError, match=r"bad \(LIF\): LIF does not accept spike inputs"):
        g.validate()


def test_shape_mismatch_names_the_node():
    g = small_graph()
    g.add("sum", Add(), ["conv", "head"])
    with pytest.raises(IRValidationError, match=r"sum \(Add\): Add inputs must share one shape"):
        g.validate()


def test_inputs_must_exist_and_names_are_unique():
    g = small_graph()
    with pytest.raises(IRValidationError, match="not \\(yet\\) a node"):
        g.add("x", LIF(), ["nope"])
    with pytest.raises(IRValidationError, match="already exists"):
        g.add("lif", LIF(), ["conv"])


def test_cycles_are_caught():
    g = small_graph()
    g.replace("conv", inputs=["lif"])  # lif reads conv, conv now reads lif
    with pytest.raises(IRValidationError, match="cycle|does not come earlier"):
        g.validate()
    with pytest.raises(IRValidationError, match="cycle"):
        g.reorder()


def test_timeless_values_cannot_feed_per_step_ops():
    g = small_graph()
    g.add("after", LIF(), ["ro"])
    with pytest.raises(IRValidationError, match="no time axis"):
        g.validate()


def test_copy_is_independent():
    g = small_graph()
    h = g.copy()
    h.replace("lif", op=LIF(0.5, 0.5), note="x")
    assert g["lif"].op.tau == 0.25 and "note" not in g["lif"].meta
    assert not g.same_as(h) and g.same_as(g.copy())


def test_remove_refuses_to_orphan_readers():
    g = small_graph()
    with pytest.raises(IRValidationError, match="still reads"):
        g.remove(["conv"])
