"""The stepwise ONNX graph: contract (names, order, batch axis, metadata), neuron semantics, errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from emsdeploy.errors import ExportError
from emsdeploy.exporters.onnx import FORMAT, StepwiseSession, build_onnx, export_onnx
from emsdeploy.ir import LIF, Conv2d, Decode, Graph, Input, Readout, SiLUNeuron
from emsdeploy.passes import flatten_fanin, fold_affine
from emsdeploy.simulators import RefFloat
from tests.tolerances import FLOAT64_ROUNDING

from .conftest import session

pytestmark = pytest.mark.onnx


def _dims(vi: onnx.ValueInfoProto) -> list:
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


def test_contract_names_order_batch_axis_and_metadata(fixture_b_graph, tmp_path):
    g = fixture_b_graph
    model = export_onnx(g, tmp_path / "b.onnx", spikes=True)
    onnx.checker.check_model(onnx.load(tmp_path / "b.onnx"), full_check=True)
    props = {p.key: p.value for p in model.metadata_props}
    # An EMS-Block2's two branch LIFs read the same current: one of each pair carries the state.
    aliases = json.loads(props["aliases"])
    assert aliases == {
        "model.3.residual_function.0": "model.3.shortcut.0",
        "model.4.residual_function.0": "model.4.shortcut.0",
        "model.6.residual_function.0": "model.6.shortcut.0",
        "model.7.shortcut.1": "model.7.residual_function.0",
    }
    every = [n.name for n in g.of_type(LIF, SiLUNeuron)]
    neurons = [n for n in every if n not in aliases]
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    assert inputs == ["x", *(f"state_in.{n}.h" for n in neurons)]
    lifs = [n.name for n in g.of_type(LIF)]
    assert outputs == [
        "head.0",
        "head.1",
        *(f"state_out.{n}.h" for n in neurons),
        *(f"spikes.{n}" if n in lifs else f"values.{n}" for n in every),
    ]
    for vi in [*model.graph.input, *model.graph.output]:
        assert _dims(vi)[0] == "batch", vi.name
    assert _dims(model.graph.input[0]) == ["batch", 3, 64, 64]
    assert _dims(model.graph.output[0]) == ["batch", 3 * 8, 4, 4]  # na·(nc+5) at P4
    for n in neurons:  # state in and out: same shape as the neuron
        shape = list(g.shape(n))
        assert _dims(next(i for i in model.graph.input if i.name == f"state_in.{n}.h"))[1:] == shape
        assert _dims(next(o for o in model.graph.output if o.name == f"state_out.{n}.h"))[1:] == shape

    dec = g.of_type(Decode)[0].op
    assert props["format"] == FORMAT and props["format_version"] == "1"
    assert props["time_steps"] == "4" and props["encoding"] == "direct"
    assert float(props["tau"]) == 0.25 and float(props["v_th"]) == 0.5
    assert "strict" in props["comparison"] and "hard" in props["reset"]
    assert json.loads(props["names"]) == ["class0", "class1", "class2"]
    np.testing.assert_array_equal(np.array(json.loads(props["anchors"]), np.float32), dec.anchors)
    assert json.loads(props["strides"]) == list(dec.strides)
    assert json.loads(props["heads"]) == ["model.13.readout.0", "model.13.readout.1"]
    silu = [d for d in json.loads(props["neurons"]) if d["type"] == "SiLUNeuron"]
    assert silu == [{"name": "model.8.act", "type": "SiLUNeuron", "shape": [64, 2, 2], "tau": 0.25, "inplace": True}]


def _neuron_graph(time_steps: int) -> Graph:
    """x (frames of currents) -> LIF -> 1×1 conv -> readout; x -> SiLU (in place / not) -> readouts."""
    g = Graph({"time_steps": time_steps, "names": []})
    g.add("input", Input((16, 8, 8), "frames"))
    g.add("lif", LIF(0.25, 0.5), ["input"])
    g.add("conv", Conv2d(np.eye(16, dtype=np.float32).reshape(16, 16, 1, 1)), ["lif"])
    g.add("silu_a", SiLUNeuron(0.25, inplace=True), ["input"])
    g.add("silu_b", SiLUNeuron(0.25, inplace=False), ["input"])
    for i, src in enumerate(["conv", "silu_a", "silu_b"]):
        g.add(f"readout.{i}", Readout(), [src])
    g.outputs = [f"readout.{i}" for i in range(3)]
    return g.validate()


def test_lif_and_silu_steps_match_the_official_unit_fixture(lif_unit):
    """Dyadic currents put membranes exactly on V_th: only a strict > gives these spikes.
    Zero state at t = 0 gives U[0] = I[0]; the SiLU neuron follows both recurrences."""
    npz = lif_unit["npz"]
    g = _neuron_graph(5)
    s = session(g, spikes=True)
    for current, spikes in (("current_dyadic", "spike_dyadic"), ("current_float", "spike_float")):
        x = np.ascontiguousarray(npz[current].transpose(1, 0, 2, 3, 4))  # [T,B,...] -> [B,T,...]
        tr = s.run(x, record="neurons")
        np.testing.assert_array_equal(tr.records["lif"]["s"], npz[spikes].astype(bool))
    np.testing.assert_allclose(tr.records["silu_a"]["y"], npz["silu_inplace"], rtol=0, atol=2e-6)
    np.testing.assert_allclose(tr.records["silu_b"]["y"], npz["silu_noinplace"], rtol=0, atol=2e-6)
    # the head is the per-step conv output averaged over T
    np.testing.assert_allclose(tr.outputs["readout.0"], npz["spike_float"].mean(0), atol=1e-6)


def test_float64_graph_in_onnx_reference_equals_ref_float64(tiny_direct):
    """onnx.reference runs the exported graph with numpy semantics; in float64 no membrane can
    tie, so this checks the lowering itself, op by op: zero mismatches, readouts to 1e-12."""
    _, g = tiny_direct
    s = StepwiseSession(build_onnx(g, spikes=True, dtype="float64"), engine="reference")
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    ref = RefFloat(g, torch.float64).run(x, record="neurons")
    tr = s.run(x.numpy(), record="neurons")
    total = 0
    for n in s.meta.neurons:
        if n.type == "LIF":
            np.testing.assert_array_equal(tr.records[n.name]["s"], ref.records[n.name]["s"].numpy().astype(bool))
            total += int(tr.records[n.name]["s"].sum())
    assert total > 1000  # the model really fires
    for h in s.meta.heads:
        np.testing.assert_allclose(tr.outputs[h], ref.outputs[h].numpy(), **FLOAT64_ROUNDING)


def test_folded_and_flattened_graphs_export_too(fixture_b_graph, fixture_b):
    """After fold_affine and flatten_fanin (fewer nodes, multi-input LIFs) the graph still
    reproduces the official spikes."""
    g = flatten_fanin(fold_affine(fixture_b_graph))
    assert len(g) < len(fixture_b_graph)
    assert any(len(n.inputs) > 1 for n in g.of_type(LIF))
    tr = session(g, spikes=True).run(fixture_b.inputs[:1], record="neurons")
    for name in fixture_b.lif_names:
        np.testing.assert_array_equal(tr.records[name]["s"], fixture_b.ref(0, "spike", name).astype(bool))


def test_export_errors_name_the_problem(fixture_b_graph):
    with pytest.raises(ExportError, match="dtype 'float16' unsupported"):
        build_onnx(fixture_b_graph, dtype="float16")
    g = Graph({"time_steps": 2})
    g.add("input", Input((1, 4, 4)))
    g.add("lif", LIF(), ["input"])
    g.outputs = ["lif"]
    with pytest.raises(ExportError, match="no Readout"):
        build_onnx(g)


def test_neurons_with_the_same_inputs_and_parameters_share_one_state():
    g = Graph({"time_steps": 3, "names": []})
    g.add("input", Input((4, 6, 6), "frames"))
    g.add("a", LIF(0.25, 0.5), ["input"])
    g.add("b", LIF(0.25, 0.4), ["input"])  # other threshold: its own state
    g.add("c", LIF(0.25, 0.5), ["input"])  # same as a
    eye = np.eye(4, dtype=np.float32).reshape(4, 4, 1, 1)
    for i, src in enumerate("abc"):
        g.add(f"conv.{i}", Conv2d(eye), [src])
        g.add(f"readout.{i}", Readout(), [f"conv.{i}"])
    g.outputs = [f"readout.{i}" for i in range(3)]
    s = session(g.validate(), spikes=True)
    assert s.meta.aliases == {"c": "a"} and [n.name for n in s.meta.neurons] == ["a", "b"]
    x = np.random.default_rng(0).normal(0.4, 0.3, (1, 3, 4, 6, 6)).astype(np.float32)
    tr = s.run(x, record="neurons")
    ref = RefFloat(g).run(torch.from_numpy(x), record="neurons")
    for n in "abc":
        np.testing.assert_array_equal(tr.records[n]["s"], ref.records[n]["s"].numpy().astype(bool))
    np.testing.assert_array_equal(tr.outputs["readout.2"], tr.outputs["readout.0"])
    assert not np.array_equal(tr.records["a"]["s"], tr.records["b"]["s"])
    assert set(s.run(x, record=["c"]).records) == {"c"}
