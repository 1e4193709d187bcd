"""ref-fixed: Lava's integer arithmetic (checked against lava-nc's own model code) and its timing model."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from emsdeploy.errors import SimulationError
from emsdeploy.ir import LIF, Conv2d, Graph, Input, Readout
from emsdeploy.ir.fixed_point import effective_bias, lif_step, silu_step, wrap
from emsdeploy.ir.ops.loihi import FixedSiLU, LoihiLIF, LoihiReadout, SynConv, SynSparse
from emsdeploy.passes.quantize import QuantizeOptions
from emsdeploy.profiles.loihi import load_profile
from emsdeploy.simulators import RefFloat
from emsdeploy.simulators.fixed_kernels import conv_payload, sparse_payload
from emsdeploy.simulators.ref_fixed import RefFixed
from tests.conftest import shipped_checkpoint
from tests.helpers import spike_mismatches
from tests.loihi_cases import chain_graph, lowered, mixed_graph, simplified
from tests.tolerances import EXACT, FLOAT64_ROUNDING

P = load_profile().as_dict()


# ---- the kernels against lava-nc's code ----------------------------------------------------------


def _lava_lif(du, dv, vth, bias_mant, bias_exp, reset_offset=None):
    """lava's own bit-accurate LIF ProcessModel object, driven without a runtime."""
    from lava.proc.lif.models import PyLifResetModelBitAcc

    m = PyLifResetModelBitAcc({"reset_interval": 1000, "reset_offset": reset_offset or 0})
    m.du, m.dv, m.vth = du, dv, vth
    m.bias_mant, m.bias_exp = bias_mant.astype(np.int16), np.full(bias_mant.shape, bias_exp, np.int16)
    m.u = np.zeros(bias_mant.shape, np.int32)
    m.v = np.zeros(bias_mant.shape, np.int32)
    m.scale_bias()
    m.scale_threshold()
    return m


@pytest.mark.lava
@pytest.mark.parametrize(
    "du,dv,vth,amp",
    [(4095, 3072, 512, 3000), (4095, 2048, 2048, 200000), (1023, 123, 64, 50), (4095, 0, 131071, 140000)],
)
def test_lif_step_is_lavas_pylifmodelbitacc(du, dv, vth, amp):
    """Random inputs, including ones that wrap u (|a| >= 2**17) and saturate v."""
    rng = np.random.default_rng(du + dv + vth)
    shape = (4, 5, 6)
    bias = rng.integers(-4096, 4096, shape)
    m = _lava_lif(du, dv, vth, bias, 3)
    op = LoihiLIF(du, dv, vth, bias, 3, 1.0)
    u = torch.zeros(1, *shape, dtype=torch.int64)
    v = torch.zeros_like(u)
    for _ in range(12):
        a = rng.integers(-amp, amp, shape).astype(np.int32)
        m.subthr_dynamics(a)
        s_lava = m.spiking_activation()
        m.reset_voltage(s_lava)
        s, u, v = lif_step(op, torch.from_numpy(a.astype(np.int64))[None], u, v, effective_bias(op), P)
        np.testing.assert_array_equal(s[0], s_lava)
        np.testing.assert_array_equal(u[0], m.u)
        np.testing.assert_array_equal(v[0], m.v)


@pytest.mark.lava
def test_conv_payload_is_lavas_conv():
    from lava.proc.conv import utils

    rng = np.random.default_rng(1)
    w = rng.integers(-128, 128, (6, 4, 3, 3))
    op = SynConv(w, 3, 2, 1)
    x = rng.random((1, 4, 9, 7)) < 0.4
    got = conv_payload(op, torch.from_numpy(w.astype(np.float32)), torch.from_numpy(x.astype(np.int64)), P)[0]
    w_lava = (w.astype(np.int32) << 3)[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)
    ref = utils.conv(x[0].transpose(2, 1, 0), w_lava, (3, 3), (2, 2), (1, 1), (1, 1), 1)
    ref = utils.signed_clamp(ref, bits=24)
    np.testing.assert_array_equal(got.numpy().transpose(2, 1, 0), ref)


@pytest.mark.lava
@pytest.mark.parametrize("e", [-5, 0, 1, 4])
@pytest.mark.parametrize("graded", [False, True])
def test_sparse_payload_is_lavas_sparse(e, graded):
    """The Sparse model's arithmetic (lava's clip/truncate helpers, dot, shift by e - 1) on 2m."""
    from lava.utils.weightutils import SignMode, clip_weights, truncate_weights

    rng = np.random.default_rng(2)
    n_out, n_in = 30, 40
    dense = rng.integers(-128, 128, (n_out, n_in)) * (rng.random((n_out, n_in)) < 0.3)
    m = sp.csr_matrix(dense)
    op = SynSparse(m.data, m.indices, m.indptr, (n_in, 1, 1), (n_out, 1, 1), e)
    x = rng.integers(-5000, 5000, n_in) if graded else (rng.random(n_in) < 0.5).astype(np.int64)
    got = sparse_payload(
        op, sp.csr_matrix(dense.astype(np.int64)), torch.from_numpy(x.reshape(1, n_in, 1, 1)), P
    ).reshape(-1)
    w = sp.csr_matrix(dense.astype(np.int32) * 2)
    w = truncate_weights(clip_weights(w, SignMode.MIXED, num_bits=8), SignMode.MIXED, 8)
    acc = w.dot(x.astype(np.int32)) if graded else w[:, x.astype(bool)].sum(axis=1).A1
    ref = np.left_shift(acc, e - 1) if e - 1 > 0 else np.right_shift(acc, 1 - e)
    np.testing.assert_array_equal(got.numpy(), ref)


def test_wrap():
    x = torch.tensor([2**23, -(2**23) - 1, 5, 2**24 + 3])
    assert wrap(x, 24).tolist() == [-(2**23), 2**23 - 1, 5, 3]


def test_silu_fixed_step_matches_the_official_recurrence(lif_unit):
    z = lif_unit["npz"]
    current = torch.from_numpy(z["current_float"]).double()
    s = 4096.0
    op = FixedSiLU(np.zeros(current.shape[2:], np.int32), 0.25, True, s, s)
    state = m = sv = None
    for t in range(current.shape[0]):
        a = np.rint(current[t].numpy() * s).astype(np.int64)
        y, state = silu_step(op, a, state)
        # exact: the official in-place recurrence in float64 on the quantized current, rounded once
        i = a / s
        m = i if m is None else 0.25 * sv * (1.0 - sv) + i
        sv = m / (1.0 + np.exp(-m))
        np.testing.assert_array_equal(y, np.rint(sv * s).astype(np.int64))
        # against the official float run only the input rounding (0.5 LSB) differs; SiLU' <= 1.1 and the
        # echo through 0.25·s(1-s) (gain 0.25·|1-2s|·1.1 <= 0.83 for |m| < 2, as here) bound it by 0.5/(1-0.83) + 0.5 < 4 LSB
        np.testing.assert_allclose(y / s, z["silu_inplace"][t], atol=4 / s)


# ---- the timing model -----------------------------------------------------------------------------


def _dyadic_chain() -> Graph:
    """Weights and biases on a 1/64 grid: fixed point is exact, so ref-fixed == ref-float."""
    rng = np.random.default_rng(3)
    g = Graph({"time_steps": 4})
    g.add("input", Input((2, 8, 8), "frames"))
    g.add("stem", Conv2d(rng.integers(-64, 64, (4, 2, 3, 3)) / 64, rng.integers(-16, 32, 4) / 64, 1, 1), ["input"])
    g.add("lif1", LIF(0.25, 0.5), ["stem"])
    g.add("c1", Conv2d(rng.integers(-40, 64, (4, 4, 3, 3)) / 64, rng.integers(-16, 16, 4) / 64, 2, 1), ["lif1"])
    g.add("lif2", LIF(0.5, 0.5), ["c1"])
    g.add("c2", Conv2d(rng.integers(-64, 64, (3, 4, 1, 1)) / 64, rng.integers(-16, 16, 3) / 64), ["lif2"])
    g.add("ro", Readout(), ["c2"])
    g.outputs = ["ro"]
    return g.validate()


def test_timing_model_reproduces_ref_float_exactly_when_quantization_is_exact():
    g = _dyadic_chain()
    q = lowered(g, input_scale=64.0)
    x = torch.from_numpy(np.random.default_rng(4).integers(0, 65, (2, 4, 2, 8, 8)) / 64.0)
    f = RefFloat(simplified(g), torch.float64).run(x, record="neurons")
    r = RefFixed(q).run(x, record="all", raw=True)
    for n in ("lif1", "lif2"):
        torch.testing.assert_close(r.records[n]["s"].double(), f.records[n]["s"], **EXACT)
        lat = q[n].op.latency
        assert lat == {"lif1": 0, "lif2": 1}[n]
        torch.testing.assert_close(r.records[n]["s_raw"][lat : lat + 4], r.records[n]["s"], **EXACT)
    torch.testing.assert_close(r.outputs["ro"], f.outputs["ro"], **FLOAT64_ROUNDING)
    assert q.attrs["latency"] == 2


def test_lif_unit_dyadic_currents(lif_unit):
    """The official LIF unit test, through a host term and one fixed-point population: every
    spike agrees except the column whose current exceeds 0.5 by 2**-20, below 1/S."""
    z = lif_unit["npz"]
    cur = torch.from_numpy(z["current_dyadic"]).double()  # [T, 1, C, H, W]
    g = Graph({"time_steps": 5})
    c = cur.shape[2]
    g.add("input", Input(tuple(cur.shape[2:]), "frames"))
    g.add("id", Conv2d(np.eye(c).reshape(c, c, 1, 1)), ["input"])
    g.add("lif", LIF(0.25, 0.5), ["id"])
    g.add("ro", Readout(), ["id"])
    g.outputs = ["lif", "ro"]
    q = lowered(g.validate(), input_scale=64.0)
    r = RefFixed(q).run(cur.permute(1, 0, 2, 3, 4), record=["lif"])
    got = r.records["lif"]["s"][:, 0].numpy().astype(np.uint8).reshape(5, -1)
    want = z["spike_dyadic"][:, 0].reshape(5, -1)
    diff = np.argwhere(got != want)
    assert {int(i) for i in diff[:, 1]} <= {6}  # only 'just_above'
    assert got[:, 0].tolist() == [0, 1, 0, 1, 0]  # U exactly at V_th does not fire (strict >)


def test_batches_are_independent():
    q = lowered(mixed_graph(seed=1))
    x = torch.rand(3, 3, 16, 16)
    sim = RefFixed(q)
    both = sim.run(x, record="all")
    one = sim.run(x[1:2], record="all")
    for n, rec in one.records.items():
        timeless = isinstance(q[n].op, LoihiReadout)  # readouts record [B, ...], the rest [T, B, ...]
        for k, v in rec.items():
            mine = both.records[n][k][1:2] if timeless else both.records[n][k][:, 1:2]
            torch.testing.assert_close(mine, v, **EXACT)
    torch.testing.assert_close(both.outputs["ro0"][1:2], one.outputs["ro0"], **EXACT)


def test_time_steps_is_a_run_time_argument():
    q = lowered(chain_graph(time_steps=3))
    r = RefFixed(q).run(torch.rand(1, 3, 16, 16), time_steps=5, record=["lif1"], raw=True)
    assert r.records["lif1"]["s"].shape[0] == 5 and r.records["lif1"]["s_raw"].shape[0] == 5 + q.attrs["latency"]


def test_records_saturation_counts():
    q = lowered(mixed_graph(seed=2))
    sim = RefFixed(q)
    sim.run(torch.rand(1, 3, 16, 16))
    assert set(sim.stats) >= {"lif1", "ro0"} and all(v == 0 for s in sim.stats.values() for v in s.values())


def test_rejects_float_and_unaligned_graphs():
    with pytest.raises(SimulationError, match="quantized"):
        RefFixed(simplified(chain_graph()))
    from emsdeploy.passes.quantize import quantize

    with pytest.raises(SimulationError, match="align_delays"):
        RefFixed(quantize(simplified(chain_graph()), QuantizeOptions()))


def test_fixed_vs_float_on_the_official_fixtures(official):
    """The quantisation report's headline numbers: spike agreement and readout error."""
    from emsdeploy.pipeline import load_graph

    g = load_graph(official.checkpoint, (64, 64), official.T).graph
    q = lowered(g)
    x = official.input(0)
    f = RefFloat(simplified(g)).run(x, record="neurons")
    r = RefFixed(q).run(x, record="all")
    n, m = spike_mismatches(f, r)
    assert n > 0 and 1 - m / n > 0.95
    readouts = [o for o in r.outputs if "readout" in o]
    assert readouts, "no readout to compare"
    for o in readouts:
        assert float((f.outputs[o].double() - r.outputs[o]).abs().mean()) < 0.15


def test_fixed_vs_float_report():
    from emsdeploy.verify.quantization import compare_fixed_float, format_fixed_float

    g = mixed_graph(seed=3)
    rep = compare_fixed_float(simplified(g), lowered(g), torch.rand(1, 3, 16, 16))
    assert 0.9 < rep["agreement"] <= 1.0
    assert rep["mismatches"] == sum(p["mismatches"] for p in rep["populations"])
    # one layer at a time, 8-bit weights flip far fewer spikes than the cascade does
    assert rep["isolated_agreement"] >= rep["agreement"] and rep["isolated_agreement"] > 0.99
    first = rep["populations"][0]
    assert first["name"] == "lif1" and first["isolated_agreement"] == first["agreement"]  # fed by the host only
    names = {p["name"] for p in rep["populations"]}
    assert {"lif1", "lif2", "lif3", "lif4", "lif5", "lif6"} == names
    assert set(rep["outputs"]) == {"ro0", "ro1", "decode"} and "scores_max_abs" in rep["outputs"]["decode"]
    assert "spike agreement" in format_fixed_float(rep)


@pytest.mark.parametrize("relay_above", [None, 0])
def test_valid_window_only_equals_the_full_simulation(relay_above):
    """Skipping every population's invalid steps changes no valid value (the raw run does not skip)."""
    q = lowered(mixed_graph(seed=6), relay_above=relay_above)
    sim = RefFixed(q)
    x = torch.rand(2, 3, 16, 16)
    fast = sim.run(x, record="all")
    full = sim.run(x, record="all", raw=True)
    for name, rec in fast.records.items():
        for key, v in rec.items():
            torch.testing.assert_close(full.records[name][key], v, **EXACT)
    for o, v in fast.outputs.items():
        torch.testing.assert_close(full.outputs[o], v, **EXACT)


def test_fixed_vs_float_on_the_shipped_checkpoint():
    """The quantisation report on the shipped model (bench/fixed_vs_float.py has the full one)."""
    from emsdeploy.inputs import default_inputs
    from emsdeploy.pipeline import load_graph
    from emsdeploy.verify.quantization import compare_fixed_float

    path = shipped_checkpoint()
    loaded = load_graph(path)
    g = loaded.graph
    x = next(iter(default_inputs(g, loaded.checkpoint.meta, 1, None).samples()))
    rep = compare_fixed_float(simplified(g), lowered(g), x)
    assert rep["agreement"] > 0.96 and rep["isolated_agreement"] > 0.99
    assert not rep["saturation"]  # no u wrap, no v saturation at the default scales


# ---- the registries --------------------------------------------------------------------------------


def test_every_fixed_point_op_has_a_ref_fixed_model():
    """One model per population op and one factory per synapse group / host term."""
    from emsdeploy.ir import OPS
    from emsdeploy.ir.ops import loihi
    from emsdeploy.simulators.ref_fixed import POPULATION_MODELS, TERM_MODELS

    assert set(POPULATION_MODELS) == set(loihi.POPULATIONS)
    assert set(TERM_MODELS) == {*loihi.CHIP_SYNAPSES, *loihi.HOST_TERMS}
    fixed_ops = {cls for cls in OPS.values() if cls.__module__ == loihi.__name__}
    assert fixed_ops == set(POPULATION_MODELS) | set(TERM_MODELS)


def test_an_op_without_a_ref_fixed_model_is_a_one_line_error(monkeypatch):
    from emsdeploy.simulators import ref_fixed

    q = lowered(chain_graph())
    monkeypatch.delitem(ref_fixed.POPULATION_MODELS, LoihiLIF)
    with pytest.raises(SimulationError) as e:
        RefFixed(q)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("lif1 (LoihiLIF): ref-fixed has no step for it; it runs LoihiReadout"), (
        msg
    )
    assert "SynConv" in msg and "HostSparse" in msg


# ---- memory: chunked LIF steps, int32 state between steps ---------------------------------------


@pytest.mark.parametrize("du,dv,amp", [(4095, 2048, 200000), (1023, 123, 1 << 30), (4095, 0, 1 << 31)])
def test_the_lif_state_kept_between_steps_and_chunked_steps_change_nothing(monkeypatch, du, dv, amp):
    """ref-fixed's LIF model (int32 u, v between steps; channel slices of a large population) gives
    lif_step's int64 results bit for bit, wraps and saturations included, and the same counts."""
    from emsdeploy.simulators import ref_fixed

    rng = np.random.default_rng(du + dv)
    shape = (1, 7, 5, 6)
    op = LoihiLIF(du, dv, 300, rng.integers(-4096, 4096, shape[1:]), 3, 1.0)
    inputs = [rng.integers(-amp, amp, shape, dtype=np.int64) for _ in range(8)]

    def run(chunk):
        monkeypatch.setattr(ref_fixed, "CHUNK", chunk)
        model, state, stats, outs = ref_fixed._LIF(op, P, None), None, {}, []
        for a in inputs:
            s, state = model.step(wrap(a, 32), state, stats)
            outs.append((s, *(np.asarray(x, np.int64) for x in state[:2])))
        return outs, stats

    u = v = np.zeros(shape, np.int64)
    want_stats: dict = {}
    want = []
    for a in inputs:
        s, u, v = lif_step(op, wrap(a, 32), u, v, effective_bias(op), P, want_stats)
        want.append((s, u, v))
    assert want_stats.get("u_wraps", 0) + want_stats.get("v_saturations", 0) > 0  # the corrections are exercised
    for chunk in (1 << 20, 30, 61):  # whole, one channel per slice, slices of two with a remainder
        got, stats = run(chunk)
        assert stats == want_stats
        for g, w in zip(got, want):
            for x, y in zip(g, w):
                np.testing.assert_array_equal(x, y)


def test_a_run_with_chunked_lif_steps_is_the_same_run(monkeypatch):
    from emsdeploy.simulators import ref_fixed

    q = lowered(mixed_graph(seed=6), relay_above=0)
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    sim = RefFixed(q)
    whole = sim.run(x, record="all", raw=True)
    stats = dict(sim.stats)
    monkeypatch.setattr(ref_fixed, "CHUNK", 40)
    sliced = sim.run(x, record="all", raw=True)
    assert sim.stats == stats
    for name, rec in whole.records.items():
        for key, v in rec.items():
            torch.testing.assert_close(sliced.records[name][key], v, **EXACT)
    for o, v in whole.outputs.items():
        torch.testing.assert_close(sliced.outputs[o], v, **EXACT)
