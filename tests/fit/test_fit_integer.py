"""``fit`` for integer spikes (SpikeYOLO's I-LIF) in both spike modes, on hand-sized layers:
graded messages vs binary spikes, synaptic ops, sub-steps and time steps (docs/fit.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emsdeploy.errors import EmsdeployError
from emsdeploy.exporters.lava import lower
from emsdeploy.exporters.lava.fit import PopulationCounts, estimate, fit, fit_json, format_fit, load_chip
from emsdeploy.ir import Conv2d, Graph, Input, IntegerLIF, Readout, write_ir
from emsdeploy.passes.quantize import QuantizeOptions
from emsdeploy.simulators import RefFixed
from tests.helpers import invoke
from tests.loihi_cases import integer_graph, lowered

LOIHI2 = load_chip("loihi2")


def _hand() -> tuple[Graph, torch.Tensor, dict[str, PopulationCounts]]:
    """Four I-LIF neurons fed 0, 1, 2.4 and 3.6 at T = 1 emit 0, 1, 2 and 4; a 1×1 conv of ones
    to 2 channels feeds a readout. Graded: 3 messages, each reaching 2 weights; spike-driven: 7
    binary spikes, 14 synaptic ops."""
    g = Graph({"time_steps": 1})
    g.add("input", Input((1, 1, 4), "frames"), [])
    g.add("ilif", IntegerLIF(), ["input"])
    g.add("conv", Conv2d(np.ones((2, 1, 1, 1), np.float32)), ["ilif"])
    g.add("readout", Readout(), ["conv"])
    g.outputs = ["readout"]
    q = lower(g.validate(), options=QuantizeOptions(input_scale=5.0))
    x = torch.tensor([0.0, 1.0, 2.4, 3.6]).view(1, 1, 1, 1, 4)
    s = np.array([0, 1, 2, 4]).reshape(1, 1, 4)
    counts = {
        "ilif": PopulationCounts(np.array([3]), (s > 0).astype(np.int64), np.array([7]), s),
        "readout": PopulationCounts(np.array([0]), np.zeros((2, 1, 4), np.int64)),
    }
    return q, x, counts


def test_hand_counts_are_what_ref_fixed_sends():
    q, x, counts = _hand()
    out = RefFixed(q).run(x, record="all").records["ilif"]["s"]
    assert out.flatten().tolist() == [0, 1, 2, 4]
    assert int((out > 0).sum()) == int(counts["ilif"].per_step[0]) and int(out.sum()) == 7


@pytest.mark.parametrize(
    ("mode", "messages", "sops", "substeps", "steps"), [("graded", 3, 6, 1, 2), ("spike-driven", 7, 14, 4, 5)]
)
def test_both_modes_on_hand_sized_layers(mode, messages, sops, substeps, steps):
    q, _, counts = _hand()
    rep = fit(q, LOIHI2, counts, mode)
    ilif = next(r for r in rep.layers if r.name == "ilif")
    assert (ilif.kind, ilif.cores, ilif.spikes, ilif.messages) == ("ilif", 1, messages, messages)
    assert next(r for r in rep.layers if r.name == "readout").sops == sops
    assert (rep.spike_mode, rep.substeps, rep.lava_steps) == (mode, substeps, steps)
    # both modes' totals whatever the chosen one: T = 1, L = 1
    g, d = rep.modes["graded"], rep.modes["spike-driven"]
    assert (g["messages"], g["sops"], g["substeps"], g["lava_steps"]) == (3, 6, 1, 2)
    assert (d["messages"], d["sops"], d["substeps"], d["lava_steps"]) == (7, 14, 4, 5)
    est = estimate(rep, 23.6, 81.0)
    assert est["run_steps"] == steps and est["neuron_updates"] == (4 + 8) * steps
    assert fit_json(rep)["spike_modes"]["spike-driven"]["messages"] == 7
    text = format_fit(rep, est)
    assert "graded        3 graded messages" in text and "spike-driven  7 binary spikes" in text


def test_no_integer_spikes_no_modes_and_unknown_modes_refused():
    from tests.loihi_cases import chain_graph

    rep = fit(lowered(chain_graph()), LOIHI2, None, "spike-driven")
    assert rep.modes == {} and rep.substeps == 1 and "spike_modes" not in fit_json(rep)
    with pytest.raises(EmsdeployError, match="unknown spike mode"):
        fit(lowered(chain_graph()), LOIHI2, None, "binary")


def test_cli_measures_unit_spikes_and_prints_both_modes(tmp_path):
    src = write_ir(integer_graph(seed=0), tmp_path / "g.emsir")
    res = invoke("fit", src, "--chip", "loihi2", "--spike-mode", "spike-driven")
    assert "integer spikes, both modes (this report's traffic: spike-driven)" in res.output
    assert "4·(T + L − 1) + 1 = 21 steps" in res.output
    out = invoke("fit", src, "--chip", "loihi2", "--json")
    modes = json.loads(out.output[out.output.index("{") :])["spike_modes"]
    assert modes["spike-driven"]["messages"] > modes["graded"]["messages"] > 0
    assert (modes["graded"]["lava_steps"], modes["spike-driven"]["lava_steps"]) == (6, 21)
