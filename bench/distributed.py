"""Scaling on one machine: the shipped model's energy sweep and 20 training steps, 1 vs 2 processes.

Each process uses one thread. The sweep counts the SOPs of the first 256 validation images
(the same code path as ``emsdeploy energy`` under torchrun); the training runs 20 DDP steps
of emsyolo-tiny on the shipped recipe's data with a global batch of 16. Timed inside the
processes, from a barrier after start-up (imports, graph loading, one untimed warm-up sample) to
the merged result, so the figures are throughput; the wall time of the whole launch is printed
beside them.

    python bench/distributed.py            # writes bench/results/distributed.json

The worker mode (``--worker``) is what torchrun starts.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "distributed.json"
SAMPLES = 256
STEPS = 20
BATCH = 16


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def worker_energy(out: str) -> None:
    from emsdeploy.distributed import current_world, process_group
    from emsdeploy.distributed.jobs import SweepArgs, energy_sweep
    from emsdeploy.inputs import choose_inputs
    from emsdeploy.pipeline import load_graph, source_or_default
    from emsdeploy.simulators.sops import SOPCounter

    loaded = load_graph(source_or_default(None), None, None)
    inputs = choose_inputs(None, loaded.graph, loaded.checkpoint.meta, SAMPLES, SAMPLES, None)
    # One untimed sample first, in every process: the first inference pays one-off costs (kernel
    # dispatch caches, allocator growth) that each extra process would pay again, and that a
    # throughput figure should not hold (the whole launch's wall time is reported beside it).
    SOPCounter(loaded.graph).run(next(iter(inputs.samples())))
    world = current_world()
    with process_group(world, "gloo"):
        _barrier()
        t0, cpu0 = time.perf_counter(), time.process_time()
        counts = energy_sweep(loaded.graph, inputs, SweepArgs(None, False), {"bench": "energy"})
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    Path(f"{out}.rank{world.rank}").write_text(json.dumps(cpu))
    if world.leader:
        total = int(sum(int(r.sops.sum()) for r in counts.synapses))
        Path(out).write_text(json.dumps({"seconds": seconds, "samples": counts.samples, "sops_total": total}))


def worker_train(out: str) -> None:
    import torch

    from emsdeploy.distributed import current_world, process_group
    from emsdeploy.models import build_model
    from emsdeploy.models.data import open_dataset
    from emsdeploy.models.training import TrainConfig, train
    from emsdeploy.models.training.recipe import FAST

    data = open_dataset(f"shapes:train={STEPS * BATCH}", "train", None)
    torch.manual_seed(0)
    model = build_model("emsyolo-tiny", 4, data.encoding, nc=len(data.names))
    cfg = TrainConfig(
        epochs=1, batch_size=BATCH, recipe=FAST.with_values(lr0=0.004), seed=0, device="cpu", max_steps=STEPS
    )
    world = current_world()
    with process_group(world, "gloo"):
        _barrier()
        t0, cpu0 = time.perf_counter(), time.process_time()
        result = train(model, data, cfg)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    Path(f"{out}.rank{world.rank}").write_text(json.dumps(cpu))
    if world.leader:
        Path(out).write_text(json.dumps({"seconds": seconds, "steps": result.steps}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(kind: str, nproc: int, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    me = [str(Path(__file__).resolve()), "--worker", kind, "--out", str(out)]
    if nproc == 1:
        cmd = [sys.executable, *me]
    else:
        where = ["--nnodes=1", "--master-addr=127.0.0.1", f"--master-port={_free_port()}"]
        cmd = [sys.executable, "-m", "torch.distributed.run", *where, f"--nproc-per-node={nproc}", *me]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    wall = time.perf_counter() - t0
    cpu = [json.loads(Path(f"{out}.rank{r}").read_text()) for r in range(nproc)]
    return {**json.loads(out.read_text()), "processes": nproc, "wall_seconds": round(wall, 2), "cpu_seconds": cpu}


def main(kinds: list[str]) -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    rows: dict = {}
    for kind, unit, key in (("energy", "samples/s", "samples"), ("train", "steps/s", "steps")):
        if kind not in kinds:
            continue
        for nproc in (1, 2):
            r = launch(kind, nproc, OUT.with_suffix(f".{kind}{nproc}.tmp"))
            r["rate"] = r[key] / r["seconds"]
            rows[f"{kind}-{nproc}"] = r
        one, two = rows[f"{kind}-1"], rows[f"{kind}-2"]
        ratio = two["rate"] / one["rate"]
        rows[f"{kind}-ratio"] = ratio
        # CPU seconds do not depend on how busy the machine is: on two idle cores the 2-process
        # run would take as long as its busiest rank's CPU time, plus waiting in collectives.
        idle = one["cpu_seconds"][0] / max(two["cpu_seconds"])
        rows[f"{kind}-cpu-ratio"] = idle
        print(
            f"{kind:6}: 1 process {one['rate']:.2f} {unit} ({one['wall_seconds']:.1f} s launch), "
            f"2 processes {two['rate']:.2f} {unit} ({two['wall_seconds']:.1f} s launch): x{ratio:.2f}; "
            f"CPU s 1 process {one['cpu_seconds'][0]:.1f}, per rank {[round(c, 1) for c in two['cpu_seconds']]}: "
            f"x{idle:.2f} on idle cores"
        )
    if "energy" in kinds and rows["energy-1"]["sops_total"] != rows["energy-2"]["sops_total"]:
        raise SystemExit("error: the 2-process sweep counted other SOPs than the 1-process one")
    rows["cpus"] = os.cpu_count()
    rows["load_average_before_after"] = [list(load_before), list(os.getloadavg())]
    for tmp in OUT.parent.glob("distributed.*.tmp*"):
        tmp.unlink()
    OUT.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"load average before/after (1, 5, 15 min): {load_before} / {os.getloadavg()} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", choices=["energy", "train"])
    ap.add_argument("--out")
    ap.add_argument("--only", choices=["energy", "train"], help="Run one of the two benchmarks.")
    a = ap.parse_args()
    if a.worker:
        import torch

        torch.set_num_threads(1)
        (worker_energy if a.worker == "energy" else worker_train)(a.out)
    else:
        main([a.only] if a.only else ["energy", "train"])
