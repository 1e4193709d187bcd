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
from emsdeploy.ir import LIF, Conv2d, Graph, Input, Readout
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
