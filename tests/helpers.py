"""Builders the tests share: small EMS-YOLOs with BN statistics that make neurons fire, a tiny
checkpoint with a data recipe, hand-countable graphs, and the two ways of running the CLI."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from click.testing import CliRunner, Result

from bench.common import firing_bn as randomize_bn  # one home for the benchmarks and the tests
from emsdeploy.checkpoint import from_model, save_checkpoint
from emsdeploy.cli import cli
from emsdeploy.ir import (
    LIF,
    Add,
    Affine,
    Concat,
    Conv2d,
    DFLDecode,
    Graph,
    Input,
    IntegerLIF,
    MaxPool2d,
    Readout,
    Upsample,
)
from emsdeploy.models import EMSYOLO, build_model

GEN1_ANCHORS = [[10, 14, 23, 27, 37, 58], [81, 82, 135, 169, 216, 269]]


def tiny_ee(time_steps: int = 3, encoding: str = "direct", seed: int = 0, width: float = 0.25) -> EMSYOLO:
    """res10-ee at reduced width with random firing BN statistics."""
    torch.manual_seed(seed)
    cfg = {**build_model("res10-ee").config, "width_multiple": width}
    return randomize_bn(EMSYOLO(cfg, time_steps, encoding), seed)


def tiny_checkpoint(folder: Path, size: int = 64) -> Path:
    """A two-step :func:`tiny_ee` saved as a checkpoint whose meta names its input size and a small
    synthetic ``shapes`` recipe, so every command that needs data finds some."""
    recipe = {
        "kind": "shapes",
        "seed": 3,
        "size": size,
        "train": 2,
        "val": 2,
        "max_objects": 2,
        "min_size": 8,
        "max_size": 20,
    }
    meta = {"input_size": size, "data": {**recipe, "split": "train"}}
    return save_checkpoint(folder / "tiny.pt", from_model(tiny_ee(time_steps=2), meta))


def invoke(*args: Any, catch_exceptions: bool = False) -> Result:
    """The CLI in this process (Click's runner); arguments may be paths or numbers."""
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=catch_exceptions)


def run_console(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m emsdeploy ARGS`` in a child process: the real entry point, exit status and streams."""
    return subprocess.run([sys.executable, "-m", "emsdeploy", *args], capture_output=True, text=True, timeout=300)


def one_lif_by_hand() -> tuple[Graph, torch.Tensor]:
    """One LIF of 4 neurons, T = 3, and an input whose counts are worked out by hand (in
    tests/simulators/test_sops.py): neuron 0 never gets input; 1 gets 0.3 once and leaks; 2 spikes
    at once, then is reset to 0; 3 gets input at step 1 only."""
    g = Graph({"time_steps": 3})
    g.add("input", Input((1, 1, 4), "frames"))
    g.add("lif", LIF(0.25, 0.5), ["input"])
    g.add("conv", Conv2d(np.ones((1, 1, 1, 1), np.float32)), ["lif"])
    g.add("readout", Readout(), ["conv"])
    g.outputs = ["readout"]
    x = torch.tensor([[0.0, 0.3, 0.8, 0.0], [0.0, 0.0, 0.0, 0.2], [0.0, 0.0, 0.0, 0.0]]).view(1, 3, 1, 1, 4)
    return g.validate(), x


def integer_detector(time_steps: int = 2, size: int = 16, nc: int = 3, reg_max: int = 4, seed: int = 0) -> Graph:
    """A SpikeYOLO-shaped graph with random weights, every new op on its path: stem conv on pixels,
    I-LIFs (integer spikes 0..4), a depthwise 3×3 (groups = C) on integer spikes, a membrane
    residual, an SPPF-like chain of stride-1 padded 5×5 max-pools of currents with a concat, an
    upsample of integer spikes, and two scales of anchor-free heads into a DFLDecode. Biases are
    offset so that most I-LIF levels (0..4) occur."""
    rng = np.random.default_rng(seed)

    def w(*shape: int, scale: float = 1.0) -> np.ndarray:
        return (rng.standard_normal(shape) * scale / np.sqrt(np.prod(shape[1:]))).astype(np.float32)

    def b(c: int, lo: float = 0.5, hi: float = 2.5) -> np.ndarray:
        return rng.uniform(lo, hi, c).astype(np.float32)

    no = 4 * reg_max + nc
    g = Graph({"time_steps": time_steps, "nc": nc})
    g.add("input", Input((3, size, size)))
    g.add("stem", Conv2d(w(8, 3, 3, 3, scale=4.0), b(8), 2, 1), ["input"])  # pixels: MACs
    g.add("lif1", IntegerLIF(0.25, 4), ["stem"])
    g.add("pw", Conv2d(w(16, 8, 1, 1, scale=3.0)), ["lif1"])
    g.add("bn1", Affine(rng.uniform(0.5, 1.5, 16), rng.uniform(0.0, 1.5, 16)), ["pw"])
    g.add("lif2", IntegerLIF(0.25, 4), ["bn1"])
    g.add("dw", Conv2d(w(16, 1, 3, 3, scale=2.0), b(16), 1, 1, groups=16), ["lif2"])  # depthwise
    g.add("lif3", IntegerLIF(0.25, 4), ["dw"])
    g.add("proj", Conv2d(w(8, 16, 1, 1, scale=3.0), b(8, -0.5, 0.5)), ["lif3"])
    g.add("res", Add(), ["proj", "stem"])  # a membrane shortcut
    g.add("pool1", MaxPool2d(5, 1, 2), ["res"])  # SPPF: pools of currents, chained
    g.add("pool2", MaxPool2d(5, 1, 2), ["pool1"])
    g.add("sppf", Concat(), ["res", "pool1", "pool2"])
    g.add("lif4", IntegerLIF(0.25, 4), ["sppf"])
    g.add("down", Conv2d(w(8, 24, 3, 3, scale=3.0), b(8), 2, 1), ["lif4"])
    g.add("lif5", IntegerLIF(0.25, 4), ["down"])
    g.add("up", Upsample(2), ["lif5"])  # integer spikes keep their kind
    g.add("cat", Concat(), ["up", "lif4"])
    heads = []
    for i, src in enumerate(("cat", "lif5")):
        c = g.shape(src)[0]
        g.add(f"head.{i}", Conv2d(w(no, c, 1, 1, scale=2.0), rng.uniform(-1, 1, no).astype(np.float32)), [src])
        heads.append(g.add(f"readout.{i}", Readout(), [f"head.{i}"]))
    g.add("decode", DFLDecode(nc, (2.0, 4.0), reg_max), heads)
    g.outputs = [*heads, "decode"]
    return g.validate()


def spike_mismatches(float_run: Any, fixed_run: Any) -> tuple[int, int]:
    """(spikes compared, spikes that differ) between a float and a fixed-point run recorded with
    the same neurons: the quantisation's headline agreement is ``1 - differ / compared``."""
    n = m = 0
    for name, rec in float_run.records.items():
        if "s" in rec:
            n += rec["s"].numel()
            m += int((rec["s"] != fixed_run.records[name]["s"]).sum())
    return n, m


@contextlib.contextmanager
def edit_hdf5(path):
    """Open one of our sealed HDF5 files for editing and seal it again afterwards, as a file
    written that way by our writer would be (so a test reaches the check after the checksum)."""
    import h5py

    from emsdeploy.fileio import USERBLOCK_SIZE, seal_hdf5

    with open(path, "rb") as fh:
        sealed = fh.read(9) == b"EMSDEPLOY"
    with h5py.File(path, "r+") as f:
        yield f
    if sealed:
        with open(path, "r+b") as fh:
            fh.write(bytes(USERBLOCK_SIZE))
        seal_hdf5(path)
