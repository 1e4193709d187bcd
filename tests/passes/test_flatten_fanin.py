"""flatten_fanin: summing nodes list their synapse groups directly; results unchanged (float64)."""

import torch

from emsdeploy.ir import LIF, Add, SiLUNeuron
from emsdeploy.passes import flatten_fanin, fold_affine
from emsdeploy.simulators import RefFloat
from emsdeploy.tracer import trace
from tests.helpers import tiny_ee


def test_no_summing_node_reads_an_add_and_results_hold():
    graph = fold_affine(trace(tiny_ee(), (32, 32)))
    flat = flatten_fanin(graph)
    for node in flat.of_type(LIF, SiLUNeuron, Add):
        assert not any(isinstance(flat[i].op, Add) for i in node.inputs), node.name
    # EMS-Block2 outputs feed both the next block's LIFs and a max-pool: the Add stays for the pool.
    assert "model.1.add" in flat and flat["model.2.residual_function.0"].inputs == (
        "model.1.residual_function.4",
        "model.1.pools",
    )
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    a = RefFloat(graph, torch.float64).run(x, record="neurons")
    b = RefFloat(flat, torch.float64).run(x, record="neurons")
    for n in graph.of_type(LIF):
        assert torch.equal(a.records[n.name]["s"], b.records[n.name]["s"]), n.name


def test_identity_shortcuts_grow_the_fan_in():
    from emsdeploy.models import EMSYOLO, build_model
    from tests.helpers import randomize_bn

    cfg = {**build_model("res34-ee").config, "width_multiple": 0.25}
    flat = flatten_fanin(fold_affine(trace(randomize_bn(EMSYOLO(cfg, 2)), (64, 64))))
    # model.6 is five identity MS-Blocks in a row: the last one's first LIF sums the synapse
    # groups of all five residual branches plus the EMS-Block2 before them.
    fan_in = len(flat["model.6.4.residual_function.0"].inputs)
    assert fan_in == len(flat["model.6.0.residual_function.0"].inputs) + 4
