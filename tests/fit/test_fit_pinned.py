"""The map and its traffic, pinned: cores, binding limit, tile and spike traffic per layer, totals.

``pinned_maps.json`` was recorded (``record_pins.py``) from the code before the fit memory work
(main at 3ca129b), which made the lowering, ref-fixed's run and the count cheaper in memory and
time only: the map must not move. A change that moves the lowering on purpose records them again
from its own tree (record_pins.py says how). The shipped checkpoint binds on all four limits, spans
three chips and has delay relays; the relayed mixed graph adds sparse and custom populations and
relays of graded values.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emsdeploy.cli.cmd_fit import fit_loaded, fit_lowered, lowered, spike_counts
from emsdeploy.energy import load_profile
from emsdeploy.exporters.lava.fit import estimate, fit, load_chip
from emsdeploy.ir import write_ir
from emsdeploy.ir.ops.loihi import SynSparse
from emsdeploy.models import DEFAULT_CHECKPOINT
from emsdeploy.pipeline import load_graph
from tests.loihi_cases import lowered as lowered_graph
from tests.loihi_cases import mixed_graph

from .record_pins import CHIPS, digest

PINNED = json.loads((Path(__file__).with_name("pinned_maps.json")).read_text())


def _assert_same(got: dict, want: dict) -> None:
    assert got["totals"] == want["totals"]
    assert [row[0] for row in got["layers"]] == [row[0] for row in want["layers"]]
    for g, w in zip(got["layers"], want["layers"]):
        assert g == w, f"layer {w[0]}: got {g[1:]}, pinned {w[1:]}"
    assert got["traffic"] == want["traffic"]


needs_shipped = pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="the shipped checkpoint is not there")


@pytest.fixture(scope="module")
def shipped():
    """The shipped checkpoint loaded, and lowered as ``fit`` lowers it."""
    loaded = load_graph(DEFAULT_CHECKPOINT)
    return loaded, lowered(loaded.graph)


@needs_shipped
def test_the_shipped_checkpoint_maps_as_pinned(shipped):
    loaded, _ = shipped
    for chip in CHIPS:
        _assert_same(digest(*fit_loaded(loaded, load_chip(chip))), PINNED[f"shipped/{chip}"])


def test_a_relayed_graph_with_sparse_and_custom_populations_maps_as_pinned():
    q = lowered_graph(mixed_graph(size=16), relay_above=0)
    counts = spike_counts(q, None)
    prof = load_profile("loihi")
    for chip in CHIPS:
        rep = fit(q, load_chip(chip), counts)
        est = estimate(rep, prof.pj("ac"), prof.pj("active_neuron_update"))
        _assert_same(digest(rep, est), PINNED[f"mixed-relayed/{chip}"])


@needs_shipped
def test_an_exports_quantized_graph_maps_the_same_with_its_relay_synapses_shared(shipped, tmp_path):
    """Read back from an IR file (an export's quantized.emsir), each relay's identity synapse has
    arrays of its own; ``fit`` shares them per shape (memory only): the map and traffic are the
    pinned ones."""
    loaded, q = shipped
    path = tmp_path / "quantized.emsir"
    write_ir(q, path)
    read = load_graph(path).graph
    shared = lowered(read)
    by_shape: dict = {}
    for n in shared:
        op = n.op
        if isinstance(op, SynSparse) and op.in_shape == op.out_shape and op.indices.size == op.indptr.size - 1:
            by_shape.setdefault(tuple(op.in_shape), []).append(n.name)
    names = max(by_shape.values(), key=len)
    assert len(names) >= 3  # model.3.residual_function.3's three relays
    first = shared[names[0]].op
    assert all(shared[n].op.indptr is first.indptr and shared[n].op.indices is first.indices for n in names)
    # the graph read is not changed: there, each relay synapse holds its own arrays
    assert len({id(read[n].op.indptr) for n in names}) == len(names)
    for chip in CHIPS:
        rep, est = fit_lowered(shared, loaded.checkpoint.meta, load_chip(chip))
        _assert_same(digest(rep, est), PINNED[f"shipped/{chip}"])
