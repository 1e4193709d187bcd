"""``emsdeploy train`` and ``emsdeploy eval`` as a user runs them (in-process, tiny data)."""

import json

import pytest
from click.testing import CliRunner

from emsdeploy.checkpoint import load_checkpoint
from emsdeploy.cli import cli

DATA = "shapes:size=64,train=4,val=2,max_objects=2,min_size=16,max_size=30"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "tiny.pt"
    args = ["train", "--data", DATA, "--epochs", "1", "-b", "2", "-T", "2", "-o", str(out)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    return out


def test_train_writes_a_checkpoint_that_records_how_to_rebuild_its_data(trained):
    ckpt = load_checkpoint(trained)
    assert ckpt.time_steps == 2 and ckpt.encoding == "direct" and ckpt.names == ["disc", "square", "triangle", "bar"]
    meta = ckpt.meta
    assert meta["input_size"] == 64 and meta["data"]["kind"] == "shapes" and meta["data"]["train"] == 4
    assert meta["train"]["steps"] == 2 and meta["train"]["command"].startswith("emsdeploy train --config emsyolo-tiny")
    assert set(meta["metrics"]) >= {"map50", "map50_95"} and len(meta["firing_rates"]) == 21


def test_eval_json_prints_only_json(trained):
    r = CliRunner().invoke(cli, ["eval", str(trained), "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert 0 <= result["map50_95"] <= result["map50"] <= 1 and result["images"] == 2
    assert result["data"]["split"] == "val"


def test_eval_errors_are_clean(trained, tmp_path):
    r = CliRunner().invoke(cli, ["eval", str(trained), "--data", str(tmp_path / "nope.json")])
    assert r.exit_code == 2 and "nope.json: data: no such file" in r.stderr and "Traceback" not in r.stderr
    r = CliRunner().invoke(cli, ["eval", str(trained), "--data", "events:size=64,val=1"])
    assert r.exit_code == 2 and "takes 'direct' inputs" in r.stderr


def test_event_data_trains_a_frames_model(tmp_path):
    out = tmp_path / "ev.pt"
    data = "events:size=64,train=2,val=1,time_bins=3,max_objects=2,min_size=16,max_size=30"
    r = CliRunner().invoke(cli, ["train", "--data", data, "--epochs", "1", "-b", "2", "-o", str(out)])
    assert r.exit_code == 0, r.output
    ckpt = load_checkpoint(out)
    assert (ckpt.encoding, ckpt.time_steps) == ("frames", 3) and ckpt.meta["data"]["kind"] == "events"
    r = CliRunner().invoke(cli, ["train", "--data", data, "-T", "4", "-o", str(out)])
    assert r.exit_code == 2 and "3 frames per sample" in r.stderr
