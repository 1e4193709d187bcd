"""The weight-shared lowering (issue 14): relays, graded Conv readers, index upsampling.

``fold_max_synapses=0`` forces every construct of the mixed graph into its weight-shared form
at a small size: a relay for the upsampled current (read through a one-hot index Sparse), a
relay for the BN output read by a 3×3 conv of a current, graded Convs from the max-pool and
SiLU populations. Each is checked bit for bit against lava-nc below (marker ``lava``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emsdeploy.exporters.lava.report import mapping_report
from emsdeploy.ir import Kind
from emsdeploy.ir.linear import ConvMap, add_maps, apply_map, chain_cost, to_sparse
from emsdeploy.ir.ops.loihi import GradedRelay, SynConv, SynSparse
from emsdeploy.passes.expand_fanin import choose_cuts
from emsdeploy.simulators.ref_fixed import RefFixed
from tests.loihi_cases import lowered, mixed_graph, simplified


def test_cuts_break_every_unrolled_composition():
    g = simplified(mixed_graph(seed=0))
    assert choose_cuts(g, 1 << 18) == {}  # small: the old folding stays
    cuts = choose_cuts(g, 0)
    # the current before the upsampling, the upsampled current a 3×3 conv reads, the BN output
    assert set(cuts) == {"c4", "up", "bn"}
    assert "relayed at c4" in cuts["c4"]


def test_weight_shared_groups_only():
    q = lowered(mixed_graph(seed=0), fold_max_synapses=0)
    relays = [n.name for n in q if isinstance(n.op, GradedRelay)]
    assert relays == ["pool@relay", "bn", "silu@relay", "c4", "up"]  # custom outputs read by Convs: relayed 1:1
    for n in q:
        if isinstance(n.op, SynSparse):  # index structure only: at most one weight per output
            assert n.op.weight_s8.size <= int(np.prod(n.op.out_shape)), n.name
        if isinstance(n.op, SynConv) and q.kind(n.inputs[0]) != Kind.SPIKE:
            bound = int(q[n.inputs[0]].meta["out_bound"])
            w = np.abs(n.op.effective_weight())
            assert int(w.reshape(w.shape[0], -1).sum(1).max()) * bound < 1 << 23  # no 24-bit wrap
    rep = mapping_report(q)
    rows = {r["process"]: r for r in rep["processes"]}
    assert rows["bn"]["class"] == "GradedVec (relay)"
    assert "graded Conv" in rows["lif6<-bn"]["why"]


def test_relays_keep_the_float_values():
    """Relays carry currents as integers: the readouts stay as close to ref-float as folding's
    (the relay scale trades the rounding of its input weights against its readers')."""
    from emsdeploy.simulators.ref_float import RefFloat

    g = mixed_graph(seed=0)
    x = torch.rand(1, 3, 16, 16)
    ref = RefFloat(simplified(g)).run(x)
    folded = RefFixed(lowered(g)).run(x)
    relayed = RefFixed(lowered(g, fold_max_synapses=0)).run(x)
    for o in ("ro0", "ro1"):
        e_fold = float((folded.outputs[o] - ref.outputs[o].double()).abs().mean())
        e_relay = float((relayed.outputs[o] - ref.outputs[o].double()).abs().mean())
        assert e_relay < 2 * e_fold + 0.05, (o, e_fold, e_relay)


def test_graded_conv_that_could_wrap_fails_the_drc():
    """A graded Conv whose worst case passes 2**23 (Lava would wrap it) is rejected by the DRC."""
    from emsdeploy.errors import DRCError
    from emsdeploy.exporters.lava import drc
    from emsdeploy.profiles.loihi import load_profile

    q = lowered(mixed_graph(seed=0), fold_max_synapses=0)
    name = next(n.name for n in q if isinstance(n.op, SynConv) and isinstance(q[n.inputs[0]].op, GradedRelay))
    op = q[name].op
    q.replace(name, op=type(op)(np.full(op.weight_s8.shape, 127), 7, op.stride, op.padding, op.dilation, op.groups))
    with pytest.raises(DRCError, match="graded Conv sum"):
        drc.check(q, load_profile("loihi_bitacc"))


def test_kernels_of_one_source_merge_into_one_conv():
    rng = np.random.default_rng(0)
    a = ConvMap(rng.normal(size=(4, 3, 3, 3)), (1, 1), (1, 1), (1, 1), 1, (3, 6, 6), (4, 6, 6))
    b = ConvMap(rng.normal(size=(4, 3, 1, 1)), (1, 1), (0, 0), (1, 1), 1, (3, 6, 6), (4, 6, 6))
    m = add_maps(a, b)
    assert isinstance(m, ConvMap) and m.weight.shape == (4, 3, 3, 3)
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    np.testing.assert_allclose(apply_map(m, x), apply_map(a, x) + apply_map(b, x), atol=1e-12)


def test_chain_cost_bounds_the_unrolled_size():
    rng = np.random.default_rng(1)
    c1 = ConvMap(rng.normal(size=(4, 3, 3, 3)), (1, 1), (1, 1), (1, 1), 1, (3, 8, 8), (4, 8, 8))
    c2 = ConvMap(rng.normal(size=(5, 4, 3, 3)), (1, 1), (1, 1), (1, 1), 1, (4, 8, 8), (5, 8, 8))
    form, nnz = chain_cost((c2, c1))
    assert form == "sparse" and nnz >= to_sparse(c2).matrix.nnz
    from emsdeploy.ir.linear import compose

    assert nnz >= compose(c2, c1).matrix.nnz  # an upper bound of the real matrix
    assert chain_cost((c1,)) == ("conv", c1.weight.size)


@pytest.mark.lava
@pytest.mark.parametrize("encoding", ["direct", "frames"])
def test_relay_lowering_is_bit_exact(tmp_path: Path, encoding: str):
    from tests.exporters.lava.test_lava import run_both

    q = lowered(mixed_graph(seed=0, encoding=encoding), fold_max_synapses=0, custom_to_host=encoding == "frames")
    x = torch.rand(1, 3, 16, 16) if encoding == "direct" else torch.rand(1, 3, 3, 16, 16)
    stats = run_both(q, x, tmp_path)
    assert stats["graded"] > 1000 and stats["spikes"] > 1000


@pytest.mark.lava
def test_relay_delay_lines_are_bit_exact(tmp_path: Path):
    """Delayed graded Convs go through GradedVec delay relays instead of unrolled DelaySparse."""
    from tests.exporters.lava.test_lava import run_both

    q = lowered(mixed_graph(seed=5), relay_above=0, fold_max_synapses=0)
    assert any(isinstance(n.op, GradedRelay) and "relay_delay" in n.meta for n in q)
    run_both(q, torch.rand(1, 3, 16, 16), tmp_path)
