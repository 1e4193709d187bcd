"""The console script: --version, --help and convert, run as a user would."""


import numpy as np
import torch

from emsdeploy import __version__
from emsdeploy.checkpoint import load_checkpoint
from tests.helpers import run_console
from tests.tolerances import OFFICIAL


def test_version_and_help():
    r = run_console("--version")
    assert r.returncode == 0 and __version__ in r.stdout
    r = run_console("--help")
    assert r.returncode == 0 and "convert" in r.stdout


def test_convert_prints_summary_and_writes(official, tmp_path):
    out = tmp_path / "ours.pt"
    r = run_console("convert", str(official.checkpoint), "-o", str(out), "--time-steps", str(official.T))
    assert r.returncode == 0, r.stderr
    assert f"time steps   : {official.T}" in r.stdout
    assert f"parameters   : {official.info['n_params']:,}" in r.stdout
    # the written file is ours, loads, and its model reproduces the official code's own outputs
    ckpt = load_checkpoint(out)
    assert ckpt.time_steps == official.T and ckpt.meta["source"]["format"] == "official-emsyolo"
    model = ckpt.build()
    with torch.no_grad():
        pred, raws = model.predict(official.input(0))
    for i, raw in enumerate(raws):
        np.testing.assert_allclose(raw.numpy(), official.ref(0, "detect_raw", i), **OFFICIAL)
    np.testing.assert_allclose(pred.numpy(), official.ref(0, "pred"), **OFFICIAL)


def test_convert_bad_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("nope")
    out = tmp_path / "o.pt"
    r = run_console("convert", str(bad), "-o", str(out))
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and "bad.pt" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()
