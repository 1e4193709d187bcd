"""Without Lava (any Python >= 3.11, or a 3.10 install without the extra): the default verify still
runs ref, onnx and ref-fixed and marks the lava level skipped with the reason; what must run Lava
says so in one line and exits 2. Lava is hidden from the child interpreter (``sys.modules['lava']
= None``), so this runs the same in both of `make test`'s environments."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from emsdeploy.errors import BackendUnavailableError
from emsdeploy.exporters.lava import _require
from emsdeploy.exporters.lava._require import LAVA_MISSING
from emsdeploy.models import DEFAULT_CHECKPOINT

ARGS = ["--input-size", "32", "--steps", "2", "--limit", "1"]
HIDE_LAVA = (
    "import sys; sys.modules['lava'] = None\nfrom emsdeploy.cli import main\nsys.argv[0] = 'emsdeploy'\nmain()\n"
)


def _run_without_lava(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", HIDE_LAVA, *args], capture_output=True, text=True, timeout=600)


def test_default_targets_skip_lava_with_the_reason_and_still_check_ref_onnx_and_ref_fixed(tmp_path):
    r = _run_without_lava("verify", str(DEFAULT_CHECKPOINT), *ARGS, "--save-json", str(tmp_path / "v.json"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert f"lava: skipped: {LAVA_MISSING}" in " ".join(r.stdout.split())  # rich may wrap the line
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["ok"] and report["skipped"]["lava"] == LAVA_MISSING
    pairs = {(c["a"], c["b"]) for c in report["comparisons"]}
    assert pairs == {("torch", "ref-float"), ("ref-float", "onnx")}  # nothing is called exact for lava
    assert all(c["exact"] for c in report["comparisons"])
    assert 0.9 < report["quantization"]["spike_agreement"] <= 1  # ref-fixed needs no Lava


@pytest.mark.parametrize(
    "extra",
    [["--targets", "ref,lava"], ["--lava", "some/folder"]],
    ids=["targets", "artifact"],
)
def test_asking_for_lava_is_one_line_and_exit_2(extra):
    r = _run_without_lava("verify", str(DEFAULT_CHECKPOINT), *ARGS, *extra)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: {LAVA_MISSING}"]
    assert r.stdout == ""


def test_the_reason_says_how_to_get_lava():
    assert LAVA_MISSING == (
        "lava-nc is not installed (it runs on Python 3.10 only: `make setup`, "
        "or `pip install 'emsdeploy[lava]'` under Python 3.10)"
    )


def test_running_a_lava_network_without_lava_raises_the_one_line_error(tmp_path, monkeypatch):
    """The Python entry points that run Lava stop before importing it (exit 2 from the CLI)."""
    from emsdeploy.exporters.lava.network import LavaNetwork
    from emsdeploy.exporters.lava.runner import run_in_subprocess

    monkeypatch.setattr(_require, "lava_available", lambda: False)
    with pytest.raises(BackendUnavailableError, match="^lava-nc is not installed"):
        run_in_subprocess(tmp_path, np.zeros((1, 3, 8, 8)))
    with pytest.raises(BackendUnavailableError, match="^lava-nc is not installed"):
        LavaNetwork(dag=None).run(np.zeros((1, 3, 8, 8)))  # type: ignore[arg-type]
