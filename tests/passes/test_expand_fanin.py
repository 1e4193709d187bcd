"""expand_fanin: every linear op folds into per-source synapse groups, exactly (float64)."""

import importlib

import numpy as np
import pytest
import torch

from emsdeploy.errors import PassError
from emsdeploy.ir import LIF, Kind, MaxPool2d, Readout, SiLUNeuron
from emsdeploy.ir.linear import apply_map, to_sparse
from emsdeploy.passes.expand_fanin import choose_cuts, expand_fanin, fanin_terms, fanins, relays
from emsdeploy.simulators import RefFloat
from tests.loihi_cases import mixed_graph, simplified


def test_expansion_reproduces_every_population_current():
    """Σ_terms map(source output) + bias equals the current ref-float feeds each population."""
    g = simplified(mixed_graph(seed=4))
    fan = fanins(expand_fanin(g))
    x = torch.rand(2, 3, 16, 16)
    tr = RefFloat(g, torch.float64).run(x, record="all")
    checked = 0
    for name, fi in fan.items():
        node = g[name]
        if node.op.type_name == "MaxPool2d" and g.kind(node.inputs[0]) == Kind.SPIKE:
            continue  # its 'current' is the window sum, checked through the spikes elsewhere
        inputs = node.inputs
        for t in range(3):
            want = sum(tr.records[i]["y"][t] for i in inputs)
            got = torch.zeros_like(want)
            for term in fi.terms:
                rec = tr.records[term.source]
                got = got + apply_map(term.map, rec["s" if "s" in rec else "y"][t])
            if fi.bias is not None:
                got = got + torch.from_numpy(np.array(fi.bias))  # may be a read-only broadcast view
            torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
        checked += 1
    assert checked >= 9
    # one term per source: the shortcut stem current reaches lif2 once, merged with nothing else
    assert sorted(t.source for t in fan["lif2"].terms) == ["input", "lif1"]


def test_the_pass_records_fanin_and_relays_without_touching_its_input():
    g = simplified(mixed_graph(seed=2, size=24))
    before = g.copy()
    e = expand_fanin(g, fold_max_synapses=0)
    assert g.same_as(before) and "fanin" not in g.attrs  # pure
    assert e.names() == g.names() and e.validate() is e
    assert e.attrs["fanin"] == {"fold_max_synapses": 0, "relays": choose_cuts(g, 0)}
    assert relays(e) and list(relays(e)) == list(choose_cuts(g, 0))  # order kept: the report lists them so
    fan = fanins(e)
    assert set(relays(e)) <= set(fan)  # a relayed node gets its own fan-in
    pops = {n.name for n in g if isinstance(n.op, (LIF, SiLUNeuron, Readout, MaxPool2d))}
    assert pops <= set(fan)
    # what the pass records is fanin_terms with those cuts, map for map
    direct = fanin_terms(g, set(relays(e)))
    for name, fi in fan.items():
        assert [(t.source, t.path) for t in fi.terms] == [(t.source, t.path) for t in direct[name].terms]
        for a, b in zip(fi.terms, direct[name].terms, strict=True):
            assert (to_sparse(a.map).matrix != to_sparse(b.map).matrix).nnz == 0


def test_quantize_runs_the_expansion_once(monkeypatch):
    qmod = importlib.import_module("emsdeploy.passes.quantize")  # the package re-exports the function by that name
    calls = []
    real = qmod.expand_fanin
    monkeypatch.setattr(qmod, "expand_fanin", lambda *a, **k: calls.append(1) or real(*a, **k))
    g = simplified(mixed_graph(seed=1))
    raw = qmod.quantize(g)
    assert calls == [1]  # a graph without the record: quantize expands it itself
    pre = qmod.quantize(expand_fanin(g))
    assert calls == [1]  # an expanded graph: read, not expanded again
    assert pre.same_as(raw) and "fanin" not in pre.attrs  # the record is consumed, bit for bit the same
    with pytest.raises(PassError, match="fold_max_synapses=0 but quantize was asked for 262144"):
        qmod.quantize(expand_fanin(g, fold_max_synapses=0))


def test_fanins_of_an_unexpanded_graph_is_an_error():
    with pytest.raises(PassError, match="run expand_fanin first"):
        fanins(simplified(mixed_graph()))
