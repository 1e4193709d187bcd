"""The mapping rules of exporters/lava/fit.py on hand-sized layers (docs/fit.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emsdeploy.errors import EmsdeployError
from emsdeploy.exporters.lava.fit import PopulationCounts, ProfileError, fit, fit_json, load_chip
from emsdeploy.ir.ops.loihi import SynConv, SynSparse
from emsdeploy.simulators import RefFixed
from tests.loihi_cases import chain_graph, lowered, mixed_graph

from .conftest import two_layers

LOIHI1 = load_chip("loihi1")


def layer(rep, name):
    return next(r for r in rep.layers if r.name == name)


def test_shipped_chips_carry_a_source_for_every_value():
    for name in ("loihi1", "loihi2"):
        chip = load_chip(name)
        assert set(chip.sources) == set(chip.values)
        assert all(status in ("published", "from code", "assumed") and src for status, src in chip.sources.values())
    assert LOIHI1.limits == {"neurons": 1024, "input_axons": 4096, "output_axons": 4096, "synapse_memory": 1 << 20}
    assert load_chip("loihi2")["core.neurons"] == 8192


def test_exactly_at_the_neuron_limit_one_core_one_more_two():
    at = layer(fit(two_layers(4, 16, 8, k=1), LOIHI1), "b")  # 16·8·8 = 1024 neurons
    assert (at.neurons, at.cores, at.binding) == (1024, 1, "neurons")
    over = layer(fit(two_layers(4, 41, 5, k=1), LOIHI1), "b")  # 41·5·5 = 1025 neurons
    assert (over.neurons, over.cores, over.binding) == (1025, 2, "neurons")
    assert over.needs["neurons"] <= 1024


def test_exactly_at_a_user_limit_one_core(make_chip):
    q = two_layers(4, 8, 4, k=1)  # b: 128 neurons
    assert layer(fit(q, load_chip(make_chip(core__neurons=128))), "b").cores == 1
    assert layer(fit(q, load_chip(make_chip(core__neurons=127))), "b").cores == 2


def test_binding_limit_switches_as_fan_in_grows():
    small = layer(fit(two_layers(8, 8, 16), LOIHI1), "b")  # fan-in 72, 2048 neurons
    assert (small.fan_in, small.cores, small.binding) == (72, 2, "neurons")
    wide = layer(fit(two_layers(448, 8, 8), LOIHI1), "b")  # fan-in 4032: one position's field per core
    assert wide.fan_in == 448 * 9
    assert wide.binding == "input_axons"
    assert wide.tile[1] == 1 and wide.cores == 64  # 8×8 positions, each core one position (all 8 channels)
    assert wide.needs["input_axons"] == 4032 <= 4096


def test_binding_limit_switches_as_weights_grow():
    # 256·3·3 weights of 8 bits per output channel (18,432 bits): 56 channels' kernels fill 1 Mbit
    big = layer(fit(two_layers(256, 512, 4), LOIHI1), "b")
    assert big.binding == "synapse_memory"
    assert big.tile[0] == 32 and big.cores == 16  # 512 / 32 channel slices, all 16 positions each
    assert big.needs["synapse_memory"] == 32 * 256 * 9 * 8 <= 1 << 20
    light = layer(fit(two_layers(8, 512, 4), LOIHI1), "b")  # the same layer with 8·3·3 weights per channel
    assert (light.binding, light.cores) == ("neurons", 8)


def test_fan_in_past_the_input_axons_is_a_drc_error_naming_the_layer():
    rep = fit(two_layers(512, 4, 4), LOIHI1)  # 512·3·3 = 4608 > 4096
    b = layer(rep, "b")
    assert b.cores == 0 and b.binding == "input_axons"
    assert len(rep.errors) == 1
    msg = rep.errors[0]
    assert msg.startswith("b: ") and "4608" in msg and "4096" in msg and "input_axons" in msg
    assert fit_json(rep)["errors"] == [msg]


def test_a_user_chip_file_changes_the_result(make_chip):
    q = two_layers(64, 64, 8)
    shared = layer(fit(q, LOIHI1), "b")
    unshared = layer(fit(q, load_chip(make_chip(core__shares_conv_weights=False))), "b")
    # without weight sharing every synapse is stored with its 12-bit index: memory binds
    assert unshared.binding == "synapse_memory" and shared.binding != "synapse_memory"
    assert unshared.cores > shared.cores
    small = layer(fit(q, load_chip(make_chip(core__neurons=256))), "b")
    assert small.cores == math.ceil(64 * 64 / 256) and small.binding == "neurons"


def test_chip_file_errors_name_file_and_field(make_chip, tmp_path):
    bad = make_chip(core__input_axons="-3")
    with pytest.raises(ProfileError, match=r"mychip\.toml: \[core\.input_axons\]: must be an integer"):
        load_chip(bad)
    text = bad.read_text().replace('status = "from code"', 'status = "guessed"', 1)
    bad.write_text(text.replace("value = -3", "value = 4096"))
    with pytest.raises(ProfileError, match=r"\[core\.\w+\]: status must be one of published, from code, assumed"):
        load_chip(bad)
    huge = tmp_path / "huge.toml"
    huge.write_bytes(b"#" * (2 << 20))
    with pytest.raises(EmsdeployError, match="huge.toml: file size"):
        load_chip(huge)
    with pytest.raises(ProfileError, match="unknown chip 'loihi9'"):
        load_chip("loihi9")


def _counts_from_trace(q, x):
    """Per-population counts from ref-fixed's recorded trace (independent of the observer)."""
    trace = RefFixed(q).run(x, record="neurons")
    out = {}
    for name, rec in trace.records.items():
        if "s" not in rec and "y" not in rec:  # a readout: v only, it sends nothing
            shape = q[name].op.in_shape()
            out[name] = PopulationCounts(np.zeros(trace.time_steps, np.int64), np.zeros(shape, np.int64))
            continue
        s = rec["s"] if "s" in rec else rec["y"]
        nz = (s[:, 0] != 0).to(torch.int64)
        out[name] = PopulationCounts(nz.flatten(1).sum(1).numpy(), nz.sum(0).numpy())
    return out, trace


@pytest.mark.parametrize("make", [chain_graph, mixed_graph])
def test_traffic_equals_the_exact_spike_counts(make, make_chip):
    q = lowered(make(size=16))
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    counts, trace = _counts_from_trace(q, x)
    # 4 Mbit per core: the mixed graph's unrolled sparse group into "pool" fits one core too
    rep = fit(q, load_chip(make_chip(core__synapse_memory_bits=1 << 22)), counts)
    assert rep.chips == 1 and all(r.cores == 1 for r in rep.layers)
    for r in rep.layers:
        if r.kind == "readout":
            continue
        rec = trace.records[r.name]
        spikes = int(((rec["s"] if "s" in rec else rec["y"]) != 0).sum())
        assert r.spikes == spikes
        readers = [n for n in q if isinstance(n.op, (SynConv, SynSparse)) and n.inputs[0] == r.name]
        # one core per population here: one message per spike per reading group, none across chips
        assert r.messages == spikes * len(readers)
        assert r.chip_messages == 0
    # per run step: population P's valid step t is run step latency(P) + t
    steps = np.zeros(rep.time_steps + rep.latency)
    for r in rep.layers:
        readers = sum(1 for n in q if isinstance(n.op, (SynConv, SynSparse)) and n.inputs[0] == r.name)
        start = q[r.name].op.latency
        steps[start : start + rep.time_steps] += counts[r.name].per_step * readers
    assert np.array_equal(rep.step_messages, steps) and not rep.step_chip_messages.any()
    # synaptic ops: each spike times the kernel taps that land on it, checked with a ones-kernel conv
    for r in rep.layers:
        expect = 0
        for i in q[r.name].inputs:
            op = q[i].op
            src = q[i].inputs[0]
            if isinstance(op, SynConv):
                rec = trace.records[src]
                s = ((rec["s"] if "s" in rec else rec["y"])[:, 0] != 0).to(torch.float64)
                ones = torch.ones(op.weight_s8.shape, dtype=torch.float64)
                y = torch.nn.functional.conv2d(s, ones, None, op.stride, op.padding, op.dilation, op.groups)
                expect += int(y.sum())
            elif isinstance(op, SynSparse):
                rec = trace.records[src]
                s = ((rec["s"] if "s" in rec else rec["y"])[:, 0] != 0).flatten(1).to(torch.int64).numpy()
                expect += int((s @ np.bincount(op.indices, minlength=s.shape[1])).sum())
        assert r.sops == expect


def test_spikes_cross_chips_when_a_chip_is_full(make_chip):
    q = lowered(chain_graph(size=16))
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    counts, _ = _counts_from_trace(q, x)
    rep = fit(q, load_chip(make_chip(chip__cores=1)), counts)  # one core per chip
    assert rep.chips == rep.cores
    assert sum(r.chip_messages for r in rep.layers) == sum(r.messages for r in rep.layers) > 0
    assert rep.board is not None  # a board with enough chips: the smallest listed
    assert all(c >= rep.chips for b, c in rep.chip.boards if b == rep.board)


def test_export_writes_the_fit_reports_beside_the_mapping_report(tmp_path):
    import json

    from emsdeploy.exporters.lava import export

    res = export(chain_graph(size=16), tmp_path / "out")
    out = tmp_path / "out"
    assert {"fit.txt", "fit-loihi1.json", "fit-loihi2.json", "mapping.json"} <= {p.name for p in out.iterdir()}
    for chip in ("loihi1", "loihi2"):
        data = json.loads((out / f"fit-{chip}.json").read_text())
        assert data == fit_json(fit(res["graph"], load_chip(chip)))
    assert "chip: loihi1" in (out / "fit.txt").read_text() and "chip: loihi2" in (out / "fit.txt").read_text()


def test_a_kernel_past_the_core_memory_is_a_drc_error(make_chip):
    # one output channel of b holds 64·3·3 weights of 8 bits = 4,608 bits, in whole 64-bit words
    rep = fit(two_layers(64, 8, 4), load_chip(make_chip(core__synapse_memory_bits=4096)))
    msg = next(e for e in rep.errors if e.startswith("b: "))
    assert "4608 bits, past the 4096 bits" in msg and "synapse_memory" in msg
    assert layer(rep, "b").cores == 0
