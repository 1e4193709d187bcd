"""--gen1-mode end to end: an official Gen1 checkpoint, converted, is fed as it was trained
(bin 0 at every step) without being told, and every report says which mode it used."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from emsdeploy.checkpoint import load_checkpoint, save_checkpoint
from emsdeploy.cli import cli
from emsdeploy.cli.options import GEN1_MODE_CHOICES
from emsdeploy.models.data import GEN1_MODES

SIZE = 64  # the official Gen1 size is 320; 64 keeps these runs to seconds


def _run(*args):
    """In process (the console script itself is tested by test_convert.py); stdout and stderr apart."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    result.returncode = result.exit_code
    return result


@pytest.fixture(scope="module")
def converted(fixtures_dir, tmp_path_factory):
    """The official res10-ee Gen1 fixture converted by the console script, then told to run at 64×64."""
    out = tmp_path_factory.mktemp("gen1") / "r10.pt"
    folder = fixtures_dir / "res10ee_gen1_T5"
    r = subprocess.run(
        [sys.executable, "-m", "emsdeploy", "convert", folder / "checkpoint_stripped_fp16.pt", "-o", out],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "gen1 mode    : official" in r.stdout
    ckpt = load_checkpoint(out)
    ckpt.meta["input_size"] = SIZE
    save_checkpoint(out, ckpt)
    return out, fixtures_dir / "gen1_dat_T5"


def test_the_option_offers_the_data_modes():
    assert GEN1_MODE_CHOICES == GEN1_MODES


def test_convert_records_official(converted):
    ckpt = load_checkpoint(converted[0])
    assert ckpt.meta["gen1_mode"] == "official" and ckpt.encoding == "frames"


def test_eval_uses_the_recorded_mode_and_the_card_says_so(converted, tmp_path):
    ckpt, data = converted
    card = tmp_path / "card.md"
    r = _run("eval", ckpt, "--data", data, "--json", "--card", card)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["data"]["gen1_mode"] == "official"
    assert "Gen1 input mode: `official`" in card.read_text()
    from emsdeploy.cli.cmd_eval import dataset_for

    loaded = load_checkpoint(ckpt)
    assert dataset_for(loaded, str(data), "val").gen1_mode == "official"
    assert dataset_for(loaded, str(data), "val", "per-bin").gen1_mode == "per-bin"


def test_inspect_energy_and_verify_report_the_mode(converted):
    ckpt, data = converted
    r = _run("inspect", ckpt, "--input-size", SIZE, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["totals"]["gen1_mode"] == "official"
    r = _run("energy", ckpt, "--input-size", SIZE, "--input", data, "--limit", 1, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)["input"]
    assert report["gen1_mode"] == "official" and report["kind"] == "user"
    r = _run("verify", ckpt, "--input-size", SIZE, "--targets", "ref", "--limit", 1, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["input"]["gen1_mode"] == "official"  # random inputs: the checkpoint's mode
    r = _run("verify", ckpt, "--input-size", SIZE, "--targets", "ref", "--input", data, "--limit", 1)
    assert r.returncode == 0, r.stderr
    r = _run("energy", ckpt, "--input-size", SIZE, "--input", data, "--gen1-mode", "bin0")
    assert r.returncode == 2 and "--gen1-mode" in r.stderr


def test_gen1_inputs_follow_the_mode(fixtures_dir):
    from emsdeploy.inputs import iter_inputs

    data = fixtures_dir / "gen1_dat_T5"
    official = next(iter_inputs(data, (3, 64, 64), "frames", gen1_mode="official"))
    per_bin = next(iter_inputs(data, (3, 64, 64), "frames", gen1_mode="per-bin"))
    assert official.name == per_bin.name == "rec_a_td.dat@100000"
    assert official.x.shape == per_bin.x.shape == (1, 5, 3, 64, 64)
    assert all((official.x[0, t] == official.x[0, 0]).all() for t in range(5))
    assert (per_bin.x[0, :3] == 127 / 255).all()  # [-150 ms, 0): no events yet


def test_train_records_the_mode_it_binned_with(fixtures_dir, tmp_path):
    out = tmp_path / "g1.pt"
    data = fixtures_dir / "gen1_dat_T5"
    args = ["train", "--data", data, "--input-size", SIZE, "--max-steps", 1, "-b", 5, "--no-eval", "-o", out]
    r = _run(*args, "--gen1-mode", "official")  # (without it: per-bin, test_gen1_official.py)
    assert r.returncode == 0, r.stderr
    ckpt = load_checkpoint(out)
    assert ckpt.meta["gen1_mode"] == "official" and ckpt.meta["data"]["gen1_mode"] == "official"
    assert "--gen1-mode official" in ckpt.meta["train"]["command"]
