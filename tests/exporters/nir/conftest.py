"""Small IR graphs for the NIR export tests, built by hand so that every lowering is exercised."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emsdeploy.ir import LIF, Add, Affine, Concat, Conv2d, Graph, Input, MaxPool2d, Readout
from emsdeploy.simulators import RefFloat
from tests.tolerances import FLOAT64_REFORMED


def _w(rng: np.random.Generator, c_out: int, c_in: int, k: int, gain: float = 2.5) -> np.ndarray:
    return rng.normal(0.0, gain / np.sqrt(c_in * k * k), (c_out, c_in, k, k))


def _bn(rng: np.random.Generator, c: int) -> Affine:
    return Affine(0.6 + 0.4 * rng.random(c), 0.3 * rng.normal(size=c) + 0.2)


def chain_graph(seed: int = 0, encoding: str = "direct") -> Graph:
    """conv -> tdBN -> LIF -> spike max-pool -> conv -> tdBN -> LIF -> 1x1 conv -> readout."""
    rng = np.random.default_rng(seed)
    g = Graph({"time_steps": 4, "encoding": encoding, "dt": 1, "reset": "hard-zero", "source": "chain"})
    g.add("input", Input((2, 16, 16), encoding))
    g.add("c1", Conv2d(_w(rng, 4, 2, 3), rng.normal(0, 0.1, 4), padding=1), ["input"])
    g.add("bn1", _bn(rng, 4), ["c1"])
    g.add("lif1", LIF(0.25, 0.5), ["bn1"])
    g.add("pool", MaxPool2d(2), ["lif1"])
    g.add("c2", Conv2d(_w(rng, 6, 4, 3), None, padding=1), ["pool"])
    g.add("bn2", _bn(rng, 6), ["c2"])
    g.add("lif2", LIF(0.25, 0.5), ["bn2"])
    g.add("head", Conv2d(_w(rng, 5, 6, 1, 1.0), rng.normal(0, 0.1, 5)), ["lif2"])
    g.add("readout", Readout(), ["head"])
    g.outputs = ["readout"]
    return g.validate()


def branchy_graph(seed: int = 1) -> Graph:
    """A DAG with every NIR lowering and no cut: concatenations read by a LIF (identity
    placement convs) and by a conv (sliced kernels), an Add of a concat and a conv, a grouped
    conv, an Affine after an Add (diagonal conv) and one after a Concat, a term reaching one LIF twice (Scale(2)),
    an IF neuron (τ = 1) and a memoryless one (τ = 0), and two readouts."""
    rng = np.random.default_rng(seed)
    g = Graph({"time_steps": 4, "encoding": "direct", "dt": 1, "reset": "hard-zero", "source": "branchy"})
    g.add("input", Input((3, 16, 16)))
    g.add("c0", Conv2d(_w(rng, 8, 3, 3), rng.normal(0, 0.1, 8), padding=1), ["input"])
    g.add("l1", LIF(0.25, 0.5), ["c0"])
    g.add("c1a", Conv2d(_w(rng, 4, 8, 3), None, padding=1), ["l1"])
    g.add("c1b", Conv2d(_w(rng, 4, 8, 1), rng.normal(0, 0.1, 4)), ["l1"])
    g.add("cat", Concat(), ["c1a", "c1b"])
    g.add("add", Add(), ["cat", "c0"])
    g.add("l2", LIF(0.5, 0.4), ["add"])
    g.add("pool", MaxPool2d(2), ["l2"])
    g.add("c3", Conv2d(_w(rng, 6, 4, 3), rng.normal(0, 0.1, 6), padding=1, groups=2), ["pool"])
    g.add("c4", Conv2d(_w(rng, 6, 8, 3), rng.normal(0, 0.1, 6), stride=2, padding=1), ["cat"])
    g.add("add2", Add(), ["c3", "c4"])
    g.add("bn", _bn(rng, 6), ["add2"])
    g.add("l3", LIF(0.25, 0.5), ["bn"])
    g.add("l4", LIF(1.0, 0.7), ["add2", "c3"])  # flattened fan-in: c3 + c4 + c3
    g.add("l5", LIF(0.0, 0.3), ["c4"])
    g.add("h1", Conv2d(_w(rng, 5, 6, 1, 1.0), rng.normal(0, 0.1, 5)), ["l3"])
    g.add("h2", Conv2d(_w(rng, 5, 6, 1, 1.0), None), ["l4"])
    g.add("h3", Conv2d(_w(rng, 5, 6, 1, 1.0), None), ["l5"])
    g.add("bn_cat", _bn(rng, 8), ["cat"])  # an Affine reading a concatenation: sliced diagonal kernels
    g.add("l6", LIF(0.25, 0.5), ["bn_cat"])
    g.add("pool6", MaxPool2d(2), ["l6"])
    g.add("h6", Conv2d(_w(rng, 5, 8, 1, 1.0), None), ["pool6"])
    g.add("h23", Add(), ["h2", "h3", "h6"])
    g.add("r1", Readout(), ["h1"])
    g.add("r2", Readout(), ["h23"])
    g.outputs = ["r1", "r2"]
    return g.validate()


def assert_spike_exact(original: Graph, imported: Graph, x: torch.Tensor, time_steps: int | None = None) -> dict:
    """Run both graphs in ref-float float64; every LIF's spikes must be equal, element by
    element, and the outputs equal up to float64 summation order. Returns a small report."""
    a = RefFloat(original, torch.float64).run(x, time_steps, record="neurons")
    b = RefFloat(imported, torch.float64).run(x, time_steps, record="neurons")
    lifs = [n.name for n in original.of_type(LIF)]
    assert set(lifs) <= set(imported.names()), sorted(set(lifs) - set(imported.names()))
    spikes = total = 0
    for name in lifs:
        sa, sb = a.records[name]["s"], b.records[name]["s"]
        assert torch.equal(sa, sb), f"{name}: {int((sa != sb).sum())} spike mismatches"
        spikes += int(sa.sum())
        total += sa.numel()
    worst = 0.0
    for o in original.outputs:
        torch.testing.assert_close(b.outputs[o], a.outputs[o], **FLOAT64_REFORMED)
        worst = max(worst, float((b.outputs[o] - a.outputs[o]).abs().max()))
    assert 0 < spikes < total, "a test that fires nothing (or everything) proves little"
    return {"lif_nodes": len(lifs), "spikes": spikes, "neuron_steps": total, "max_output_diff": worst}


@pytest.fixture
def chain() -> Graph:
    return chain_graph()


@pytest.fixture
def branchy() -> Graph:
    return branchy_graph()
