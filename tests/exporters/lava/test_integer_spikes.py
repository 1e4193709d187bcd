"""Integer spikes (SpikeYOLO's I-LIF) on lava-nc, graded and spike-driven, bit-exact against
ref-fixed (docs/spikeyolo.md). Real Lava runs, each in a subprocess with a timeout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emsdeploy import ir
from emsdeploy.errors import ExportError
from emsdeploy.exporters.lava.dag import dag_from_graph, read_dag, write_dag
from emsdeploy.exporters.lava.runner import run_in_subprocess
from emsdeploy.simulators.ref_fixed import RefFixed
from tests.loihi_cases import chain_graph, integer_graph, lowered

TIMEOUT = 300


def _expanded(ref: np.ndarray, substeps: int, n: int, thermometer: bool) -> np.ndarray:
    """What a spike-driven population sends at each of the first n sub-steps: sub-step j of step
    t carries 1 where s[t] > j (an I-LIF), or the graded value at j = 0 and 0 after (others)."""
    out = np.zeros((n, *ref.shape[1:]), np.int64)
    for r in range(n):
        t, j = divmod(r, substeps)
        out[r] = (ref[t] > j) if thermometer else (ref[t] if j == 0 else 0)
    return out


def _check(q, x, lava, substeps: int) -> dict[str, int]:
    """Zero mismatches against ref-fixed over every recorded step (and sub-step)."""
    ref = RefFixed(q).run(x, record="all", raw=True)
    stats = {"entries": 0, "integers": 0}
    for name, rec in lava.records.items():
        for key, got in rec.items():
            got = np.asarray(got, np.int64)
            if key == "sub_raw":
                base = ref.records[name]["s_raw" if "s_raw" in ref.records[name] else "y_raw"]
                want = _expanded(np.asarray(base, np.int64), substeps, got.shape[0], "s_raw" in ref.records[name])
            else:
                want = np.asarray(ref.records[name][key], np.int64)[: got.shape[0]]
            assert got.shape == want.shape, (name, key, got.shape, want.shape)
            bad = np.argwhere(got != want)
            assert bad.size == 0, f"{name}.{key}: {len(bad)} mismatches, first at {bad[0].tolist()}"
            stats["entries"] += got.size
            if key == "s_raw":
                stats["integers"] += int(got.sum())
    for o, v in ref.outputs.items():
        np.testing.assert_array_equal(np.asarray(lava.outputs[o]), v.numpy())
    return stats


@pytest.mark.lava
def test_graded_and_spike_driven_are_bit_exact_and_agree(tmp_path):
    """One network, both modes: every I-LIF integer, max-pool value and readout equals ref-fixed;
    spike-driven sends each integer as its thermometer code over D = 4 sub-steps."""
    q = lowered(integer_graph(seed=0))
    x = torch.rand(1, 3, 16, 16)
    runs = {}
    for mode in ("graded", "spike-driven"):
        dag = dag_from_graph(q, mode)
        path = write_dag(dag, tmp_path / f"{mode}.lava.h5")
        assert read_dag(path).spike_mode == mode
        runs[mode] = run_in_subprocess(path, x, record="all", raw=True, timeout=TIMEOUT)
        stats = _check(q, x, runs[mode], dag.substeps)
        assert stats["integers"] > 1000
        assert runs[mode].timings["steps"] == dag.run_steps(2) - 1
    assert "sub_raw" in runs["spike-driven"].records["il1"]
    assert int(runs["spike-driven"].records["il1"]["sub_raw"].max()) == 1  # binary on the wire
    np.testing.assert_array_equal(runs["graded"].outputs["ro"], runs["spike-driven"].outputs["ro"])


@pytest.mark.lava
def test_spike_driven_relays_and_frames(tmp_path):
    """Relays (forced by a small fold limit) become RelayAccumulators spike-driven; event frames."""
    q = lowered(integer_graph(seed=1, encoding="frames"), fold_max_synapses=0)
    assert q.attrs["quantization"]["relays"]
    dag = dag_from_graph(q, "spike-driven")
    assert "relay_acc" in {p.kind for p in dag.procs}
    x = torch.rand(1, 2, 3, 16, 16)
    lava = run_in_subprocess(write_dag(dag, tmp_path / "n.lava.h5"), x, record="all", raw=True, timeout=TIMEOUT)
    _check(q, x, lava, dag.substeps)


def test_modes_lower_integer_groups_differently():
    q = lowered(integer_graph(seed=0))
    graded, driven = dag_from_graph(q, "graded"), dag_from_graph(q, "spike-driven")
    assert (graded.substeps, driven.substeps) == (1, 4)
    assert (graded.run_steps(2), driven.run_steps(2)) == (2 + 4, 4 * (2 + 4 - 1) + 1)
    bits = {p.name: p.params.get("num_message_bits") for p in graded.procs}
    assert bits["ro<-il4"] == 3 and bits["il3<-pool"] == 24  # 0..4 in 3 bits; a current in 24
    bits = {p.name: p.params.get("num_message_bits") for p in driven.procs}
    assert bits["ro<-il4"] == 0 and bits["il3<-pool"] == 24  # binary sub-steps; graded stays graded
    delays = {p.name: p.params.get("delay") for p in driven.procs if p.kind == "delay_sparse"}
    assert delays == {"il4<-il2": 4}  # one step is D time steps


def test_spike_driven_refuses_binary_lifs_and_unknown_modes():
    q = lowered(chain_graph())
    assert dag_from_graph(q, "spike-driven").spike_mode == "graded"  # no integer spikes: nothing to expand
    with pytest.raises(ExportError, match="unknown spike mode 'binary'"):
        dag_from_graph(lowered(integer_graph()), "binary")
    g = ir.Graph({"time_steps": 2})
    g.add("input", ir.Input((1, 4, 4), "direct"))
    g.add("c0", ir.Conv2d(np.ones((2, 1, 1, 1))), ["input"])
    g.add("il", ir.IntegerLIF(), ["c0"])
    g.add("c1", ir.Conv2d(np.ones((2, 2, 1, 1))), ["il"])
    g.add("lif", ir.LIF(), ["c1"])
    g.add("c2", ir.Conv2d(np.ones((2, 2, 1, 1))), ["lif"])
    g.add("ro", ir.Readout(), ["c2"])
    g.outputs = ["ro"]
    mixed = lowered(g.validate())
    dag_from_graph(mixed, "graded")  # a binary LIF reading integers: fine as graded spikes
    with pytest.raises(ExportError, match="lif \\(LoihiLIF\\): a binary LIF .* no spike-driven lowering"):
        dag_from_graph(mixed, "spike-driven")


def test_export_cli_records_the_mode_and_reports_both(tmp_path):
    """``emsdeploy export --spike-mode``: the mode in the network file, both modes' latency and
    message bounds in the mapping report and the summary."""
    from emsdeploy.ir import write_ir
    from tests.helpers import invoke

    src = write_ir(integer_graph(seed=0), tmp_path / "g.emsir")
    for mode in ("graded", "spike-driven"):
        out = tmp_path / mode
        res = invoke("export", src, "--target", "lava", "--spike-mode", mode, "-o", out)
        assert f"integer spikes (D = 4), exported {mode}" in res.output
        assert read_dag(out / "network.lava.h5").spike_mode == mode
        info = json.loads((out / "mapping.json").read_text())
        modes = info["integer_spikes"]["modes"]
        assert (modes["graded"]["lava_steps"], modes["spike-driven"]["lava_steps"]) == (6, 21)
        assert modes["spike-driven"]["messages_max"] == 4 * modes["graded"]["messages_max"] > 0
        kinds = {r["process"]: (r["class"], r["kind"]) for r in info["processes"]}
        assert kinds["il1"] == ("IntegerLIFFixed", "custom")
        assert "spike-driven" in (out / "mapping.txt").read_text()


def test_more_than_127_groups_are_merged_for_lavas_int8_groups():
    """lava-nc's Conv keeps groups in an int8: a depthwise conv over 384 channels becomes 96 groups
    of 4 with a block-diagonal kernel, the same convolution."""
    from emsdeploy.exporters.lava.dag import lava_groups

    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, (384, 1, 3, 3))
    merged, groups = lava_groups(w, 384)
    assert groups == 96 and merged.shape == (384, 4, 3, 3)
    x = torch.from_numpy(rng.integers(0, 5, (1, 384, 6, 6)).astype(np.float64))
    want = torch.nn.functional.conv2d(x, torch.from_numpy(w).double(), padding=1, groups=384)
    got = torch.nn.functional.conv2d(x, torch.from_numpy(merged).double(), padding=1, groups=96)
    assert torch.equal(want, got)
    assert lava_groups(w[:8], 8)[1] == 8
