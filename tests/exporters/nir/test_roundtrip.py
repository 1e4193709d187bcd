"""IR -> NIR file -> IR: the imported graph fires exactly like the original (ref-float, float64);
and what import_nir refuses, it refuses by name."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from emsdeploy.errors import ExportError
from emsdeploy.exporters.nir import export_nir, import_nir
from emsdeploy.ir import LIF, Concat, Conv2d, Graph, Input, MaxPool2d, Readout
from emsdeploy.simulators import RefFloat
from emsdeploy.tracer import trace
from tests.helpers import tiny_ee

from .conftest import assert_spike_exact, chain_graph


def test_chain_round_trip_is_spike_exact(chain, tmp_path):
    export_nir(chain, tmp_path / "chain.nir")
    back = import_nir(tmp_path / "chain.nir")
    assert [n.op.type_name for n in back] == [
        "Input", "Conv2d", "LIF", "MaxPool2d", "Conv2d", "LIF", "Conv2d", "Readout",
    ]  # fmt: skip
    assert back["lif1"].op.tau == 0.25 and back["lif1"].op.v_th == 0.5
    assert back.outputs == ["readout"] and back.time_steps == 4 and back.encoding == "direct"
    x = torch.rand(3, 2, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    report = assert_spike_exact(chain, back, x)
    assert report["max_output_diff"] == 0.0  # same folding, same sums: not even a rounding apart


def test_frames_round_trip(tmp_path):
    g = chain_graph(seed=5, encoding="frames")
    export_nir(g, tmp_path / "f.nir")
    back = import_nir(tmp_path / "f.nir")
    assert back.encoding == "frames"
    x = torch.rand(2, 6, 2, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert_spike_exact(g, back, x)


def test_branchy_round_trip_is_spike_exact(branchy, tmp_path):
    export_nir(branchy, tmp_path / "b.nir")
    back = import_nir(tmp_path / "b.nir")
    assert back["l4"].op.tau == 1.0 and back["l5"].op.tau == 0.0
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert_spike_exact(branchy, back, x, time_steps=6)


def test_frames_model_with_cuts_round_trip(tmp_path):
    """res10-ee (width 0.25, frames): five cuts rebuilt on the host from the metadata."""
    graph = trace(tiny_ee(time_steps=3, encoding="frames", seed=4), (64, 64))
    result = export_nir(graph, tmp_path / "m.nir")
    assert len(result.cuts) == 5
    back = import_nir(tmp_path / "m.nir")
    assert all(back[h.node].meta["cut"] for h in result.cuts)
    x = torch.rand(1, 3, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    assert_spike_exact(graph, back, x)


# --- what the importer refuses ------------------------------------------------------------


def _lif_graph(**lif_overrides) -> nir.NIRGraph:
    """Input -> Conv2d -> LIF -> Output, no metadata: as another tool might write it."""
    shape = (2, 4, 4)
    full = {k: np.full(shape, v) for k, v in {"tau": 4 / 3, "r": 4 / 3, "v_leak": 0.0, "v_threshold": 0.5}.items()}
    full.update({k: np.asarray(v) for k, v in lif_overrides.items()})
    conv = nir.Conv2d((4, 4), np.ones((2, 1, 1, 1)), 1, 0, 1, 1, np.zeros(2))
    return nir.NIRGraph(
        nodes={
            "x": nir.Input(np.array([1, 4, 4])),
            "conv": conv,
            "lif": nir.LIF(**full),
            "y": nir.Output(np.array(shape)),
        },
        edges=[("x", "conv"), ("conv", "lif"), ("lif", "y")],
    )


SETTINGS = {"dt": 1.0, "discretization": "euler", "encoding": "frames", "time_steps": 5}


def test_a_graph_without_metadata_needs_its_settings_given():
    with pytest.raises(ExportError, match="does not record dt in its metadata; pass dt=... explicitly"):
        import_nir(_lif_graph())
    g = import_nir(_lif_graph(), **SETTINGS)
    assert [n.op.type_name for n in g] == ["Input", "Conv2d", "LIF"] and g.outputs == ["lif"]
    assert g["lif"].op.tau == pytest.approx(0.25, abs=1e-15) and g.encoding == "frames" and g.time_steps == 5
    x = torch.rand(1, 5, 1, 4, 4, dtype=torch.float64)
    u = RefFloat(g, torch.float64).run(x, record="neurons").records["lif"]["u"]
    torch.testing.assert_close(u[0, 0, 0], x[0, 0, 0], rtol=0, atol=1e-15)  # U[0] = I[0] (unit kernel)


def test_settings_that_contradict_the_metadata(chain, tmp_path):
    export_nir(chain, tmp_path / "c.nir")
    with pytest.raises(ExportError, match=r"dt=0.001 contradicts the graph's metadata \(dt = 1.0\)"):
        import_nir(tmp_path / "c.nir", dt=0.001)
    with pytest.raises(ExportError, match="discretization='exact' contradicts"):
        import_nir(tmp_path / "c.nir", discretization="exact")
    assert len(import_nir(tmp_path / "c.nir", dt=1, discretization="euler")) == 8


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"v_leak": np.full((2, 4, 4), 0.1)}, r"lif \(LIF\): v_leak = 0.1"),
        ({"v_reset": np.full((2, 4, 4), -1.0)}, r"lif \(LIF\): v_reset = -1.0"),
        ({"r": np.full((2, 4, 4), 1.0)}, r"lif \(LIF\): input gain 0.75 under euler"),
        ({"tau": np.arange(32.0).reshape(2, 4, 4) + 2}, "tau differs between neurons"),
    ],
)
def test_neurons_outside_ems_yolo_are_refused(overrides, message):
    with pytest.raises(ExportError, match=message):
        import_nir(_lif_graph(**overrides), **SETTINGS)


def test_primitives_with_no_ir_form_are_named():
    g = nir.NIRGraph(
        nodes={
            "x": nir.Input(np.array([1, 2, 2])),
            "delay": nir.Delay(np.ones((1, 2, 2))),
            "y": nir.Output(np.array([1, 2, 2])),
        },
        edges=[("x", "delay"), ("delay", "y")],
    )
    with pytest.raises(ExportError, match=r"delay \(Delay\): no IR form; import_nir reads Input, Output, Conv2d"):
        import_nir(g, **SETTINGS)
    flat = nir.NIRGraph.from_list(nir.Input(np.array([4])), nir.Delay(np.ones(4)))
    with pytest.raises(
        ExportError, match=r"input \(Input\): the IR takes images or frames \(C, H, W\), got shape \(4,\)"
    ):
        import_nir(flat, **SETTINGS)


def test_sum_pool_on_currents_is_not_a_max_pool(tmp_path):
    """A spike concat before a spike max-pool exports (identity placements into SumPool2d), but
    its import would need a max-pool of the placed values: refused, not approximated."""
    rng = np.random.default_rng(0)
    g = Graph({"time_steps": 2, "encoding": "direct"})
    g.add("input", Input((2, 8, 8)))
    g.add("c", Conv2d(rng.normal(size=(4, 2, 3, 3)), None, padding=1), ["input"])
    g.add("a", LIF(), ["c"])
    g.add("b", LIF(0.5, 0.2), ["c"])
    g.add("cat", Concat(), ["a", "b"])
    g.add("pool", MaxPool2d(2), ["cat"])
    g.add("h", Conv2d(rng.normal(size=(3, 8, 1, 1)), None), ["pool"])
    g.add("r", Readout(), ["h"])
    g.outputs = ["r"]
    result = export_nir(g.validate(), tmp_path / "p.nir")
    assert result.cuts == [] and ("cat.ch4-8", "pool.sum") in result.graph.edges
    with pytest.raises(
        ExportError, match=r"pool.sum -> pool: SumPool2d -> Threshold\(0\) is a max-pool only on binary"
    ):
        import_nir(tmp_path / "p.nir")


def test_unreadable_files(tmp_path):
    with pytest.raises(ExportError, match="missing.nir: no such NIR file"):
        import_nir(tmp_path / "missing.nir")
    junk = tmp_path / "junk.nir"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(ExportError, match="junk.nir: not a readable NIR file"):
        import_nir(junk)
