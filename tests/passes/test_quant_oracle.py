"""An independent oracle for the quantizer (DESIGN.md §8, docs/lava.md §1).

Lava and ref-fixed run the same quantized graph, so their bit-exactness cannot see a quantizer
bug. Here the expected integers are computed from the float graph by the documented formulas,
written out in this file (no helper of the pass is used): BN folded by hand, one scale
S = 2**12 per population, per-group weight exponent e (the smallest that fits 8 bits; e >= 0 for
groups reading spikes), mantissas rint(w·S / 2**e), host terms rint(w·S/255 · 2**shift), the
finest bias exponent with rint(b·S·64 / 2**e_b) in 13 bits, dv = rint(4096·(1 − τ)),
vth = rint(V_th·S). The graphs are plain conv → BN → LIF chains, which every lowering treats
the same way.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from emsdeploy.errors import QuantizationError
from emsdeploy.ir import LIF, Affine, Conv2d, Graph, Input
from emsdeploy.passes.quantize import QuantizeOptions, quantize
from emsdeploy.profiles.loihi import load_profile
from tests.loihi_cases import simplified

# The widths, pinned (lava-nc 0.10.0 PyLifModelBitAcc; the host's integer terms are ours).
W_LO, W_HI = -128, 127  # 8-bit weight mantissa
E_MAX = 7  # weight exponent of a group
B_LO, B_HI = -4096, 4095  # 13-bit bias mantissa
EB_MAX = 7  # 3-bit unsigned bias exponent
VTH_MAX = 2**17 - 1  # 17-bit unsigned threshold
DV_MAX = 4095  # 12-bit decay
ACT_SHIFT = 6  # synaptic input joins u shifted left by 6
HOST_HI = 2**23 - 1  # 24-bit host weights
HOST_SHIFT_MAX = 30
K = 12  # scale_bits_max: S = 4096 unless a width forces it lower
IN_SCALE = 255.0


def test_the_profile_has_the_pinned_widths():
    p = load_profile()
    assert p.weight_range == (W_LO, W_HI) and p.weight_exp_max == E_MAX
    assert p.bias_mant_range == (B_LO, B_HI) and p.bias_exp_max == EB_MAX
    assert p.vth_max == VTH_MAX and p.dv_max == DV_MAX and p.act_shift == ACT_SHIFT
    assert p.host_weight_range[1] == HOST_HI and p.host_max_shift == HOST_SHIFT_MAX
    assert QuantizeOptions().scale_bits_max == K and QuantizeOptions().input_scale == IN_SCALE


def _layer(rng, cin: int, cout: int, w_peak: float, b_peak: float) -> tuple[Conv2d, Affine]:
    w = rng.uniform(-1, 1, (cout, cin, 3, 3))
    w *= w_peak / np.abs(w).max()
    bn_scale = rng.uniform(0.5, 1.5, cout)
    bn_shift = rng.uniform(-1, 1, cout) * b_peak / 3
    return Conv2d(w, rng.uniform(-1, 1, cout) * b_peak / 3, 1, 1), Affine(bn_scale, bn_shift)


def _chain(seed: int, w_peak: float = 1.0, b_peak: float = 0.9, depth: int = 3) -> Graph:
    """input → (conv → BN → LIF) × depth, random τ and V_th per layer."""
    rng = np.random.default_rng(seed)
    g = Graph({"time_steps": 2})
    g.add("input", Input((3, 6, 6), "direct"))
    prev, cin = "input", 3
    for i in range(depth):
        cout = int(rng.integers(3, 7))
        conv, bn = _layer(rng, cin, cout, w_peak, b_peak)
        g.add(f"conv{i}", conv, [prev])
        g.add(f"bn{i}", bn, [f"conv{i}"])
        g.add(f"lif{i}", LIF(float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.2, 1.5))), [f"bn{i}"])
        prev, cin = f"lif{i}", cout
    g.outputs = [prev]
    return g.validate()


def _folded(g: Graph, i: int) -> tuple[np.ndarray, np.ndarray]:
    """BN folded into the conv by hand: w·a, (b·a + c) per output channel (float64)."""
    conv, bn = g[f"conv{i}"].op, g[f"bn{i}"].op
    a, c = np.asarray(bn.scale, np.float64), np.asarray(bn.shift, np.float64)
    w = np.asarray(conv.weight, np.float64) * a[:, None, None, None]
    b = np.asarray(conv.bias, np.float64) * a + c
    return w, b


def _rint(x) -> np.ndarray:
    return np.rint(np.asarray(x, np.float64)).astype(np.int64)


def _smallest_exponent(x: np.ndarray, lo: int, hi: int, e_min: int, e_max: int) -> int:
    for e in range(e_min, e_max + 1):
        m = _rint(x / 2.0**e)
        if m.min() >= lo and m.max() <= hi:
            return e
    raise AssertionError("no exponent fits")


def _expect_lif(g: Graph, i: int, k: int) -> dict:
    lif = g[f"lif{i}"].op
    w, b = _folded(g, i)
    s = 2.0**k
    out: dict = {"dv": int(_rint(4096 * (1 - lif.tau))), "vth": int(_rint(lif.v_th * s)), "du": 4095}
    if i == 0:  # reads the image: a host term on x_int = rint(x·255), rounding shift
        wh = w * s / IN_SCALE
        shift = min(HOST_SHIFT_MAX, math.floor(math.log2(HOST_HI / np.abs(wh).max())))
        out.update(host_shift=shift, host_w=_rint(wh * 2.0**shift))
    else:  # reads spikes: a Lava Conv, e >= 0
        e = _smallest_exponent(w * s, W_LO, W_HI, 0, E_MAX)
        out.update(e=e, m=_rint(w * s / 2.0**e))
    eff = b * s * 2**ACT_SHIFT  # bias in v units, per channel
    e_b = _smallest_exponent(eff, B_LO, B_HI, 0, EB_MAX)
    out.update(e_b=e_b, bias=_rint(eff / 2.0**e_b))
    return out


def _check(g: Graph, q: Graph, k_of) -> int:
    """Compare every population and synapse group of ``q`` with the oracle; returns the layers checked."""
    n = 0
    for i in range(len(g.of_type(LIF))):
        name, src = f"lif{i}", ("input" if i == 0 else f"lif{i - 1}")
        k = k_of(i)
        want = _expect_lif(g, i, k)
        pop = q[name].op
        assert pop.scale == 2.0**k, name
        assert (pop.du_u12, pop.dv_u12, pop.vth_u17) == (want["du"], want["dv"], want["vth"]), name
        assert pop.bias_exp_u3 == want["e_b"], name
        c, h, w = pop.bias_mant_s13.shape
        np.testing.assert_array_equal(pop.bias_mant_s13, np.broadcast_to(want["bias"][:, None, None], (c, h, w)), name)
        term = q[f"{name}<-{src}"].op
        if i == 0:
            assert term.shift_u5 == want["host_shift"], name
            np.testing.assert_array_equal(term.weight_s24, want["host_w"], name)
        else:
            assert term.weight_exp_s4 == want["e"], name
            np.testing.assert_array_equal(term.weight_s8, want["m"], name)
        n += 1
    return n


@pytest.mark.parametrize("seed", range(6))
def test_random_chains_match_the_oracle(seed):
    """Moderate weights and biases: every population keeps S = 2**12."""
    g = _chain(seed, w_peak=float(np.random.default_rng(seed).uniform(0.05, 2.5)))
    q = quantize(simplified(g))
    assert _check(g, q, lambda i: K) == 3
    assert q.attrs["quantization"]["clips"] == []


def _k_forced(g: Graph, i: int) -> int:
    """The largest k <= 12 at which weights, threshold and bias all fit their widths."""
    w, b = _folded(g, i)
    lif = g[f"lif{i}"].op
    for k in range(K, -20, -1):
        s = 2.0**k
        fits_w = i == 0 or np.abs(_rint(w * s / 2.0**E_MAX)).max() <= W_HI
        fits_vth = _rint(lif.v_th * s) <= VTH_MAX
        fits_b = np.abs(_rint(b * s * 2**ACT_SHIFT / 2.0**EB_MAX)).max() <= B_HI
        if fits_w and fits_vth and fits_b:
            return k
    raise AssertionError("nothing fits")


@pytest.mark.parametrize("seed", range(3))
def test_large_weights_and_biases_lower_the_scale(seed):
    """Weights up to 60 and biases up to 12: the scale drops to what the widths allow."""
    g = _chain(100 + seed, w_peak=60.0, b_peak=12.0)
    q = quantize(simplified(g))
    ks = [_k_forced(g, i) for i in range(3)]
    assert min(ks) < K
    assert _check(g, q, lambda i: ks[i]) == 3


def _single(w_units: np.ndarray, b_units: np.ndarray, tau: float = 0.25, v_th: float = 0.5) -> Graph:
    """input → conv → LIF0 → conv (given integer-unit weights, S = 4096) → LIF1, no BN."""
    g = Graph({"time_steps": 2})
    g.add("input", Input((1, 3, 3), "direct"))
    g.add("conv0", Conv2d(np.full((len(w_units), 1, 1, 1), 0.25), np.zeros(len(w_units))), ["input"])
    g.add("bn0", Affine(np.ones(len(w_units)), np.zeros(len(w_units))), ["conv0"])
    g.add("lif0", LIF(), ["bn0"])
    cout = len(b_units)
    w = np.zeros((cout, len(w_units), 1, 1))
    w[0, :, 0, 0] = w_units / 4096.0
    g.add("conv1", Conv2d(w, b_units / (4096.0 * 64)), ["lif0"])
    g.add("bn1", Affine(np.ones(cout), np.zeros(cout)), ["conv1"])
    g.add("lif1", LIF(tau, v_th), ["bn1"])
    g.outputs = ["lif1"]
    return g.validate()


def _q(g: Graph, **opts) -> Graph:
    return quantize(simplified(g), QuantizeOptions(**opts))


@pytest.mark.parametrize(
    "units,e,mant",
    [
        ([10.4, 10.6, -10.4, -10.6, 2.5, -0.6], 0, [10, 11, -10, -11, 2, -1]),  # nearest (ties to even)
        ([127.0, -128.0, 3.0], 0, [127, -128, 3]),  # both ends of 8 bits, no exponent
        ([128.0, -128.0, 3.0], 1, [64, -64, 2]),  # 128 does not fit: e = 1, 3/2 → 2 (ties to even)
        ([127.0, -129.0, 1.4], 1, [64, -64, 1]),  # -129 does not fit: e = 1 (63.5 → 64, -64.5 → -64)
        ([300.0, -77.0, 5.0], 2, [75, -19, 1]),  # 300/4 = 75, -77/4 = -19.25, 5/4 = 1.25
    ],
)
def test_weight_mantissas_round_to_nearest_at_8_bits(units, e, mant):
    q = _q(_single(np.array(units), np.zeros(1)))
    term = q["lif1<-lif0"].op
    assert term.weight_exp_s4 == e
    assert term.weight_s8[0, :, 0, 0].tolist() == mant


@pytest.mark.parametrize(
    "units,e_b,mant",
    [
        ([10.4, 10.6, -10.4, -10.6, 0.5, 1.5], 0, [10, 11, -10, -11, 0, 2]),  # nearest, ties to even
        ([4095.0, -4095.0], 0, [4095, -4095]),  # the top of 13 bits (the pass keeps |mantissa| <= 4095)
        ([4096.0, -4096.0, 7.0], 1, [2048, -2048, 4]),  # 4096 does not fit: e_b = 1; 3.5 → 4
        ([-4097.0, 5.4], 1, [-2048, 3]),  # -4097 does not fit (-2048.5 → -2048; 2.7 → 3)
        ([50000.0, -1.0], 4, [3125, 0]),  # 50000/16 = 3125, -1/16 → 0
    ],
)
def test_bias_mantissas_round_to_nearest_at_13_bits(units, e_b, mant):
    q = _q(_single(np.ones(1), np.array(units)))
    pop = q["lif1"].op
    assert pop.scale == 4096.0 and pop.bias_exp_u3 == e_b
    assert pop.bias_mant_s13[:, 0, 0].tolist() == mant


@pytest.mark.parametrize(
    "tau,v_th,dv,vth",
    [(0.25, 0.5, 3072, 2048), (0.3, 0.30001, 2867, 1229), (0.7001, 0.1, 1228, 410), (0.99, 1.0, 41, 4096)],
)
def test_decay_and_threshold_round_to_nearest(tau, v_th, dv, vth):
    """dv = rint(4096·(1 − τ)): 2867.2 → 2867, 1228.39 → 1228, 40.96 → 41; vth = rint(V_th·4096)."""
    q = _q(_single(np.ones(1), np.zeros(1), tau, v_th))
    pop = q["lif1"].op
    assert (pop.dv_u12, pop.vth_u17, pop.du_u12) == (dv, vth, 4095)


def test_threshold_at_the_17_bit_limit_lowers_the_scale():
    """V_th = 40: 40·4096 > 2**17 − 1, so S = 2**11 and vth = 81920."""
    pop = _q(_single(np.ones(1), np.zeros(1), 0.25, 40.0))["lif1"].op
    assert pop.scale == 2.0**11 and pop.vth_u17 == 81920


def test_decay_beyond_12_bits_is_refused_or_clipped():
    """τ = 0 needs dv = 4096: refused by default, clipped to 4095 (and reported) with allow_clip."""
    g = _single(np.ones(1), np.zeros(1), 0.0, 0.5)
    with pytest.raises(QuantizationError, match=r"lif1: dv_u12 needs \[4096, 4096\] but u12 allows \[0, 4095\]"):
        _q(g)
    q = _q(g, allow_clip=True)
    assert q["lif1"].op.dv_u12 == 4095
    assert q.attrs["quantization"]["clips"] == [
        {"node": "lif1", "field": "dv_u12", "count": 1, "observed": [4096, 4096], "allowed": [0, 4095]}
    ]


def test_host_weights_beyond_24_bits_are_refused_or_clipped():
    """A host weight of 2**23 units (w·S/255 with no shift) is one past s24: clipped to 2**23 − 1."""
    g = Graph({"time_steps": 2})
    g.add("input", Input((1, 2, 2), "direct"))
    w = np.array([2.0**23, -(2.0**23) - 5, 7.0]).reshape(3, 1, 1, 1) * IN_SCALE / 4096
    g.add("conv0", Conv2d(w, np.zeros(3)), ["input"])
    g.add("lif0", LIF(), ["conv0"])
    g.outputs = ["lif0"]
    with pytest.raises(QuantizationError, match=r"lif0<-input: weight_s24 needs"):
        _q(g.validate())
    term = _q(g.validate(), allow_clip=True)["lif0<-input"].op
    assert term.shift_u5 == 0
    assert term.weight_s24.reshape(-1).tolist() == [2**23 - 1, -(2**23), 7]
