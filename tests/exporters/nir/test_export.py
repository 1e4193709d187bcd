"""NIR export: every lowering, the metadata, the cuts, what nir itself checks, and the errors."""

from __future__ import annotations

import json
import math

import nir
import numpy as np
import pytest
import torch

from emsdeploy.errors import ExportError
from emsdeploy.exporters.nir import LOWERED, build_nir, export_nir, import_nir
from emsdeploy.ir import LIF
from emsdeploy.models import EMSYOLO, builtin_config_path, builtin_configs, load_config
from emsdeploy.passes import fold_affine
from emsdeploy.targets import load_target
from emsdeploy.tracer import trace
from tests.helpers import randomize_bn, tiny_ee

from .conftest import assert_spike_exact

# What NIR 1.0 cannot express in the shipped configs (DESIGN.md §4): EMS-Block2 pools its
# concatenated currents, the EMS-Block1 / -ee shortcuts max-pool currents, Sample upsamples,
# and some official heads use SiLU neurons.
CUT_OPS = {("MaxPool2d", "current"), ("Upsample", "current"), ("SiLUNeuron", "current")}


def small(name: str, time_steps: int = 2, seed: int = 0) -> EMSYOLO:
    """A shipped config at a quarter of its width (same blocks, same cuts) with firing tdBN."""
    torch.manual_seed(seed)
    cfg = {**load_config(builtin_config_path(name)), "width_multiple": 0.25}
    return randomize_bn(EMSYOLO(cfg, time_steps, "direct"), seed)


@pytest.mark.parametrize("name", builtin_configs())
def test_every_shipped_config_exports_loads_and_round_trips(name, tmp_path):
    """Export, read back with nir's type checks, compare every LIF's parameters, then import
    and run: every LIF's spikes equal the original IR's (ref-float, float64)."""
    graph = trace(small(name), (32, 32))
    path = tmp_path / f"{name}.nir"
    result = export_nir(graph, path)
    back = nir.read(path)  # type_check=True: shapes inferred and checked on every edge
    assert back.check_types()
    assert set(back.nodes) == set(result.graph.nodes) and len(back.edges) == len(result.graph.edges)

    # every IR LIF is a NIR LIF with EMS-YOLO's parameters under forward Euler, dt = 1
    for node in graph.of_type(LIF):
        lif = back.nodes[node.name]
        assert isinstance(lif, nir.LIF), node.name
        assert lif.tau.shape == graph.shape(node.name)
        np.testing.assert_array_equal(lif.tau, 1.0 / (1.0 - node.op.tau))
        np.testing.assert_array_equal(lif.r, 1.0 / (1.0 - node.op.tau))
        np.testing.assert_array_equal(lif.v_threshold, node.op.v_th)
        assert not lif.v_leak.any() and not lif.v_reset.any()

    # cuts: only what NIR cannot express, each wired Output X.in -> host -> Input X
    meta = back.metadata
    hosts = json.loads(meta["host_ops"])
    cuts = [h for h in hosts if h["cut"]]
    assert cuts and {(h["op"], k) for h in cuts for k in h["input_kinds"]} <= CUT_OPS
    assert meta["cuts"] == ", ".join(h["node"] for h in cuts) and int(meta["n_cuts"]) == len(cuts)
    for h in cuts:
        assert h["reason"] and isinstance(back.nodes[h["node"]], nir.Input)
        assert isinstance(back.nodes[f"{h['node']}.in"], nir.Output)
    assert [h["op"] for h in hosts if not h["cut"]] == ["Readout", "Readout", "Decode"]
    assert set(back.outputs) == {f"{h['node']}.in" for h in hosts if h["op"] != "Decode"}
    assert set(back.inputs) == {"input"} | {h["node"] for h in cuts}

    imported = import_nir(path)
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert_spike_exact(graph, imported, x)


def test_cuts_of_the_tiny_layout():
    result = build_nir(trace(tiny_ee(), (64, 64)))
    assert [(h.node, h.op, h.input_kinds) for h in result.cuts] == [
        ("model.1.pools", "MaxPool2d", ["current"]),
        ("model.2.pools", "MaxPool2d", ["current"]),
        ("model.3.pools", "MaxPool2d", ["current"]),
        ("model.4.pools", "MaxPool2d", ["current"]),
        ("model.8", "Upsample", ["current"]),
    ]
    h = result.cuts[0]
    assert h.reads == [{"ir": "model.1.cat", "nir_output": "model.1.pools.in"}] and h.nir_input == "model.1.pools"
    assert h.params == {"kernel": 2, "stride": 2, "padding": 0} and "no max" in h.reason
    # model.1.cat = [shortcut conv, stem]: two identity placements into the Output
    edges = result.graph.edges
    assert ("model.1.cat.ch0-8", "model.1.pools.in") in edges and ("model.1.cat.ch8-16", "model.1.pools.in") in edges
    decode = next(h for h in result.host_ops if h.op == "Decode")
    assert decode.reads == [
        {"ir": "model.11.readout.0", "nir_output": None},
        {"ir": "model.11.readout.1", "nir_output": None},
    ]
    assert decode.params["nc"] == 2 and len(decode.params["strides"]) == 2 and not decode.cut


def test_chain_is_whole_and_exact(chain):
    """No cut: conv (tdBN folded) -> LIF -> SumPool2d/Threshold(0) -> conv -> LIF -> head -> Output."""
    result = build_nir(chain)
    g = result.graph
    assert result.cuts == [] and [h.node for h in result.host_ops] == ["readout"]
    assert {n: type(v).__name__ for n, v in g.nodes.items()} == {
        "input": "Input",
        "c1": "Conv2d",
        "lif1": "LIF",
        "pool.sum": "SumPool2d",
        "pool": "Threshold",
        "c2": "Conv2d",
        "lif2": "LIF",
        "head": "Conv2d",
        "readout.in": "Output",
    }
    assert sorted(g.edges) == sorted(
        [
            ("input", "c1"),
            ("c1", "lif1"),
            ("lif1", "pool.sum"),
            ("pool.sum", "pool"),
            ("pool", "c2"),
            ("c2", "lif2"),
            ("lif2", "head"),
            ("head", "readout.in"),
        ]
    )
    folded = fold_affine(chain)["c1"].op
    np.testing.assert_array_equal(g.nodes["c1"].weight, folded.weight)
    np.testing.assert_array_equal(g.nodes["c1"].bias, folded.bias)
    assert tuple(g.nodes["c1"].input_shape) == (16, 16) and tuple(g.nodes["c1"].padding) == (1, 1)
    np.testing.assert_array_equal(g.nodes["c2"].bias, fold_affine(chain)["c2"].op.bias)  # conv had no bias
    assert list(g.nodes["pool.sum"].kernel_size) == [2, 2] and list(g.nodes["pool.sum"].stride) == [2, 2]
    assert g.nodes["pool"].threshold.shape == (4, 8, 8) and not g.nodes["pool"].threshold.any()
    assert g.nodes["lif1"].metadata == {"ir_node": "lif1", "ir_op": "LIF", "leak_per_step": 0.25, "v_th": 0.5}


def test_branchy_lowerings(branchy):
    g = build_nir(branchy).graph
    nodes, edges = g.nodes, set(g.edges)
    # concat read by a LIF: 1x1 identity convs into channel ranges, plus the Add's other term
    place = nodes["cat.ch4-8"].weight[:, :, 0, 0]
    np.testing.assert_array_equal(place, np.eye(8)[:, 4:8])
    assert not nodes["cat.ch4-8"].bias.any()
    assert {("cat.ch0-4", "l2"), ("cat.ch4-8", "l2"), ("c0", "l2"), ("c1a", "cat.ch0-4")} <= edges
    # concat read by a conv: the kernel sliced by input channels, bias on the first slice only
    w = branchy["c4"].op.weight
    np.testing.assert_array_equal(nodes["c4.ch0-4"].weight, w[:, :4])
    np.testing.assert_array_equal(nodes["c4.ch4-8"].weight, w[:, 4:])
    np.testing.assert_array_equal(nodes["c4.ch0-4"].bias, branchy["c4"].op.bias)
    assert not nodes["c4.ch4-8"].bias.any() and ("c1b", "c4.ch4-8") in edges
    # grouped conv as a dense block-diagonal kernel (nir type-checks C_in = weight.shape[1])
    dense = nodes["c3"].weight
    assert dense.shape == (6, 8, 3, 3) and nodes["c3"].groups == 1
    assert not dense[:3, 4:].any() and not dense[3:, :4].any()
    np.testing.assert_array_equal(dense[:3, :4], branchy["c3"].op.weight[:3])
    # Affine after an Add: a diagonal 1x1 conv reading the Add's terms
    np.testing.assert_array_equal(np.diag(nodes["bn"].weight[:, :, 0, 0]), branchy["bn"].op.scale)
    assert {("c3", "bn"), ("c4.ch0-4", "bn"), ("c4.ch4-8", "bn")} <= edges
    # Affine after a Concat: the diagonal kernel sliced like any conv's
    scale = branchy["bn_cat"].op.scale
    np.testing.assert_array_equal(nodes["bn_cat.ch4-8"].weight[4:, :, 0, 0], np.diag(scale[4:]))
    assert not nodes["bn_cat.ch4-8"].weight[:4].any() and not nodes["bn_cat.ch4-8"].bias.any()
    # a term twice in one sum goes through Scale(2); τ = 1 is an IF neuron
    assert isinstance(nodes["c3.times2"], nir.Scale) and np.all(nodes["c3.times2"].scale == 2.0)
    assert ("c3.times2", "l4") in edges and ("c3", "l4") not in edges
    assert isinstance(nodes["l4"], nir.IF) and np.all(nodes["l4"].r == 1.0)
    assert np.all(nodes["l5"].tau == 1.0) and np.all(nodes["l5"].r == 1.0)  # τ = 0: dt/tau_m = 1
    assert ("h2", "r2.in") in edges and ("h3", "r2.in") in edges  # an Add into an Output


def test_metadata_states_time_and_conventions(chain):
    meta = build_nir(chain).graph.metadata
    assert meta["dt"] == 1.0 and meta["time_unit"] == "step" and meta["discretization"] == "euler"
    assert meta["threshold_comparison"] == ">" and "strict" in meta["threshold_note"]
    assert meta["reset"].startswith("hard") and ">=" in meta["conventions_note"]
    assert meta["time_steps"] == 4 and meta["encoding"] == "direct" and meta["input"] == "input"
    assert json.loads(meta["ir_outputs"]) == ["readout"] and meta["n_cuts"] == 0 and meta["cuts"] == ""
    assert "forward Euler" in meta["neuron_equation"] and meta["format"] == "emsdeploy.nir"


def test_exact_discretization(chain, tmp_path):
    result = export_nir(chain, tmp_path / "x.nir", discretization="exact")
    lif = result.graph.nodes["lif1"]
    np.testing.assert_allclose(lif.tau, -1.0 / math.log(0.25), rtol=1e-15)
    np.testing.assert_array_equal(lif.r, 4 / 3)
    assert result.graph.metadata["discretization"] == "exact"
    x = torch.rand(2, 2, 16, 16, dtype=torch.float64)
    assert_spike_exact(chain, import_nir(tmp_path / "x.nir"), x)


def test_refuse_instead_of_cutting():
    graph = trace(tiny_ee(), (64, 64))
    with pytest.raises(ExportError) as e:
        build_nir(graph, on_unsupported="error")
    msg = str(e.value)
    assert "NIR 1.0 cannot express 5 node(s) exactly: model.1.pools (MaxPool2d on current inputs)" in msg
    assert (
        "model.8 (Upsample on current inputs)" in msg and "MaxPool2d (spike)" in msg and "LIF (analog, current)" in msg
    )


def test_a_target_cannot_place_what_has_no_lowering(tmp_path):
    toml = tmp_path / "wild.toml"
    toml.write_text(
        'name = "wild"\n[chip]\nInput = []\nConv2d = ["spike", "current", "analog"]\nAdd = ["current"]\n'
        'Concat = ["spike", "current"]\nLIF = ["current"]\nMaxPool2d = ["spike", "current"]\nUpsample = ["current"]\n'
    )
    with pytest.raises(
        ExportError, match=r"model.1.pools \(MaxPool2d on current inputs\): the target 'wild' places it"
    ):
        build_nir(trace(tiny_ee(), (64, 64)), target=toml)


def test_the_nir_target_is_what_the_exporter_lowers():
    target = load_target("nir")
    for op, kinds in target.chip.items():
        assert op in LOWERED and kinds <= LOWERED[op], op
    for op, kind in CUT_OPS:
        assert target.placement(op, {kind}) == "host"
    assert target.placement("Readout", {"current"}) == "host" and target.placement("MaxPool2d", {"spike"}) == "chip"


def test_bad_options(chain):
    with pytest.raises(ExportError, match="unknown discretization 'rk4'"):
        build_nir(chain, discretization="rk4")
    with pytest.raises(ExportError, match="on_unsupported must be one of cut, error"):
        build_nir(chain, on_unsupported="warn")
    with pytest.raises(ExportError, match="unknown target 'loihi3'"):
        build_nir(chain, target="loihi3")
    memoryless = chain.copy()
    memoryless.replace("lif1", op=LIF(0.0, 0.5))
    with pytest.raises(ExportError, match="no exact-discretisation time constant"):
        build_nir(memoryless, discretization="exact")


def test_write_errors_name_the_path(chain, tmp_path):
    with pytest.raises(ExportError, match="is a folder; give a file name"):
        export_nir(chain, tmp_path)
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(ExportError, match=r"file.txt/m.nir: cannot write the NIR file"):
        export_nir(chain, blocker / "m.nir")
    # a failed write leaves the old file and no temporaries
    good = tmp_path / "m.nir"
    export_nir(chain, good)
    before = good.read_bytes()
    with pytest.raises(ExportError):
        export_nir(chain, good, discretization="rk4")
    assert good.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "m.nir"]


def test_every_op_the_nir_target_places_has_one_lowering():
    """LOWERINGS: one lowering per op (LOWERED is its view); the nir target places nothing else."""
    from emsdeploy.exporters.nir.export import LOWERINGS

    assert LOWERED == {op.__name__: entry.kinds for op, entry in LOWERINGS.items()}
    assert set(load_target("nir").chip) == set(LOWERED)
    assert all(callable(entry.lower) for entry in LOWERINGS.values())


def test_an_op_without_a_nir_lowering_is_a_one_line_error(chain, monkeypatch):
    from emsdeploy.exporters.nir import export

    monkeypatch.delitem(export.LOWERINGS, LIF)
    with pytest.raises(ExportError) as e:
        build_nir(chain)
    msg = str(e.value)
    assert "\n" not in msg and "(LIF on current inputs): the target 'nir' places it in the NIR graph" in msg, msg
    assert msg.endswith("MaxPool2d (spike)") and "LIF (" not in msg
