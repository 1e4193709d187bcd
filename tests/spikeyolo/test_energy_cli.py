"""`emsdeploy energy` on the official SpikeYOLO-n fixture: integer spikes counted both ways."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import invoke


def test_energy_counts_integer_spikes_both_ways(spikeyolo_n: Path) -> None:
    args = ["energy", str(spikeyolo_n / "checkpoint_stripped_fp16.pt"), "--input", str(spikeyolo_n / "input.npy")]
    result = invoke(*args, "--json", "--integer-mode", "graded")  # both modes: tests/spikeyolo/test_ir_ops.py
    assert result.exit_code == 0, result.output
    driven = json.loads(result.output)
    t = driven["total"]
    assert t["integer_mode"] == "graded" and t["sop_integer_spike_driven"] > t["sop_integer_graded"] > 0
    assert t["sop_ac"] == t["sop_integer_graded"]
    layers = driven["layers"]
    # only the stem reads real values (pixels); every other synapse group reads integer spikes
    assert [r["name"] for r in layers if r["input_kind"] != "integer"] == ["model.1.encode_conv"]
    assert not any(r["name"].endswith(("body.0", "body.2.0")) for r in layers)  # RepConvs counted folded
    # the paper's formula uses the mean integer: 0.545 over all I-LIF outputs of the fixture
    neurons = driven["neurons"]
    spikes = sum(r["firing_rate"] * r["updates"] for r in neurons)
    nonzero = sum(r["nonzero_rate"] * r["updates"] for r in neurons)
    updates = sum(r["updates"] for r in neurons)
    assert abs(spikes / updates - 0.545) < 5e-4 and abs(nonzero / updates - 0.274) < 5e-4  # README §3
