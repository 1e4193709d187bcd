"""SpikeYOLO-n (the official fixture) on lava-nc in both spike modes, bit for bit against ref-fixed.

    python bench/spikeyolo_lava.py [--cut NODE] [--size 64] [--modes graded spike-driven] [--record NAME ...]

The fixture checkpoint is traced at ``--size``, simplified, and (``--cut``) truncated: a readout
of the current ``NODE`` replaces the rest of the network (everything it does not need is
removed). The Lava flow lowers it once; each mode is exported and run in lava-nc (a subprocess
with a timeout) on the fixture's first image, and every record is compared with ref-fixed over
every step: integers, graded values (of the populations ``--record`` names, default all),
readouts' integer v and outputs (the host's float box decoding: max |Δ|). One JSON line per mode.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO.parent / "shared" / "fixtures" / "official" / "spikeyolo_n_T1"


def truncated(cut: str | None, size: int):
    from emsdeploy.ir import Readout
    from emsdeploy.passes import run_flow
    from emsdeploy.passes.remove_dead import remove_dead
    from emsdeploy.pipeline import load_graph

    g = run_flow(load_graph(FIXTURE / "checkpoint_stripped_fp16.pt", (size, size)).graph, "simplify")
    if cut is None:
        return g
    g = g.copy()
    g.add(f"{cut}.readout", Readout(), [cut])
    g.outputs = [f"{cut}.readout"]
    return remove_dead(g).validate()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cut", default=None, help="a current node: read it out and drop what follows")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--modes", nargs="+", default=["graded", "spike-driven"])
    ap.add_argument("--timeout", type=float, default=1200.0)
    ap.add_argument("--record", nargs="+", default=None, help="populations to record (default: all)")
    a = ap.parse_args(argv)
    from emsdeploy.exporters.lava import lower
    from emsdeploy.exporters.lava.dag import dag_from_graph, write_dag
    from emsdeploy.exporters.lava.runner import run_in_subprocess
    from emsdeploy.ir.ops.loihi import LoihiIntegerLIF
    from emsdeploy.simulators import RefFixed

    t0 = time.perf_counter()
    q = lower(truncated(a.cut, a.size))
    lower_s = time.perf_counter() - t0
    x = torch.from_numpy(np.load(FIXTURE / "input.npy")[:1])
    t0 = time.perf_counter()
    ref = RefFixed(q).run(x, record="all", raw=True)
    ref_s = time.perf_counter() - t0
    ilifs = sum(isinstance(n.op, LoihiIntegerLIF) for n in q)
    outputs = {}
    for mode in a.modes:
        dag = dag_from_graph(q, mode)
        with tempfile.TemporaryDirectory() as d:
            path = write_dag(dag, Path(d) / "network.lava.h5")
            t0 = time.perf_counter()
            record = a.record if a.record else "all"
            lava = run_in_subprocess(path, x, record=record, raw=True, timeout=a.timeout)
            lava_s = time.perf_counter() - t0
        entries = mismatches = integers = 0
        for name, rec in lava.records.items():
            for key, got in rec.items():
                if key in ("s", "y", "sub_raw"):
                    continue  # aligned views are slices of the raw ones; sub-steps sum to the raw steps
                got = np.asarray(got, np.int64)
                want = np.asarray(ref.records[name][key], np.int64)[: got.shape[0]]
                assert got.shape == want.shape, (name, key)
                mismatches += int((got != want).sum())
                entries += got.size
                if key == "s_raw":
                    integers += int(got.sum())
        outputs[mode] = {k: np.asarray(v) for k, v in lava.outputs.items()}
        row = {
            "mode": mode,
            "cut": a.cut,
            "size": a.size,
            "i_lifs": ilifs,
            "processes": len(dag.procs),
            "latency": int(q.attrs["latency"]),
            "lava_steps": dag.run_steps(1),
            "entries": entries,
            "integers": integers,
            "mismatches": mismatches,
            "readouts_equal_ref": all(
                np.array_equal(v, ref.outputs[k].numpy()) for k, v in outputs[mode].items() if k in dag.readouts
            ),
            "decode_max_abs": max(
                (
                    float(np.abs(v - ref.outputs[k].numpy()).max())
                    for k, v in outputs[mode].items()
                    if k not in dag.readouts
                ),
                default=0.0,
            ),
            "lower_s": round(lower_s, 1),
            "ref_fixed_s": round(ref_s, 1),
            "lava_s": round(lava_s, 1),
        }
        print(json.dumps(row), flush=True)
    if len(outputs) == 2:
        same = all(np.array_equal(outputs["graded"][k], outputs["spike-driven"][k]) for k in outputs["graded"])
        print(json.dumps({"modes_identical_outputs": same}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
