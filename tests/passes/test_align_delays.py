"""align_delays: latency = synapse hops from the input; every input arrives in step with the rest."""

import numpy as np
import pytest

from emsdeploy.errors import PassError
from emsdeploy.ir import Add, Conv2d
from emsdeploy.ir.ops.loihi import CHIP_SYNAPSES, HOST_TERMS, POPULATIONS, LoihiReadout, SynConv, SynSparse
from emsdeploy.passes.align_delays import align_delays, hops
from emsdeploy.passes.quantize import quantize
from tests.loihi_cases import chain_graph, mixed_graph, simplified
from tests.tolerances import EXACT


@pytest.fixture(scope="module")
def pair():
    q = quantize(simplified(mixed_graph(seed=0)))
    return q, align_delays(q)


def test_latencies_are_hop_counts(pair):
    _, a = pair
    lat = {n.name: n.op.latency for n in a if isinstance(n.op, POPULATIONS)}
    # stem on the host (0 hops) -> lif1; lif1 -Conv-> lif2 (1); the max-pool reads lif2 (2);
    # lif3 reads the pool through a Sparse (3); lif4 (4); the spike pool (5); silu (6); lif5 (7)
    assert lat["lif1"] == 0 and lat["lif2"] == 1 and lat["pool"] == 2 and lat["lif3"] == 3
    assert lat["lif4"] == 4 and lat["spool"] == 5 and lat["silu"] == 6 and lat["lif5"] == 7
    assert lat["lif6"] == 8
    assert lat["ro0"] == lat["ro1"] == 9 == a.attrs["latency"]  # readouts share one latency
    assert a.attrs["delays_aligned"] is True


def test_every_input_arrives_at_its_population_latency(pair):
    _, a = pair
    checked = 0
    for n in a:
        if isinstance(n.op, POPULATIONS):
            for i in n.inputs:
                checked += 1
                term = a[i]
                src = term.inputs[0]
                src_lat = 0 if src == "input" else a[src].op.latency
                assert src_lat + hops(term.op) + term.op.delay_u6 == n.op.latency, i
    assert checked >= 10


def test_host_terms_are_delayed_on_the_host(pair):
    _, a = pair
    assert a["lif2<-input"].op.delay_u6 == 1 and a["pool<-input"].op.delay_u6 == 2
    assert all(a[i].op.delay_u6 == 0 for i in a["lif1"].inputs)


def delayed_conv_graph():
    """lif3 = LIF(conv(lif2) + conv(lif1)): the shortcut conv from lif1 arrives a step early."""
    g = chain_graph()
    rng = np.random.default_rng(5)
    g.add("skip", Conv2d(rng.normal(size=(12, 8, 3, 3)) * 0.3, None, 2, 1), ["lif1"])
    g.add("sum", Add(), ["c2", "skip"])
    g.replace("lif3", inputs=["sum"])
    g.reorder()
    return g.validate()


def test_delayed_convs_keep_their_kernel():
    q = quantize(simplified(delayed_conv_graph()))
    a = align_delays(q)
    before, after = q["lif3<-lif1"].op, a["lif3<-lif1"].op
    assert isinstance(after, SynConv) and before.delay_u6 == 0 and after.delay_u6 == 1
    np.testing.assert_array_equal(after.weight_s8, before.weight_s8)
    assert a["lif3<-lif2"].op.delay_u6 == 0


def test_big_delayed_convs_go_through_relays():
    """A relay (identity Sparse with delay d - 1, threshold-0 LIF) re-emits the source's spikes
    d steps late: every original population spikes exactly as without it."""
    import torch

    from emsdeploy.simulators.ref_fixed import RefFixed

    q = quantize(simplified(delayed_conv_graph()))
    plain, relayed = align_delays(q), align_delays(q, relay_above=0)
    relay = "lif1@+1"
    assert relay in relayed and relayed[relay].meta["relay_delay"] == 1
    assert relayed["lif3<-lif1"].inputs == (relay,) and relayed["lif3<-lif1"].op.delay_u6 == 0
    ident = relayed[f"{relay}<-lif1"].op
    assert isinstance(ident, SynSparse) and ident.delay_u6 == 0 and np.all(ident.weight_s8 == 1)
    assert relayed[relay].op.vth_u17 == 0 and relayed[relay].op.latency == 1
    assert align_delays(relayed, relay_above=0).same_as(relayed)  # idempotent
    x = torch.rand(2, 3, 16, 16)
    a = RefFixed(plain).run(x, record="all", raw=True)
    b = RefFixed(relayed).run(x, record="all", raw=True)
    for name, rec in a.records.items():
        for key, v in rec.items():
            torch.testing.assert_close(b.records[name][key], v, **EXACT)


def test_chain_needs_no_delays():
    a = align_delays(quantize(simplified(chain_graph())))
    assert [a[n].op.latency for n in ("lif1", "lif2", "lif3", "ro")] == [0, 1, 2, 3]
    assert all(n.op.delay_u6 == 0 for n in a if isinstance(n.op, CHIP_SYNAPSES + HOST_TERMS))
    assert a.attrs["latency"] == 3


def test_pure_and_idempotent(pair):
    q, a = pair
    assert not q.attrs.get("delays_aligned")
    assert align_delays(a).same_as(a)
    assert all(isinstance(n.op, LoihiReadout) or n.meta.get("latency") is not None for n in a if not n.name == "decode")


def test_needs_a_quantized_graph():
    with pytest.raises(PassError, match="quantize"):
        align_delays(simplified(chain_graph()))
