"""A membrane exactly at V_th does not fire, on every backend (DESIGN.md §3: S = 1[U > V_th]).

Random networks whose weights, biases and inputs lie on a coarse dyadic grid: every current and
membrane is exact in float32 and in Loihi fixed point, and many membranes land exactly on V_th
(at t = 0 and after a leak, in both layers). The expected spikes come from an oracle written
here (float64 torch conv + the LIF recurrence); torch's LIF module, ref-float (float32 and
float64), the stepwise ONNX graph, ref-fixed and lava-nc must all equal it element by element.
A backend that compared with ``>=`` would fire at each tie.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emsdeploy import models
from emsdeploy.ir import LIF, Conv2d, Graph, Input, Readout
from emsdeploy.simulators import RefFloat
from emsdeploy.simulators.ref_fixed import RefFixed
from tests.loihi_cases import lowered

T = 4
V_TH = 0.5
TAU = 0.25  # dyadic: leak and reset stay exact; 4096·(1 − τ) = 3072
LIFS = ("lif1", "lif2")


def _grid(rng, shape, lo: int, hi: int, den: int = 8) -> np.ndarray:
    return rng.integers(lo, hi + 1, shape) / den


def _graph(seed: int) -> Graph:
    """input (binary frames) → 3×3 conv → LIF → 3×3 conv → LIF → 1×1 conv → readout, on 1/8 grids."""
    rng = np.random.default_rng(seed)
    g = Graph({"time_steps": T})
    g.add("input", Input((2, 6, 6), "frames"))
    g.add("c1", Conv2d(_grid(rng, (4, 2, 3, 3), -2, 3), _grid(rng, 4, -2, 3), 1, 1), ["input"])
    g.add("lif1", LIF(TAU, V_TH), ["c1"])
    g.add("c2", Conv2d(_grid(rng, (4, 4, 3, 3), -2, 3), _grid(rng, 4, -2, 3), 1, 1), ["lif1"])
    g.add("lif2", LIF(TAU, V_TH), ["c2"])
    g.add("c3", Conv2d(_grid(rng, (3, 4, 1, 1), -4, 4), _grid(rng, 3, -2, 2)), ["lif2"])
    g.add("ro", Readout(), ["c3"])
    g.outputs = ["ro"]
    return g.validate()


def _input(seed: int) -> torch.Tensor:
    return (torch.rand(2, T, 2, 6, 6, generator=torch.Generator().manual_seed(seed)) < 0.4).double()


def _oracle(g: Graph, x: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """Currents, membranes and spikes [T, B, C, H, W] in float64, straight from the definitions."""
    out: dict[str, dict[str, list]] = {n: {"i": [], "u": [], "s": []} for n in LIFS}
    state = {n: None for n in LIFS}
    for t in range(T):
        src = x[:, t]
        for conv, lif in (("c1", "lif1"), ("c2", "lif2")):
            op = g[conv].op
            w, b = torch.as_tensor(op.weight, dtype=torch.float64), torch.as_tensor(op.bias, dtype=torch.float64)
            i = F.conv2d(src, w, b, padding=1)
            u = i if state[lif] is None else TAU * state[lif][0] * (1 - state[lif][1]) + i
            s = (u > V_TH).double()
            state[lif] = (u, s)
            for k, v in (("i", i), ("u", u), ("s", s)):
                out[lif][k].append(v)
            src = s
    return {n: {k: torch.stack(v) for k, v in rec.items()} for n, rec in out.items()}


SEEDS = (0, 1)


@pytest.fixture(scope="module", params=SEEDS)
def case(request):
    g = _graph(request.param)
    x = _input(request.param)
    want = _oracle(g, x)
    for n in LIFS:  # the point of the test: many exact ties, at t = 0 and after a leak
        ties = want[n]["u"] == V_TH
        assert int(ties[0].sum()) >= 3 and int(ties[1:].sum()) >= 3, (n, int(ties[0].sum()), int(ties[1:].sum()))
        assert not bool(want[n]["s"][ties].any())
        assert 0 < float(want[n]["s"].mean()) < 0.9
    return g, x, want


def _assert_spikes(name: str, got, want: torch.Tensor, backend: str) -> None:
    got = torch.as_tensor(np.asarray(got)).to(torch.bool)
    want = want.to(torch.bool)
    assert got.shape == want.shape, (backend, name, tuple(got.shape), tuple(want.shape))
    bad = int((got != want).sum())
    assert bad == 0, f"{backend} {name}: {bad} spikes differ from U > V_th (ties at V_th must not fire)"


def test_torch_lif_module(case):
    """The PyTorch model's neuron on the oracle's currents."""
    _, _, want = case
    lif = models.LIF(TAU, V_TH)
    with torch.no_grad():
        for n in LIFS:
            _assert_spikes(n, lif(want[n]["i"]), want[n]["s"], "torch")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ref_float(case, dtype):
    g, x, want = case
    tr = RefFloat(g, dtype).run(x.to(dtype), record="neurons")
    for n in LIFS:
        np.testing.assert_array_equal(tr.records[n]["u"].double().numpy(), want[n]["u"].numpy())
        _assert_spikes(n, tr.records[n]["s"], want[n]["s"], f"ref-float {dtype}")


@pytest.mark.onnx
def test_onnx(case):
    from emsdeploy.exporters.onnx import StepwiseSession, build_onnx

    g, x, want = case
    s = StepwiseSession(build_onnx(g, spikes=True), threads=1)
    tr = s.run(x.float().numpy(), record="neurons")
    for n in LIFS:
        _assert_spikes(n, tr.records[n]["s"], want[n]["s"], "onnx")


def test_ref_fixed(case):
    g, x, want = case
    q = lowered(g, input_scale=1.0)  # binary input: the host terms are exact integers
    assert all(q[n].op.vth_u17 == V_TH * q[n].op.scale for n in LIFS)
    tr = RefFixed(q).run(x, record="all")
    for n in LIFS:
        _assert_spikes(n, tr.records[n]["s"], want[n]["s"], "ref-fixed")


@pytest.mark.lava
def test_lava(tmp_path):
    """lava-nc's own LIF (v > vth << 6) on the exported network; one seed keeps it short."""
    from emsdeploy.exporters.lava.dag import dag_from_graph, write_dag
    from emsdeploy.exporters.lava.runner import run_in_subprocess

    g, x = _graph(SEEDS[0]), _input(SEEDS[0])
    want = _oracle(g, x)
    q = lowered(g, input_scale=1.0)
    path = write_dag(dag_from_graph(q), tmp_path / "network.lava.h5")
    lava = run_in_subprocess(path, x.float(), record="all", timeout=300)
    for n in LIFS:
        _assert_spikes(n, lava.records[n]["s"], want[n]["s"], "lava")
