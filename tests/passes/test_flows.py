"""Flows as data: each target names its flow, a flow runs once, the graph records it."""

from __future__ import annotations

import pytest

from emsdeploy.errors import PassError
from emsdeploy.ir import read_ir, write_ir
from emsdeploy.passes import FLOWS, applied_flows, flow_steps, run_flow
from emsdeploy.passes.flows import PASSES
from emsdeploy.targets import builtin_targets, load_target
from tests.loihi_cases import mixed_graph


def counting(monkeypatch) -> list[str]:
    """Replace every pass in the registry by a counting wrapper; return the call log."""
    calls: list[str] = []
    for name, fn in list(PASSES.items()):

        def counted(g, o, _name=name, _fn=fn):
            calls.append(_name)
            return _fn(g, o)

        monkeypatch.setitem(PASSES, name, counted)
    return calls


def test_every_flow_names_known_steps():
    for flow in FLOWS:
        assert all(step in FLOWS or step in PASSES for step in FLOWS[flow]), flow
    assert flow_steps("lava") == [
        "fold_affine",
        "fold_convs",
        "flatten_fanin",
        "remove_dead",
        "partition",
        "expand_fanin",
        "quantize",
        "align_delays",
    ]


def test_each_shipped_target_names_a_flow_that_exists():
    flows = {t: load_target(t).flow for t in builtin_targets()}
    assert flows["lava"] == "lava" and flows["nir"] == "nir"
    assert flows["onnx"] is None  # the float ONNX export writes the IR as traced
    assert all(f is None or f in FLOWS for f in flows.values())


def test_a_flow_runs_once_and_is_recorded(monkeypatch, tmp_path):
    calls = counting(monkeypatch)
    g = mixed_graph(seed=1)
    q = run_flow(g, "lava")
    assert calls == flow_steps("lava")
    assert applied_flows(q) == ["simplify", "loihi", "lava"] and applied_flows(g) == []  # input untouched
    assert run_flow(q, "lava") is q and run_flow(q, "simplify") is q  # recorded: not run again
    assert calls == flow_steps("lava")
    back = read_ir(write_ir(q, tmp_path / "q.emsir"))  # the record is saved with the graph
    assert applied_flows(back) == ["simplify", "loihi", "lava"]
    s = run_flow(g, "simplify")
    run_flow(s, "lava")
    assert calls[len(flow_steps("lava")) + len(flow_steps("simplify")) :] == [
        "partition",
        "expand_fanin",
        "quantize",
        "align_delays",
    ]


def test_observe_sees_each_step():
    seen: list[str] = []
    run_flow(mixed_graph(seed=1), "nir", observe=lambda step, g: seen.append(step))
    assert seen == ["fold_affine", "fold_convs", "flatten_fanin", "remove_dead", "simplify", "partition", "nir"]


def test_unknown_flow():
    with pytest.raises(PassError, match="unknown flow 'tpu'; flows: simplify"):
        run_flow(mixed_graph(seed=1), "tpu")


def test_a_malformed_record_is_refused():
    g = mixed_graph(seed=1).copy()
    g.attrs["flows"] = 5  # as an IR file could carry it
    with pytest.raises(PassError, match=r"attrs\['flows'\] must be a list of flow names, got '5'"):
        run_flow(g, "simplify")
