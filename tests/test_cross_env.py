"""Across the two environments `make test` runs (DESIGN: Lava is optional, archived upstream):
a Lava folder exported on current Python (numpy 2, newest torch, no Lava) runs bit-exact against
ref-fixed in the Python 3.10 + Lava environment, and a checkpoint saved in either loads, bit for
bit, in the other. `make test` passes the current environment's python to the 3.10 run as
EMSDEPLOY_CURRENT_PYTHON; elsewhere these tests skip (one environment has nothing to cross)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from emsdeploy.models import DEFAULT_CHECKPOINT

OTHER = os.environ.get("EMSDEPLOY_CURRENT_PYTHON", "")
pytestmark = pytest.mark.skipif(
    not OTHER, reason="EMSDEPLOY_CURRENT_PYTHON (the current-Python environment's python) is not set; make test sets it"
)

ARGS = ["--input-size", "32", "--steps", "2", "--limit", "1"]

# Save: the shipped checkpoint with every float tensor perturbed (so that the file is new, written by
# this environment's torch). Digest: what a loader sees, tensor bytes included, after building the model.
SAVE = """
import sys, torch
from emsdeploy.checkpoint import from_model, load_checkpoint, save_checkpoint
ck = load_checkpoint(sys.argv[1]); model = ck.build(); g = torch.Generator().manual_seed(int(sys.argv[3]))
with torch.no_grad():
    for p in model.state_dict().values():
        if p.is_floating_point():
            p.add_(torch.randn(p.shape, generator=g) * 1e-3)
save_checkpoint(sys.argv[2], from_model(model, {"written_by": sys.version.split()[0]}))
"""
DIGEST = """
import hashlib, json, sys
from emsdeploy.checkpoint import load_checkpoint
ck = load_checkpoint(sys.argv[-1]); ck.build()
tensors = {k: [str(v.dtype), list(v.shape), hashlib.sha256(v.contiguous().numpy().tobytes()).hexdigest()]
           for k, v in ck.state_dict.items()}
meta = {k: v for k, v in ck.meta.items() if k != "emsdeploy_version"}
print(json.dumps({"tensors": tensors, "config": ck.config, "T": ck.time_steps, "encoding": ck.encoding,
                  "meta": meta, "python": sys.version.split()[0]}, sort_keys=True, default=str))
"""


def _run(python: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    r = subprocess.run([python, *args], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, (
        f"{python} {' '.join(args[:3])}: exit {r.returncode}\n{r.stdout[-2000:]}{r.stderr[-3000:]}"
    )
    return r


def test_the_other_environment_is_current_python():
    """The cross checks below really cross: the other side is CPython >= 3.12 without Lava."""
    r = _run(
        OTHER, "-c", "import sys, importlib.util as u; print(sys.version_info >= (3, 12), u.find_spec('lava') is None)"
    )
    assert r.stdout.split() == ["True", "True"]


@pytest.mark.lava
def test_lava_folder_exported_on_current_python_runs_bit_exact_here(tmp_path):
    out = tmp_path / "lava"
    _run(
        OTHER,
        "-m",
        "emsdeploy",
        "export",
        str(DEFAULT_CHECKPOINT),
        "--target",
        "lava",
        "-o",
        str(out),
        "--input-size",
        "32",
    )
    r = subprocess.run(
        [sys.executable, "-m", "emsdeploy", "verify", str(DEFAULT_CHECKPOINT), *ARGS, "--targets", "lava", "--lava", str(out), "--json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads(r.stdout)
    (lava,) = [c for c in report["comparisons"] if c["b"] == "lava"]
    assert lava["a"] == "ref-fixed" and lava["integer"] and lava["exact"] and lava["spikes_compared"] > 10_000
    assert "lava" not in report["skipped"]


@pytest.mark.parametrize("direction", ["current->lava-env", "lava-env->current"])
def test_checkpoint_saved_in_one_environment_loads_in_the_other(tmp_path, direction):
    here, there = sys.executable, OTHER
    writer, reader = (there, here) if direction == "current->lava-env" else (here, there)
    path = tmp_path / "moved.pt"
    written = json.loads(_run(writer, "-c", SAVE + DIGEST, str(DEFAULT_CHECKPOINT), str(path), "7", str(path)).stdout)
    read = json.loads(_run(reader, "-c", DIGEST, str(path)).stdout)
    assert written.pop("python") != read.pop("python")  # two interpreters really took part
    assert read == written
    assert len(read["tensors"]) > 50 and read["meta"]["written_by"] == _run(writer, "-V").stdout.split()[1]
    assert path.stat().st_size > 100_000
