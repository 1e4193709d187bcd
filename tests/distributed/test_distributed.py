"""Two real processes (torch.distributed.run, gloo on CPU) compute what one process computes.

Each torchrun test starts two fresh Python processes (torch import, rendezvous on a free
localhost port): most of a test's seconds are that start-up, not the sweep.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from emsdeploy.cli import cli

from . import train_step

HERE = Path(__file__).parent
ATOL = 1e-6  # DDP vs one process after one step: the same sums in another order (float32)


def _env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", EMSDEPLOY_DIST_TIMEOUT="120", PYTHONUNBUFFERED="1")
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun_cmd(args: list[str], nproc: int = 2, launcher: tuple[str, ...] = ()) -> list[str]:
    # The static rendezvous on a free localhost port: torch 2.3's c10d rendezvous (--standalone)
    # is closed when the agent restarts a failed worker group (pytorch/pytorch#123678).
    where = ["--nnodes=1", "--master-addr=127.0.0.1", f"--master-port={_free_port()}"]
    run = [sys.executable, "-m", "torch.distributed.run", *where, f"--nproc-per-node={nproc}", *launcher]
    return [*run, *(["-m", "emsdeploy"] if not args[0].endswith(".py") else []), *args]


def torchrun(args: list[str], nproc: int = 2, timeout: float = 240) -> subprocess.CompletedProcess:
    """``emsdeploy ARGS`` (or a script) under torchrun with ``nproc`` CPU processes."""
    return subprocess.run(
        _torchrun_cmd(args, nproc), capture_output=True, text=True, timeout=timeout, env=_env(), check=False
    )


def one_process(args: list[str]) -> str:
    """``emsdeploy ARGS`` in this process (one thread, as each torchrun worker); its stdout."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = CliRunner().invoke(cli, args)
    finally:
        torch.set_num_threads(threads)
    assert r.exit_code == 0, r.output
    return r.stdout


@pytest.fixture(scope="module")
def energy_reference(tmp_path_factory) -> tuple[str, bytes]:
    plot = tmp_path_factory.mktemp("one") / "energy.png"
    out = one_process(["energy", "--json", "--limit", "8", "--plot", str(plot)])
    return out, plot.read_bytes()


def test_energy_over_two_ranks_is_byte_identical(energy_reference, tmp_path):
    plot = tmp_path / "energy.png"
    r = torchrun(["energy", "--json", "--limit", "8", "--plot", str(plot), "--results", str(tmp_path / "res")])
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout == energy_reference[0]
    assert plot.read_bytes() == energy_reference[1]
    assert len(list((tmp_path / "res").glob("shard-*.json"))) == 8


def test_verify_over_two_ranks_is_byte_identical(tmp_path):
    args = ["verify", "--json", "--limit", "8", "--targets", "ref,onnx"]
    expected = one_process(args)
    r = torchrun(args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout == expected
    report = json.loads(r.stdout)
    assert report["inputs"] == [f"sample {i}" for i in range(8)] and report["ok"]


def test_eval_over_two_ranks_gives_the_same_map():
    args = ["eval", "--data", "shapes:val=8", "-b", "2", "--json"]
    expected = json.loads(one_process(args))
    r = torchrun(args)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout)
    assert got["map50"] == expected["map50"] and got["map50_95"] == expected["map50_95"]
    assert got == expected  # detections, per-class AP and firing rates too


@pytest.mark.parametrize("model_name", ["emsyolo-tiny", "spikeyolo-micro"])
def test_one_ddp_step_equals_the_single_process_step(tmp_path, model_name):
    """SpikeYOLO: its BatchNorms synchronised and the anchor-free loss's normaliser global."""
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    threads = torch.get_num_threads()
    try:
        train_step.main(str(one), "sgd", 1, model_name)  # here, as one process
    finally:
        torch.set_num_threads(threads)
    r = torchrun([str(HERE / "train_step.py"), str(two), "sgd", "1", model_name])
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = torch.load(one, weights_only=True), torch.load(two, weights_only=True)
    assert a["steps"] == b["steps"] == 1
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)  # reduced over ranks: the global batch's loss
    moved = 0
    initial = train_step.make_model(model_name).state_dict()
    for k, va in a["state_dict"].items():
        vb = b["state_dict"][k]
        if va.is_floating_point():
            assert torch.allclose(va, vb, rtol=0, atol=ATOL), (k, float((va - vb).abs().max()))
            moved += int(not torch.equal(va, initial[k]))
        else:
            assert torch.equal(va, vb), k
    assert moved > 50  # the step changed the weights (and running statistics): not a vacuous match


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        kids += [int(k) for k in text]
    return kids


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every descendant (collected first: killed parents orphan their children)."""
    tree, i = [pid], 0
    while i < len(tree):
        with contextlib.suppress(OSError):
            tree += _children(tree[i])
        i += 1
    for p in reversed(tree):
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


def test_a_killed_worker_is_restarted_and_the_sweep_ends_identical(energy_reference, tmp_path):
    results = tmp_path / "res"
    args = ["energy", "--json", "--limit", "8", "--results", str(results), "--resume"]
    cmd = _torchrun_cmd(args, launcher=("--max-restarts", "1"))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    killed = None
    deadline = time.monotonic() + 180
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        done = len(list(results.glob("shard-*.json"))) if results.is_dir() else 0
        if done >= 1:
            victims = [p for p in _children(proc.pid) if _rank_of(p) == 1]
            if victims:
                os.kill(victims[0], signal.SIGKILL)
                killed = {p.name: p.stat().st_mtime_ns for p in results.glob("shard-*.json")}
        time.sleep(0.02)
    try:
        out, err = proc.communicate(timeout=420)  # two start-ups of two workers on a loaded machine
    except subprocess.TimeoutExpired:
        _kill_tree(proc.pid)  # torchrun starts each worker in a session of its own
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"the restarted sweep hung:\n{err[-4000:]}")
    finally:
        if proc.poll() is None:
            _kill_tree(proc.pid)  # no worker outlives the test (an orphan would hold the pipes open)
    assert killed is not None and len(killed) < 8, f"the sweep ended before a worker could be killed:\n{err[-2000:]}"
    assert proc.returncode == 0, err[-3000:]
    assert out == energy_reference[0]
    # The restarted group took the shards finished before the kill as they were.
    assert {name: (results / name).stat().st_mtime_ns for name in killed} == killed
    assert len(list(results.glob("shard-*.json"))) == 8


def test_a_rank_that_raises_ends_the_job_naming_rank_and_sample(tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    (folder / "img3.png").write_bytes(b"not a png")  # sample 3: rank 1's second sample
    t0 = time.monotonic()
    r = torchrun(["energy", "--json", "--input", str(folder)], timeout=180)
    assert r.returncode != 0
    assert time.monotonic() - t0 < 120  # no hang
    expected = f"error: energy sweep failed at rank 1, sample 3 (input 3): {folder / 'img3.png'}: not a readable image"
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert any(line.startswith(expected) for line in errors), r.stderr[-3000:]


def test_resume_reuses_finished_shards_and_refuses_another_sweep(energy_reference, tmp_path):
    results = tmp_path / "res"
    first = one_process(["energy", "--json", "--limit", "8", "--results", str(results)])
    stamps = {p.name: p.stat().st_mtime_ns for p in results.glob("shard-*.json")}
    again = one_process(["energy", "--json", "--limit", "8", "--results", str(results), "--resume"])
    assert first == again == energy_reference[0]
    assert {p.name: p.stat().st_mtime_ns for p in results.glob("shard-*.json")} == stamps  # read, not recomputed
    r = CliRunner().invoke(cli, ["energy", "--json", "--limit", "4", "--results", str(results), "--resume"])
    assert r.exit_code == 2 and "holds shards of another sweep" in r.stderr
    r = CliRunner().invoke(cli, ["energy", "--json", "--limit", "4", "--resume"])
    assert r.exit_code == 2 and "--resume needs --results" in r.stderr


def test_training_resumes_where_it_stopped():
    from emsdeploy.models import build_model
    from emsdeploy.models.data import SyntheticShapes, SynthRecipe
    from emsdeploy.models.training import TrainConfig, train

    data = SyntheticShapes(SynthRecipe(size=64, train=4, val=4, max_objects=2, min_size=16, max_size=30), "train")
    cfg = TrainConfig(epochs=3, batch_size=2, seed=3, device="cpu")  # 2 steps an epoch, resumed after the first
    torch.manual_seed(0)
    straight = build_model("emsyolo-tiny", time_steps=2)
    resumed = build_model("emsyolo-tiny", time_steps=2)
    saved = {}

    def keep(info, model, state) -> None:
        if info.epoch == 0:
            saved["weights"] = {k: v.clone() for k, v in model.state_dict().items()}
            saved["state"] = type(state).from_dict(_roundtrip(state.to_dict()))  # a copy, as the state file

    train(straight, data, cfg, on_epoch_end=keep)
    resumed.load_state_dict(saved["weights"])
    result = train(resumed, data, cfg, resume=saved["state"])
    assert [e.epoch for e in result.epochs] == [1, 2]
    for (k, va), vb in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(va, vb), k


def _roundtrip(d: dict) -> dict:
    """Through torch.save / torch.load(weights_only=True), as the state file goes."""
    import io

    buf = io.BytesIO()
    torch.save(d, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_energy_shards_of_several_samples_give_the_same_counts(monkeypatch, tmp_path):
    """Long sweeps count several samples a shard (emsdeploy.distributed.jobs.energy_chunk): the
    merged counts are the same integers as one sample a shard."""
    from emsdeploy.distributed import jobs

    assert [jobs.energy_chunk(n) for n in (1, 8, 32, 64, 256, 5000)] == [1, 1, 2, 4, 8, 8]
    several = one_process(["energy", "--json", "--limit", "32", "--results", str(tmp_path / "a")])
    assert len(list((tmp_path / "a").glob("shard-*.json"))) == 16  # 2 samples a shard
    monkeypatch.setattr(jobs, "energy_chunk", lambda count: 1)
    single = one_process(["energy", "--json", "--limit", "32", "--results", str(tmp_path / "b")])
    assert len(list((tmp_path / "b").glob("shard-*.json"))) == 32
    assert json.loads(several) == json.loads(single)


def test_a_rank_makes_only_its_own_samples():
    """The checkpoint's synthetic val set has random access: sample i is the i-th of the stream,
    and a sweep's rank asks for its own samples only (making the others cost each rank ~12 %)."""
    from emsdeploy.distributed.jobs import _Forward
    from emsdeploy.inputs import choose_inputs
    from emsdeploy.pipeline import load_graph, source_or_default

    loaded = load_graph(source_or_default(None), None, None)
    inputs = choose_inputs(None, loaded.graph, loaded.checkpoint.meta, 6, 6, None)
    assert inputs.kind == "synthetic-val" and inputs.at is not None
    stream = list(inputs.samples())
    asked: list[int] = []

    def at(i):
        asked.append(i)
        return inputs.at(i)

    rank1 = _Forward(inputs.samples(), at)
    for i in (1, 3, 5):
        assert torch.equal(rank1.get(i), stream[i])
    assert asked == [1, 3, 5]
