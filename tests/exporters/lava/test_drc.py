"""The Lava design rules: a lowered graph passes; each rule catches its own violation by name."""

import dataclasses

import numpy as np
import pytest

from emsdeploy.errors import DRCError
from emsdeploy.exporters.lava import drc
from emsdeploy.ir.ops.loihi import HostConv, LoihiLIF, SynConv, SynSparse
from emsdeploy.passes.quantize import quantize
from emsdeploy.profiles.loihi import load_profile
from tests.loihi_cases import lowered, mixed_graph, simplified

P = load_profile()


@pytest.fixture
def q():
    return lowered(mixed_graph(seed=0))


def _violates(graph, rule):
    with pytest.raises(DRCError) as e:
        drc.check(graph, P)
    assert e.value.rule == rule, str(e.value)
    return str(e.value)


def test_a_lowered_graph_passes(q):
    drc.check(q, P)
    assert [r.__name__ for r in drc.RULES] == [
        "graph_is_lowered",
        "populations_are_placed",
        "edges_are_legal",
        "weights_fit",
        "neuron_params_fit",
        "delays_fit",
        "accumulators_exact",
        "readouts_aligned",
    ]


def test_graph_is_lowered():
    _violates(quantize(simplified(mixed_graph(seed=0))), "graph_is_lowered")  # no align_delays


def test_populations_are_placed(q):
    q.replace("pool", partition="chip")
    assert "no standard Loihi neuron model" in _violates(q, "populations_are_placed")


def test_edges_are_legal(q):
    # a graded source read through a Conv (Lava's Conv has no right shift for graded payloads)
    op = q["lif3<-pool"].op
    q.replace("lif3<-pool", op=SynConv(np.ones((12, 12, 1, 1))))
    assert "FixedMaxPool -> SynConv is not a legal edge" in _violates(q, "edges_are_legal")
    assert isinstance(op, SynSparse)


def test_weights_fit(q):
    op = q["lif2<-lif1"].op
    q.replace("lif2<-lif1", op=dataclasses.replace(op, weight_s8=op.weight_s8 * 0 + 300))
    assert "weight_s8 spans [300, 300], s8 allows [-128, 127]" in _violates(q, "weights_fit")


def test_weights_fit_host_shift(q):
    op = q["lif1<-input"].op
    assert isinstance(op, HostConv)
    q.replace("lif1<-input", op=dataclasses.replace(op, shift_u5=40))
    _violates(q, "weights_fit")


def test_neuron_params_fit(q):
    op = q["lif4"].op
    assert isinstance(op, LoihiLIF)
    q.replace("lif4", op=dataclasses.replace(op, vth_u17=1 << 17))
    assert "vth_u17 spans [131072, 131072], u17 allows [0, 131071]" in _violates(q, "neuron_params_fit")


def test_delays_fit(q):
    op = q["lif6<-pool"].op
    q.replace("lif6<-pool", op=dataclasses.replace(op, delay_u6=P.max_delay + 1))
    assert "exceeds DelaySparse's maximum 62" in _violates(q, "delays_fit")


def test_accumulators_exact(q):
    op = q["lif2<-lif1"].op
    q.replace("lif2<-lif1", op=dataclasses.replace(op, weight_s8=np.full_like(op.weight_s8, 127), weight_exp_s4=7 + 16))
    # weight_exp beyond the profile is a weights_fit error; check the accumulator rule alone
    with pytest.raises(DRCError) as e:
        drc.accumulators_exact(q, P)
    assert e.value.rule == "accumulators_exact" and ">= 2**31" in str(e.value)


def test_readouts_aligned(q):
    op = q["ro0"].op
    q.replace("ro0", op=dataclasses.replace(op, latency=op.latency + 1))
    assert "readout latencies differ" in _violates(q, "readouts_aligned")
