"""The bounded float lowering of the fixed-point graph (fixed_fast_onnx.py) is exact.

Its arithmetic helpers are checked against ref-fixed's integer kernels on every edge of their
ranges; whole graphs take the fast branch (metadata) and agree with ref-fixed bit for bit; an
input beyond the proven bound runs the integer branch, still bit-exact; a graph with an op the
fast lowering lacks (FixedSiLU) is written as the integer graph alone.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emsdeploy.exporters.onnx.fixed import build_fixed_onnx
from emsdeploy.exporters.onnx.fixed_fast_onnx import _trunc_decay, _wrap24, floor_shift, saturated_sum, wrap
from emsdeploy.exporters.onnx.fixed_kernels_onnx import F32, F64, FixedBuilder, Value
from emsdeploy.ir import Graph, Input
from emsdeploy.ir.fixed_point import trunc_shift
from emsdeploy.ir.fixed_point import wrap as ref_wrap
from emsdeploy.ir.ops.loihi import LoihiLIF, LoihiReadout
from emsdeploy.tracer import trace
from tests.exporters.onnx.test_fixed import assert_exact
from tests.helpers import tiny_ee
from tests.loihi_cases import chain_graph, lowered, mixed_graph

HALF = 1 << 23


def _run(build, x: np.ndarray, elem: int) -> np.ndarray:
    """One helper applied to ``x`` (fed as ``elem``) in a one-node-chain ONNX graph."""
    g = Graph({"time_steps": 1, "loihi": {}})
    g.add("input", Input((1, 1, 1), "direct"))
    b = FixedBuilder(g)
    out = build(b)
    if out.name == "x":  # the helper proved itself a no-op
        out = Value(b.op("Identity", ["x"], "same"), out.elem)
    model = onnx.helper.make_model(
        onnx.helper.make_graph(
            b.nodes, "h", [onnx.helper.make_tensor_value_info("x", elem, [None])],
            [onnx.helper.make_tensor_value_info(out.name, out.elem, [None])], initializer=b.inits,
        ),
        opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8,
    )  # fmt: skip
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x.astype(np.float32 if elem == F32 else np.float64)})[0].astype(np.int64)


def _edges(bound: int, rng: np.random.Generator) -> np.ndarray:
    """Random integers in [−bound, bound] plus every boundary a wrap or shift can trip on."""
    marks = [0, 1, bound, HALF, 2 * HALF, 3 * HALF, 1 << 31, 1 << 32, 1 << 19, 1 << 12]
    edge = [s * (m + d) for m in marks for d in (-1, 0, 1) for s in (1, -1)]
    vals = np.concatenate([rng.integers(-bound, bound + 1, 20_000), np.array(edge, np.int64)])
    return vals[np.abs(vals) <= bound]


@pytest.mark.parametrize("bits", [24, 32])
@pytest.mark.parametrize("bound", [(1 << 23) - 1, 5 << 22, (1 << 40) + 7])
def test_wrap_matches_ref_fixed(bits, bound):
    x = _edges(bound, np.random.default_rng(bits))
    elem = F32 if bound + (1 << (bits - 1)) < 1 << 24 else F64
    got = _run(lambda b: wrap(b, Value("x", elem, bound), bits, "t"), x, elem)
    np.testing.assert_array_equal(got, ref_wrap(x, bits))


@pytest.mark.parametrize(("r", "bound"), [(1, 1 << 20), (6, (1 << 23) - 1), (19, 1 << 45)])
def test_rounding_shift_matches_integer_shift(r, bound):
    x = _edges(bound, np.random.default_rng(r))
    elem = F32 if bound + (1 << (r - 1)) < 1 << 24 else F64
    got = _run(lambda b: floor_shift(b, Value("x", elem, bound), r, "t", 1 << (r - 1)), x, elem)
    np.testing.assert_array_equal(got, (x + (1 << (r - 1))) >> r)


@pytest.mark.parametrize("bound", [HALF + 5, (1 << 24) - 1, 3 * HALF - 1, 5 * HALF, 1 << 31])
def test_24bit_wrap_matches_lava(bound):
    """Both forms (the modular one below 3·2^23 and the clipped one above) against Lava's two corrections."""
    x = _edges(bound, np.random.default_rng(bound % 97))
    elem = F32 if bound < 1 << 24 else F64
    got = _run(lambda b: _wrap24(b, Value("x", elem, bound), HALF, "t"), x, elem)
    cur = torch.from_numpy(x)
    w = torch.where(cur > HALF, cur - 2 * HALF, cur)
    want = torch.where(w <= -HALF, cur + 2 * HALF, w)
    np.testing.assert_array_equal(got, want.numpy())


@pytest.mark.parametrize("bound", [(1 << 24) + 64, 3 * HALF + 64, (1 << 30) - 64])
def test_24bit_wrap_of_multiples_of_64_in_float32(bound):
    """c = 64·a (the LIF's current) beyond 2^24 stays float32 (exact multiples of 64) and wraps as Lava does."""
    x = _edges(bound, np.random.default_rng(bound % 89)) // 64 * 64
    x = np.concatenate([x, 64 * np.arange(-(1 << 12), 1 << 12) + 3 * HALF, -(64 * np.arange(1 << 12)) - HALF])
    x = x[np.abs(x) <= bound]
    b_out = {}

    def build(b):
        b_out["v"] = _wrap24(b, Value("x", F32, bound, grain=6), HALF, "t")
        return b_out["v"]

    got = _run(build, x, F32)
    assert b_out["v"].elem == F32
    cur = torch.from_numpy(x)
    w = torch.where(cur > HALF, cur - 2 * HALF, cur)
    np.testing.assert_array_equal(got, torch.where(w <= -HALF, cur + 2 * HALF, w).numpy())


@pytest.mark.parametrize("cur_bound", [HALF, 5 * HALF, (1 << 30) - 64])
def test_saturated_sum_in_float32_beyond_2_24(cur_bound):
    """clip(decayed + cur + bias, ±(2^23 − 1)) in float32 although the sum passes 2^24: whatever
    rounds saturates as the exact sum does."""
    rng = np.random.default_rng(cur_bound % 83)
    n = 40_000
    d = np.concatenate([rng.integers(-HALF + 1, HALF, n), np.full(8, HALF - 1), np.full(8, -HALF + 1)])
    c = np.concatenate([rng.integers(-cur_bound // 64, cur_bound // 64 + 1, n) * 64,
                        [cur_bound // 64 * 64 * s for s in (1, -1, 1, -1, 1, -1, 1, -1)],
                        [cur_bound // 64 * 64 * s for s in (1, -1, 1, -1, 1, -1, 1, -1)]])  # fmt: skip
    d[:2000] = -c[:2000] + rng.integers(-HALF, HALF, 2000)  # sums near zero and near the edges
    d = np.clip(d, -HALF + 1, HALF - 1)
    bias = rng.integers(-HALF + 1, HALF, d.size)
    bias[:16] = (HALF - 1) * np.sign(c[:16])
    g = Graph({"time_steps": 1, "loihi": {}})
    g.add("input", Input((1, 1, 1), "direct"))
    b = FixedBuilder(g)
    pre, v = saturated_sum(b, Value("d", F32, HALF - 1), Value("c", F32, cur_bound, grain=6), bias, HALF, "t")
    assert pre.elem == F32
    model = onnx.helper.make_model(
        onnx.helper.make_graph(
            b.nodes, "h", [onnx.helper.make_tensor_value_info(n, F32, [None]) for n in ("d", "c")],
            [onnx.helper.make_tensor_value_info(v, F32, [None])], initializer=b.inits,
        ),
        opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8,
    )  # fmt: skip
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"d": d.astype(np.float32), "c": c.astype(np.float32)})[0].astype(np.int64)
    np.testing.assert_array_equal(got, np.clip(d + c + bias, -HALF + 1, HALF - 1))


def test_shared_stem_and_branch_lifs_are_computed_once_and_exact():
    """The stem conv read by both branch LIFs and by the max-pool (its nonzero channels) is one
    host conv; the second branch LIF copies the first's spikes and state; the max-pool's terms
    fill disjoint channel blocks (joined by Concat, no Pad); still bit-exact."""
    q = lowered(trace(tiny_ee(3, seed=5, width=0.25), (32, 32)))
    kernels = json.loads(_meta(q)["kernels"])
    assert any(k.startswith("host: the result of") and k.endswith(" only") for k in kernels.values()), kernels
    assert any(k.startswith("ConvInteger") and "only (the rest has no weight)" in k for k in kernels.values())
    assert any(k.startswith("the same population as") for k in kernels.values()), kernels
    assert assert_exact(q, torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(7)))["spikes"] > 500


@pytest.mark.parametrize("keep", [0, 1, 1024, 3000, 4095, 4096])
def test_decay_truncates_toward_zero(keep):
    x = _edges(HALF - 1, np.random.default_rng(keep))
    got = _run(lambda b: _trunc_decay(b, "x", keep, 12, HALF - 1, "t"), x, F32)
    want = trunc_shift(x.astype(np.int64) * keep, 12)
    np.testing.assert_array_equal(got, want)


def _meta(q, **kw) -> dict:
    model = build_fixed_onnx(q, **kw)
    return {p.key: p.value for p in model.metadata_props} | {"ops": {n.op_type for n in model.graph.node}}


@pytest.mark.parametrize("seed", [0, 3])
def test_chain_graph_takes_the_fast_branch_exactly(seed):
    """Host stem, strided convs, a leakier LIF, a readout."""
    q = lowered(chain_graph(seed=seed))
    meta = _meta(q)
    assert json.loads(meta["fast_path"]).startswith("bounded float lowering"), meta["fast_path"]
    assert "If" in meta["ops"]
    states = {n: d for n, _, d in json.loads(meta["states"])}
    assert set(states.values()) == {"float32"}
    assert assert_exact(q, torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(seed)))["spikes"] > 50
    lava = _meta(q, timing="lava")
    assert "If" not in lava["ops"] and "lava timing" in json.loads(lava["fast_path"])


def test_input_beyond_the_bound_runs_the_integer_branch():
    q = lowered(trace(tiny_ee(3, seed=4, width=0.25), (32, 32)))
    gen = torch.Generator().manual_seed(4)
    assert assert_exact(q, torch.rand(1, 3, 32, 32, generator=gen))["spikes"] > 500
    assert assert_exact(q, 4 * torch.rand(1, 3, 32, 32, generator=gen) - 2)["spikes"] > 500  # |x·255| up to 510


def test_unsupported_op_keeps_the_integer_graph():
    q = lowered(mixed_graph(seed=0))
    meta = _meta(q)
    assert "FixedSiLU" in json.loads(meta["fast_path"]) and "If" not in meta["ops"]


def test_synaptic_decay_and_leak_take_the_fast_branch_exactly():
    """u state (du < 4095, truncating decay in float64) and a non-power-of-two v decay."""
    q = lowered(chain_graph(seed=1))
    for n in q:
        if isinstance(n.op, LoihiLIF | LoihiReadout):
            n.op = dataclasses.replace(n.op, du_u12=1000, dv_u12=700)
    meta = _meta(q)
    assert json.loads(meta["fast_path"]).startswith("bounded float lowering")
    assert any(n.endswith(".u") for n, _, _ in json.loads(meta["states"]))
    assert assert_exact(q, torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)))["spikes"] > 50


def test_extreme_inputs_within_the_bound_stay_exact():
    """x in {−1, 0, 1} (x_q at ±255, the bound's edge): host sums at their extremes, on the fast branch."""
    q = lowered(trace(tiny_ee(3, seed=5, width=0.25), (32, 32)))
    kernels = json.loads(_meta(q)["kernels"])
    assert any(k.startswith("host: two float32 Conv") for k in kernels.values()), kernels
    gen = torch.Generator().manual_seed(5)
    signs = torch.randint(-1, 2, (2, 3, 32, 32), generator=gen).float()
    assert assert_exact(q, torch.cat([signs, torch.ones(1, 3, 32, 32), -torch.ones(1, 3, 32, 32)]))["entries"]


def test_pointwise_detection_is_exact():
    """A sparse group is lowered as a 1×1 channel MatMul only when it is exactly one."""
    from emsdeploy.exporters.onnx.fixed_fast_onnx import _pointwise

    rng = np.random.default_rng(0)
    ci, co, h, w = 3, 4, 2, 5
    w1 = rng.integers(-5, 6, (co, ci))
    dense = np.einsum("oc,pq->opcq", w1, np.eye(h * w, dtype=np.int64)).reshape(co * h * w, ci * h * w)
    rows, cols = np.nonzero(dense)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=dense.shape[0]))])
    data = dense[rows, cols]
    np.testing.assert_array_equal(_pointwise(data, cols, indptr, (ci, h, w), (co, h, w)), w1)
    moved = data.copy()
    moved[0] += 1  # one pixel's weight differs: not a convolution
    assert _pointwise(moved, cols, indptr, (ci, h, w), (co, h, w)) is None
    shifted = cols.copy()
    shifted[0] = (shifted[0] + 1) % (ci * h * w)  # reads a neighbouring pixel
    assert _pointwise(data, shifted, indptr, (ci, h, w), (co, h, w)) is None


def _kernel(b: FixedBuilder, x: tuple[str, int, tuple[int, ...]], y: tuple[str, int]) -> ort.InferenceSession:
    """A session of the builder's nodes: input ``x`` (name, element type, shape without the
    batch), output ``y`` (name, element type)."""
    model = onnx.helper.make_model(
        onnx.helper.make_graph(
            b.nodes, "g", [onnx.helper.make_tensor_value_info(x[0], x[1], [None, *x[2]])],
            [onnx.helper.make_tensor_value_info(y[0], y[1], None)], initializer=b.inits,
        ),
        opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8,
    )  # fmt: skip
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(
    ("batch", "c", "o", "h", "k", "stride", "pad", "dil"),
    [(1, 16, 32, 6, 3, 1, 1, 1), (2, 64, 64, 10, 3, 1, 1, 1), (2, 32, 16, 9, 3, 2, 1, 1), (3, 8, 16, 7, 3, 1, 2, 2),
     (1, 24, 48, 5, 2, 1, 0, 1), (2, 64, 27, 8, 3, 1, 1, 1), (2, 16, 21, 10, 3, 1, 1, 1)],
)  # fmt: skip
def test_gathered_matmul_integer_equals_the_convolution(batch, c, o, h, k, stride, pad, dil, seed=None):
    """The Gather im2col + MatMulInteger kernel gives the convolution's integer sums exactly
    (batch, stride, padding, dilation; weights over the whole int8 range, 0/1 spikes; widths of
    27 and 21, where onnxruntime's MatMulInteger itself is wrong unless padded to 16s)."""
    from emsdeploy.exporters.onnx.fixed_kernels_onnx import I32, U8, gathered_matmul_integer

    rng = np.random.default_rng(h * c + o if seed is None else seed)
    w = rng.integers(-128, 128, (o, c, k, k)).astype(np.int8)
    op = dataclasses.make_dataclass("Geometry", ["stride", "padding", "dilation"])(
        (stride,) * 2, (pad,) * 2, (dil,) * 2
    )
    b = FixedBuilder(Graph({"time_steps": 1, "loihi": {}}))
    y = gathered_matmul_integer(b, "x", w, (c, h, h), op, "conv")
    x = (rng.random((batch, c, h, h)) < 0.3).astype(np.uint8)
    got = _kernel(b, ("x", U8, (c, h, h)), (y, I32)).run(None, {"x": x})[0]
    want = torch.nn.functional.conv2d(torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64),
                                      stride=stride, padding=pad, dilation=dil).numpy()  # fmt: skip
    np.testing.assert_array_equal(got, want.astype(np.int64))


@settings(max_examples=30, deadline=None)
@given(
    batch=st.integers(1, 3), c=st.integers(1, 70), o=st.integers(1, 70), h=st.integers(3, 12), k=st.integers(1, 3),
    stride=st.integers(1, 2), pad=st.integers(0, 1), dil=st.integers(1, 2), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_gathered_matmul_integer_any_geometry(batch, c, o, h, k, stride, pad, dil, seed):
    """Property: any width (multiples of 16 or not), fan-in, batch and geometry give the
    convolution's integer sums exactly."""
    if (k - 1) * dil + 1 > h + 2 * pad:
        return
    test_gathered_matmul_integer_equals_the_convolution(batch, c, o, h, k, stride, pad, dil, seed)


def test_gathered_matmul_where_it_pays():
    """Spatial convs of >= 32 input channels with small outputs; 1×1, narrow inputs and wide,
    large outputs keep ``ConvInteger`` (docs/onnx.md, per-layer table)."""
    from emsdeploy.exporters.onnx.fixed_fast_onnx import _gathered_matmul_pays

    geom = dataclasses.make_dataclass("Geometry", ["groups"])(1)
    assert _gathered_matmul_pays(geom, (256, 256, 3, 3), (256, 20, 20))
    assert _gathered_matmul_pays(geom, (128, 64, 3, 3), (128, 40, 40))
    assert _gathered_matmul_pays(geom, (32, 64, 3, 3), (32, 80, 80))
    assert not _gathered_matmul_pays(geom, (256, 64, 3, 3), (256, 40, 40))
    assert not _gathered_matmul_pays(geom, (64, 32, 3, 3), (64, 80, 80))
    assert not _gathered_matmul_pays(geom, (64, 64, 1, 1), (64, 20, 20))
    assert not _gathered_matmul_pays(geom, (16, 8, 3, 3), (16, 16, 16))


def test_forced_matmul_integer_kernel_is_exact():
    """``kernel="MatMulInteger"`` everywhere (readouts of 21 or 27 outputs included) stays exact."""
    q = lowered(trace(tiny_ee(seed=3), (32, 32)))
    x = torch.rand(2, *q.input_node().op.shape, generator=torch.Generator().manual_seed(0))
    assert assert_exact(q, x, "aligned", kernel="MatMulInteger")["entries"] > 0


def test_pool_first_needs_a_per_channel_bias():
    """Max-pools are pooled before the bias only where the bias is constant over each channel: a
    bias that varies within a channel (not made by our quantizer, but legal in the IR) keeps the
    sum-bias-pool order, exactly."""
    from emsdeploy.ir.ops.loihi import FixedMaxPool

    q = lowered(trace(tiny_ee(3, seed=2, width=0.25), (32, 32)))
    pools = [n for n in q if isinstance(n.op, FixedMaxPool)]
    assert pools
    rng = np.random.default_rng(0)
    for n in pools:
        n.op = dataclasses.replace(n.op, bias_s24=rng.integers(-3000, 3000, n.op.bias_s24.shape).astype(np.int32))
    kernels = json.loads(_meta(q)["kernels"])
    assert not any("pooled before the join" in kernels[n.name] for n in pools if n.name in kernels)
    assert assert_exact(q, torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2)))["spikes"] > 50


@pytest.mark.parametrize(
    ("groups", "ci", "co_g", "k", "stride", "pad", "dil"),
    [(4, 1, 1, 3, 1, 1, 1), (2, 3, 2, 3, 1, 1, 1), (3, 2, 4, 3, 2, 1, 1), (2, 4, 3, 2, 1, 0, 2), (1, 5, 6, 3, 1, 1, 1)],
)  # fmt: skip
def test_grouped_im2col_matmul_equals_the_convolution(groups, ci, co_g, k, stride, pad, dil):
    """The integer graph's im2col + int64 MatMul of graded integers, grouped (SpikeYOLO's
    depthwise convs, and groups of several channels, where the (tap, channel) order matters),
    gives the convolution's sums exactly."""
    from emsdeploy.exporters.onnx.fixed_kernels_onnx import I64, _im2col_matmul

    rng = np.random.default_rng(groups * 100 + ci * 10 + co_g)
    c, co, h = groups * ci, groups * co_g, 7
    w = rng.integers(-(1 << 20), 1 << 20, (co, ci, k, k))
    op = dataclasses.make_dataclass("Geometry", ["stride", "padding", "dilation", "groups"])(
        (stride,) * 2, (pad,) * 2, (dil,) * 2, groups
    )
    b = FixedBuilder(Graph({"time_steps": 1, "loihi": {}}))
    y = _im2col_matmul(b, "conv", "x", w, (c, h, h), op)
    x = rng.integers(-300, 300, (2, c, h, h))
    got = _kernel(b, ("x", I64, (c, h, h)), (y, I64)).run(None, {"x": x})[0]
    want = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), stride=stride, padding=pad, dilation=dil,
                                      groups=groups).numpy()  # fmt: skip
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "integer"])
def test_integer_lif_step_on_ties_and_saturation(fast):
    """Both I-LIF lowerings against ``integer_lif_step`` over four carried steps, with inputs that
    put half the membranes exactly on a rounding tie (V = (n + 1/2)·Q: round half to even) and
    some beyond the saturation, negative membranes (the floor shift) and soft resets."""
    from emsdeploy.exporters.onnx import fixed_fast_onnx, fixed_kernels_onnx
    from emsdeploy.ir import Node
    from emsdeploy.ir.fixed_point import integer_lif_step
    from emsdeploy.ir.ops.loihi import LoihiIntegerLIF

    rng = np.random.default_rng(7)
    shape = (4, 8, 8)
    op = LoihiIntegerLIF(rng.integers(-3000, 3000, shape), levels=4, decay_shift_u4=2, frac_bits_u5=2, scale=4096.0)
    p = {"uv_bits": 24}
    g = Graph({"time_steps": 4, "loihi": p})
    b = FixedBuilder(g)
    a_bound = 1 << 22
    elem = F32 if fast else fixed_kernels_onnx.I64
    lower = fixed_fast_onnx._integer_lif if fast else fixed_kernels_onnx._integer_lif
    s, _ = lower(b, Node("il", op, ("a",)), [Value("a", elem, a_bound)])
    ins = [("a", shape, elem), *b.states_in]
    outs = [(s.name, shape, s.elem), *b.states_out]
    model = onnx.helper.make_model(
        onnx.helper.make_graph(
            b.nodes, "ilif", [onnx.helper.make_tensor_value_info(n, e, [None, *sh]) for n, sh, e in ins],
            [onnx.helper.make_tensor_value_info(n, e, [None, *sh]) for n, sh, e in outs], initializer=b.inits,
        ),
        opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8,
    )  # fmt: skip
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np_of = {F32: np.float32, fixed_kernels_onnx.I64: np.int64}
    feed = {n: np.zeros((2, *sh), np_of[e]) for n, sh, e in b.states_in}
    state, ties = None, 0
    for t in range(4):
        a = rng.integers(-(1 << 13), 1 << 14, (2, *shape))  # V mostly inside 0..D·Q = 0..2^16
        if t == 0:  # (a + b)·2^f ≡ Q/2 (mod Q), Q = 2^14: a tie of the first rounding
            tie = rng.random((2, *shape)) < 0.5
            a = np.where(tie, (a >> 12 << 12) + (1 << 11) - op.bias_s24, a)
        a[:, 0, 0, :] = a_bound * np.sign(a[:, 0, 0, :])  # saturates both ways
        want_s, state = integer_lif_step(op, a, state, p)
        got = dict(zip([n for n, _, _ in outs], sess.run(None, {"a": a.astype(np_of[elem]), **feed}), strict=True))
        np.testing.assert_array_equal(got[s.name].astype(np.int64), want_s)
        v_out = next(n for n, _, _ in b.states_out if n.endswith(".v"))
        np.testing.assert_array_equal(got[v_out].astype(np.int64), state[0])
        feed = {n.replace("state_out.", "state_in.", 1): got[n] for n, _, _ in b.states_out}
        ties += int(np.count_nonzero((np.clip(state[0], 0, 4 << 14) % (1 << 14)) == 1 << 13))
    assert ties > 100  # the rounding ties were reached
