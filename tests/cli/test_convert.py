"""The console script: --version, --help and convert, run as a user would."""

import subprocess
import sys

from emsdeploy import __version__


def _run(*args):
    return subprocess.run([sys.executable, "-m", "emsdeploy", *args], capture_output=True, text=True, timeout=300)


def test_version_and_help():
    r = _run("--version")
    assert r.returncode == 0 and __version__ in r.stdout
    r = _run("--help")
    assert r.returncode == 0 and "convert" in r.stdout


def test_convert_prints_summary_and_writes(official, tmp_path):
    out = tmp_path / "ours.pt"
    r = _run("convert", str(official.checkpoint), "-o", str(out), "--time-steps", str(official.T))
    assert r.returncode == 0, r.stderr
    assert f"time steps   : {official.T}" in r.stdout
    assert f"parameters   : {official.info['n_params']:,}" in r.stdout
    assert out.is_file()


def test_convert_bad_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("nope")
    out = tmp_path / "o.pt"
    r = _run("convert", str(bad), "-o", str(out))
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and "bad.pt" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()
