"""The Lava process graph: lowering conventions, the HDF5 file, exports and the mapping report
(no Lava runtime here; tests/exporters/lava/test_lava.py runs it)."""

import json

import numpy as np
import pytest
import scipy.sparse as sp

from emsdeploy.errors import ExportError
from emsdeploy.exporters.lava import export, load
from emsdeploy.exporters.lava.dag import csr_to_lava, dag_from_graph, read_dag, whc, write_dag
from emsdeploy.exporters.lava.network import LavaNetwork, host_term_values
from emsdeploy.exporters.lava.netx import NetxNetwork, chain_populations
from emsdeploy.exporters.lava.report import format_mapping, mapping_report
from emsdeploy.ir import read_ir
from emsdeploy.ir.linear import ConvMap, to_sparse
from tests.loihi_cases import chain_graph, lowered, mixed_graph, simplified


@pytest.fixture(scope="module")
def q():
    return lowered(mixed_graph(seed=0))


def test_kinds_and_connections(q):
    dag = dag_from_graph(q)
    kinds = {p.name: p.kind for p in dag.procs}
    assert (
        kinds["lif1"] == "lif"
        and kinds["ro0"] == "readout"
        and kinds["pool"] == "maxpool_current"
        and kinds["silu"] == "silu"
    )
    assert kinds["lif1<-input"] == "host_source" and kinds["lif2<-lif1"] == "conv" and kinds["lif3<-pool"] == "sparse"
    assert "delay_sparse" in kinds.values()
    placements = {p.name: p.placement for p in dag.procs}
    assert placements["pool"] == "custom" and placements["lif1<-input"] == "host" and placements["lif1"] == "chip"
    edges = {(e[0], e[2]): e for e in dag.edges}
    assert edges[("lif1", "lif2<-lif1")][4] == "" and edges[("lif2<-lif1", "lif2")][3] == "a_in"
    assert edges[("pool", "lif3<-pool")][4] == "flatten" and edges[("lif3<-pool", "lif3")][4] == "reshape"
    lif = dag.proc("lif2")
    assert lif.params["shape"] == whc(q.shape("lif2")) and lif.params["latency"] == 1
    conv = dag.proc("lif2<-lif1")
    assert conv.params["num_message_bits"] == 0 and conv.arrays["weight"].shape[1:3] == (3, 3)
    assert dag.proc("lif3<-pool").params["num_message_bits"] == 24  # graded spikes


def test_conv_kernel_is_flipped_and_transposed(q):
    dag = dag_from_graph(q)
    op = q["lif2<-lif1"].op
    w = dag.proc("lif2<-lif1").arrays["weight"]
    want = (op.weight_s8.astype(np.int64) << op.weight_exp_s4)[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)
    np.testing.assert_array_equal(w, want)


@pytest.mark.lava
def test_sparse_matrices_use_lavas_flat_order():
    """csr_to_lava re-indexes a (C,H,W) matrix exactly like lava's own conv_to_sparse."""
    from lava.proc.conv.utils import conv_to_sparse

    rng = np.random.default_rng(0)
    w = rng.integers(-5, 6, (4, 3, 3, 3)).astype(float)
    in_shape, out_shape = (3, 6, 5), (4, 3, 3)
    ours = to_sparse(ConvMap(w, (2, 2), (1, 1), (1, 1), 1, in_shape, out_shape)).matrix
    mine = csr_to_lava(ours.data, ours.indices, ours.indptr, in_shape, out_shape)
    w_lava = w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)
    dst, src, val = conv_to_sparse(whc(in_shape), whc(out_shape), w_lava, (2, 2), (1, 1), (1, 1), 1)
    theirs = sp.csr_matrix((val, (dst, src)), shape=mine.shape)
    np.testing.assert_array_equal(mine.toarray(), theirs.toarray())


def test_a_delayed_conv_becomes_a_delay_sparse_with_the_same_integers():
    from emsdeploy.passes.align_delays import align_delays
    from emsdeploy.passes.quantize import quantize
    from tests.passes.test_align_delays import delayed_conv_graph

    a = align_delays(quantize(simplified(delayed_conv_graph())))
    op = a["lif3<-lif1"].op
    spec = dag_from_graph(a).proc("lif3<-lif1")
    assert (
        spec.kind == "delay_sparse" and spec.params["delay"] == 1 and spec.params["weight_exp"] == op.weight_exp_s4 - 1
    )
    m = to_sparse(
        ConvMap(
            op.weight_s8.astype(float),
            op.stride,
            op.padding,
            op.dilation,
            op.groups,
            a.shape("lif1"),
            a.shape("lif3<-lif1"),
        )
    ).matrix
    want = csr_to_lava(2 * m.data, m.indices, m.indptr, a.shape("lif1"), a.shape("lif3<-lif1"))
    got = sp.csr_matrix((spec.arrays["data"], spec.arrays["indices"], spec.arrays["indptr"]), shape=want.shape)
    np.testing.assert_array_equal(got.toarray(), want.toarray())


def test_sparse_weights_are_doubled_with_exponent_minus_one(q):
    dag = dag_from_graph(q)
    op = q["lif3<-pool"].op
    p = dag.proc("lif3<-pool")
    assert p.params["weight_exp"] == op.weight_exp_s4 - 1
    assert sorted(p.arrays["data"].tolist()) == sorted((2 * op.weight_s8.astype(int)).tolist())


def test_file_round_trip(q, tmp_path):
    dag = dag_from_graph(q)
    back = read_dag(write_dag(dag, tmp_path / "n.lava.h5"))
    assert [p.name for p in back.procs] == [p.name for p in dag.procs]
    assert back.edges == dag.edges and back.readouts == dag.readouts and back.decode == dag.decode
    for a, b in zip(dag.procs, back.procs):
        assert json.loads(json.dumps(a.params)) == b.params, a.name
        for k in a.arrays:
            np.testing.assert_array_equal(a.arrays[k], b.arrays[k])
    with pytest.raises(ExportError, match="not an emsdeploy Lava DAG"):
        import h5py

        with h5py.File(tmp_path / "x.h5", "w") as f:
            f.attrs["format"] = "something"
        read_dag(tmp_path / "x.h5")


@pytest.mark.lava
def test_host_terms_are_computed_and_delayed(q):
    dag = dag_from_graph(q)
    spec = dag.proc("lif2<-input")  # delay 1
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (3, 16, 16))
    data = host_term_values(spec, [frame] * 3, 3 + dag.latency)
    assert data.shape == (*whc(q.shape("lif2")), 3 + dag.latency)
    assert not data[..., 0].any() and data[..., 1].any() and np.array_equal(data[..., 1], data[..., 3])
    assert not data[..., 4:].any()  # frames end after T


def test_export_writes_a_dag_for_a_dag_and_netx_for_a_chain(tmp_path):
    res = export(mixed_graph(seed=0), tmp_path / "dag")
    assert res["format"] == "dag" and (tmp_path / "dag" / "network.lava.h5").exists()
    assert isinstance(load(tmp_path / "dag"), LavaNetwork)
    assert read_ir(tmp_path / "dag" / "quantized.emsir").attrs["delays_aligned"]
    for f in ("mapping.txt", "mapping.json", "quantization.txt", "quantization.json"):
        assert (tmp_path / "dag" / f).stat().st_size > 0
    res = export(chain_graph(), tmp_path / "chain")
    assert res["format"] == "netx" and (tmp_path / "chain" / "network.net").exists()
    assert isinstance(load(tmp_path / "chain"), NetxNetwork)
    assert all(n.op.bias_exp_u3 == 6 for n in res["graph"] if hasattr(n.op, "bias_exp_u3"))
    with pytest.raises(ExportError, match="cannot write netx"):
        export(mixed_graph(seed=0), tmp_path / "x", fmt="netx")


def test_chain_detection():
    assert chain_populations(lowered(chain_graph()), check_bias=False)[0] == ["lif1", "lif2", "lif3", "ro"]
    names, why = chain_populations(lowered(mixed_graph()))
    assert not names and why


def test_mapping_report(q):
    rep = mapping_report(q, simplified(mixed_graph(seed=0)))
    rows = {r["process"]: r for r in rep["processes"]}
    assert rows["lif1"]["class"] == "LIFReset" and rows["lif1"]["neurons"] == 8 * 8 * 8
    assert rows["pool"]["kind"] == "custom" and rows["silu"]["class"] == "SiLUFixed"
    assert rows["lif1<-input"]["kind"] == "host" and rows["lif2<-lif1"]["synapses"] > 0
    assert rows["lif2<-lif1"]["weight_bytes"] == int(np.count_nonzero(q["lif2<-lif1"].op.weight_s8))
    assert rep["totals"]["latency_steps"] == 9
    nodes = {r["node"]: r for r in rep["ir_nodes"]}
    assert nodes["stem"]["placement"] == "host" and nodes["c1"]["placement"] == "chip"
    assert nodes["pool"]["placement"] == "custom" and nodes["cat"]["processes"]
    text = format_mapping(rep)
    assert "CurrentMaxPool" in text and "latency: 9 steps" in text
    host = mapping_report(lowered(mixed_graph(seed=0), custom_to_host=True))
    assert {r["process"]: r["kind"] for r in host["processes"]}["pool"] == "host"


# ---- the lowering registry ------------------------------------------------------------------------


def test_every_quantized_op_has_a_lava_lowering():
    """dag.LOWERINGS holds one function per op a quantized, delay-aligned graph may contain."""
    from emsdeploy.exporters.lava.dag import LOWERINGS
    from emsdeploy.ir import DECODES, Input
    from emsdeploy.ir.ops import loihi

    assert set(LOWERINGS) == {Input, *DECODES, *loihi.POPULATIONS, *loihi.CHIP_SYNAPSES, *loihi.HOST_TERMS}
    assert all(callable(f) for f in LOWERINGS.values())


def test_an_op_without_a_lava_lowering_is_a_one_line_error(q, monkeypatch):
    from emsdeploy.exporters.lava import dag
    from emsdeploy.ir.ops import loihi

    monkeypatch.delitem(dag.LOWERINGS, loihi.FixedSiLU)
    with pytest.raises(ExportError) as e:
        dag_from_graph(q)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("silu (FixedSiLU): no Lava lowering"), msg
    assert (
        "lowered: Input, Decode, LoihiLIF, LoihiReadout, FixedMaxPool" in msg
        and "FixedSiLU" not in msg.split(":", 2)[2]
    )
