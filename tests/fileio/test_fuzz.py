"""Seeded fuzz over the shipped model's exported .emsir, .onnx and Lava folder (issue 15): every
truncation at ~1 % steps and random bit flips. Each outcome must be the exact original result
or a clear one-line error naming the file; never another exception, a hang or different output.
Loads run in this process (a hang would trip the alarm)."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

from emsdeploy.errors import EmsdeployError
from emsdeploy.exporters.lava import export as lava_export
from emsdeploy.exporters.lava import load as lava_load
from emsdeploy.exporters.onnx import StepwiseSession, export_onnx
from emsdeploy.ir import read_ir, write_ir
from emsdeploy.models import DEFAULT_CHECKPOINT
from emsdeploy.pipeline import load_graph

SEED = 15
FLIPS = 60
SIZE = (32, 32)  # the shipped model at a small input keeps the loop in seconds
PER_LOAD_S = 20  # a load that takes longer counts as a hang


class HangError(Exception):
    pass


def _alarm(signum, frame):
    raise HangError()


def _mutations(size: int, rng: np.random.Generator) -> list[tuple[str, int, int]]:
    cuts = sorted({int(size * k / 100) for k in range(0, 100)})
    flips = [(int(rng.integers(size)), int(rng.integers(8))) for _ in range(FLIPS)]
    return [("cut", c, 0) for c in cuts] + [("flip", p, b) for p, b in flips]


def _mutate(src: Path, dst: Path, kind: str, pos: int, bit: int) -> None:
    data = bytearray(src.read_bytes())
    if kind == "cut":
        data = data[:pos]
    else:
        data[pos] ^= 1 << bit
    dst.write_bytes(bytes(data))


def _outcome(load, compare, where: Path) -> str:
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(PER_LOAD_S)
    try:
        result = load()
    except EmsdeployError as e:
        msg = str(e)
        assert "\n" not in msg and where.name in msg, msg
        return "error"
    except HangError:
        pytest.fail(f"{where}: load hung")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert compare(result), f"{where}: loaded, but differs from the original"
    return "same"


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    graph = load_graph(DEFAULT_CHECKPOINT, SIZE).graph
    ir = write_ir(graph, d / "shipped.emsir")
    onnx_path = d / "shipped.onnx"
    export_onnx(graph, onnx_path)
    lava = d / "lava"
    lava_export(graph, lava)
    return {"ir": ir, "onnx": onnx_path, "lava": lava, "graph": graph, "dir": d}


def test_fuzz_emsir(shipped, tmp_path):
    rng = np.random.default_rng(SEED)
    original = read_ir(shipped["ir"])
    bad = tmp_path / "m.emsir"
    seen = {"error": 0, "same": 0}
    for kind, pos, bit in _mutations(shipped["ir"].stat().st_size, rng):
        _mutate(shipped["ir"], bad, kind, pos, bit)
        seen[_outcome(lambda: read_ir(bad), lambda g: g.same_as(original), bad)] += 1
    print(f"emsir: {seen}")
    assert seen["error"] > 100


def test_fuzz_onnx(shipped, tmp_path):
    rng = np.random.default_rng(SEED)
    x = np.random.default_rng(0).random((1, 3, *SIZE), dtype=np.float32)
    reference = StepwiseSession(shipped["onnx"], threads=1).run(x).outputs
    bad = tmp_path / "m.onnx"

    def same(session) -> bool:
        out = session.run(x).outputs
        return out.keys() == reference.keys() and all(np.array_equal(out[k], reference[k]) for k in out)

    seen = {"error": 0, "same": 0}
    for kind, pos, bit in _mutations(shipped["onnx"].stat().st_size, rng):
        _mutate(shipped["onnx"], bad, kind, pos, bit)
        seen[_outcome(lambda: StepwiseSession(bad, threads=1), same, bad)] += 1
    print(f"onnx: {seen}")
    assert seen["error"] > 100


def _dag_equal(a, b) -> bool:
    if len(a.procs) != len(b.procs) or a.edges != b.edges or a.outputs != b.outputs:
        return False
    for p, q in zip(a.procs, b.procs):
        if (p.name, p.kind, p.params) != (q.name, q.kind, q.params) or p.arrays.keys() != q.arrays.keys():
            return False
        if not all(np.array_equal(p.arrays[k], q.arrays[k]) for k in p.arrays):
            return False
    return True


def test_fuzz_lava_folder(shipped, tmp_path):
    rng = np.random.default_rng(SEED)
    folder = tmp_path / "lava"
    shutil.copytree(shipped["lava"], folder)
    original = lava_load(shipped["lava"]).dag
    files = sorted(p.name for p in shipped["lava"].iterdir())
    sizes = np.array([(shipped["lava"] / n).stat().st_size for n in files], float)
    big = files[int(np.argmax(sizes))]
    seen = {"error": 0, "same": 0}
    plan = [(big, m) for m in _mutations(int(sizes.max()), rng) if m[0] == "cut"]
    for _ in range(FLIPS):  # flips spread over every file, in proportion to its size
        name = files[int(rng.choice(len(files), p=sizes / sizes.sum()))]
        size = (shipped["lava"] / name).stat().st_size
        plan.append((name, ("flip", int(rng.integers(size)), int(rng.integers(8)))))
    for name, (kind, pos, bit) in plan:
        _mutate(shipped["lava"] / name, folder / name, kind, pos, bit)
        seen[_outcome(lambda: lava_load(folder), lambda net: _dag_equal(net.dag, original), folder)] += 1
        shutil.copyfile(shipped["lava"] / name, folder / name)
    print(f"lava: {seen}")
    assert seen["error"] > 100
