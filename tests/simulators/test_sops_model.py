"""SOP counting on whole EMS-YOLO graphs: every conv against an independent output-side count."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from emsdeploy.ir import Conv2d, Kind
from emsdeploy.passes import run_flow
from emsdeploy.simulators import RefFloat
from emsdeploy.simulators.sops import count_sops
from emsdeploy.tracer import trace
from tests.helpers import tiny_ee


def output_side_sops(x: torch.Tensor, op: Conv2d) -> int:
    """Each output neuron counts the nonzero inputs its kernel covers: a conv of the nonzero mask
    with all-ones weights (same stride, padding, dilation, groups), summed."""
    kh, kw = op.kernel_size
    ones = torch.ones(op.out_channels, op.in_channels // op.groups, kh, kw, dtype=torch.float64)
    mask = (x != 0).to(torch.float64)
    return int(F.conv2d(mask, ones, None, op.stride, op.padding, op.dilation, op.groups).sum())


@pytest.mark.parametrize("encoding", ["direct", "frames"])
def test_every_conv_of_a_model_matches_the_output_side_count(encoding):
    graph = trace(tiny_ee(time_steps=3, encoding=encoding), (32, 32))
    x = torch.rand((2, 3, 32, 32) if encoding == "direct" else (2, 3, 3, 32, 32))
    if encoding == "frames":
        x = (x < 0.1).float()  # sparse event frames: many zeros in the first conv's input
    convs = graph.of_type(Conv2d)
    rec = RefFloat(graph).run(x, record=sorted({n.inputs[0] for n in convs})).records
    counts = count_sops(graph, [x])
    assert [r.name for r in counts.synapses] == [n.name for n in convs]
    for row, node in zip(counts.synapses, convs):
        values = rec[node.inputs[0]]
        values = values["s"] if "s" in values else values["y"]
        for t in range(3):
            assert row.sops[t] == output_side_sops(values[t], node.op), f"{row.name} step {t}"
        assert row.input_kind is graph.kind(node.inputs[0])
    kinds = {r.name: r.input_kind for r in counts.synapses}
    assert kinds["model.0.conv"] is Kind.ANALOG  # pixels / event frames: MAC
    assert kinds["model.1.residual_function.1"] is Kind.SPIKE  # after a LIF: AC
    assert kinds["model.5.shortcut.1"] is Kind.CURRENT  # BasicBlock_ms shortcut on currents: MAC
    assert counts.neurons and all(n.active.max() <= n.size * 2 for n in counts.neurons)


def test_counts_agree_on_the_folded_and_flattened_graph():
    """Folding BN into the convs and flattening sums into fan-in change no synaptic op."""
    graph = trace(tiny_ee(time_steps=2), (32, 32))
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    raw = count_sops(graph, [x], dtype=torch.float64)
    simple = count_sops(run_flow(graph, "simplify"), [x], dtype=torch.float64)
    by_name = {r.name: r for r in simple.synapses}
    for row in raw.synapses:
        assert by_name[row.name].sops.tolist() == row.sops.tolist(), row.name
    assert sum(n.active.sum() for n in raw.neurons) == sum(n.active.sum() for n in simple.neurons)
