"""The node-by-node NIR writer: the same file as ``nir.write``, with per-neuron parameters
held as one scalar each until written (what keeps paper-size exports small; the peak memory
itself is measured by bench/export_memory.py, not here)."""

from __future__ import annotations

import h5py
import nir
import numpy as np

from emsdeploy.exporters.nir import build_nir
from emsdeploy.exporters.nir.writer import write_nir

from .conftest import branchy_graph


def _datasets(path) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, item: (
                out.__setitem__(name, (item.dtype, item.shape, item.compression, item[()]))
                if isinstance(item, h5py.Dataset)
                else None
            )
        )
    return out


def test_same_file_as_nir_write(tmp_path):
    graph = build_nir(branchy_graph()).graph
    nir.write(tmp_path / "theirs.nir", graph)
    write_nir(tmp_path / "ours.nir", graph)
    ours, theirs = _datasets(tmp_path / "ours.nir"), _datasets(tmp_path / "theirs.nir")
    assert sorted(ours) == sorted(theirs)
    for name, (dtype, shape, compression, value) in theirs.items():
        assert ours[name][:3] == (dtype, shape, compression), name
        np.testing.assert_array_equal(ours[name][3], value, err_msg=name)
    back = nir.read(tmp_path / "ours.nir")
    assert set(back.nodes) == set(graph.nodes) and back.edges == graph.edges


def test_per_neuron_parameters_are_one_scalar_until_written():
    graph = build_nir(branchy_graph()).graph
    neurons = [n for n in graph.nodes.values() if isinstance(n, (nir.LIF, nir.IF))]
    assert len(neurons) >= 4
    for n in neurons:
        for field in ("r", "v_threshold", "v_reset") + (("tau", "v_leak") if isinstance(n, nir.LIF) else ()):
            a = getattr(n, field)
            assert a.shape == tuple(n.input_type["input"]) and not any(a.strides), field
    lif = graph.nodes["l1"]  # τ = 0.25, V_th = 0.5
    assert (lif.tau.dtype, lif.r.dtype) == (np.float64, np.float64)  # 4/3 is not a float32
    assert {lif.v_threshold.dtype, lif.v_leak.dtype, lif.v_reset.dtype} == {np.dtype(np.float32)}
    assert graph.nodes["l2"].v_threshold.dtype == np.float64  # 0.4 is not a float32
