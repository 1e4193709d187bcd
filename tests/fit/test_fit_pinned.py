"""The map and its traffic, pinned: cores, binding limit, tile and spike traffic per layer, totals.

``pinned_maps.json`` was recorded by the code before the fit memory work (main at 3ca129b), which
made the lowering, ref-fixed's run and the count cheaper in memory and time only: the map must not
move. The shipped checkpoint binds on all four limits, spans three chips and has delay relays; the
relayed mixed graph adds sparse and custom populations and relays of graded values.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emsdeploy.cli.cmd_fit import fit_loaded, spike_counts
from emsdeploy.energy import load_profile
from emsdeploy.exporters.lava.fit import estimate, fit, load_chip
from emsdeploy.models import DEFAULT_CHECKPOINT
from emsdeploy.pipeline import load_graph
from tests.loihi_cases import lowered, mixed_graph

PINNED = json.loads((Path(__file__).with_name("pinned_maps.json")).read_text())
CHIPS = ("loihi1", "loihi2")


def _digest(rep, est) -> dict:
    return {
        "totals": {"cores": rep.cores, "chips": rep.chips, "board": rep.board, "errors": len(rep.errors)},
        "layers": [
            [r.name, r.cores, r.binding, r.tile[0], r.tile[1], r.spikes, r.messages, r.chip_messages, r.sops]
            for r in rep.layers
        ],
        "traffic": {k: est[k] for k in ("sops", "neuron_updates", "messages", "chip_messages")},
    }


def _assert_same(got: dict, want: dict) -> None:
    assert got["totals"] == want["totals"]
    assert [row[0] for row in got["layers"]] == [row[0] for row in want["layers"]]
    for g, w in zip(got["layers"], want["layers"]):
        assert g == w, f"layer {w[0]}: got {g[1:]}, pinned {w[1:]}"
    assert got["traffic"] == want["traffic"]


@pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="the shipped checkpoint is not there")
def test_the_shipped_checkpoint_maps_as_pinned():
    loaded = load_graph(DEFAULT_CHECKPOINT)
    for chip in CHIPS:
        _assert_same(_digest(*fit_loaded(loaded, load_chip(chip))), PINNED[f"shipped/{chip}"])


def test_a_relayed_graph_with_sparse_and_custom_populations_maps_as_pinned():
    q = lowered(mixed_graph(size=16), relay_above=0)
    counts = spike_counts(q, None)
    prof = load_profile("loihi")
    for chip in CHIPS:
        rep = fit(q, load_chip(chip), counts)
        est = estimate(rep, prof.pj("ac"), prof.pj("active_neuron_update"))
        _assert_same(_digest(rep, est), PINNED[f"mixed-relayed/{chip}"])
