"""`emsdeploy train` and `eval` on SpikeYOLO: a shipped name or a YAML, the anchor-free loss, mAP."""

from __future__ import annotations

import json

import numpy as np
import torch
import yaml
from click.testing import CliRunner

from emsdeploy.checkpoint import load_checkpoint
from emsdeploy.cli.main import cli
from emsdeploy.models.boxes import dfl_rows
from emsdeploy.models.family import build_detector
from emsdeploy.models.spikeyolo import SpikeYOLO, spikeyolo_config

DATA = "shapes:size=64,train=8,val=4,max_objects=2,min_size=16,max_size=30"


def test_shipped_names_of_both_families_build():
    m = build_detector("spikeyolo-n", nc=3)
    assert isinstance(m, SpikeYOLO) and m.detect.nc == 3 and m.time_steps == 1
    assert type(build_detector("emsyolo-tiny", 2)).__name__ == "EMSYOLO"


def test_train_then_eval_a_spikeyolo_from_its_yaml(tmp_path):
    cfg = spikeyolo_config("n")
    cfg["scales"]["n"] = [0.33, 0.0625, 1024]  # SpikeYOLO-n at 1/16 width: seconds on a CPU
    (tmp_path / "micro.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "micro.pt"
    args = ["train", "--config", str(tmp_path / "micro.yaml"), "--data", DATA, "--epochs", "1", "-b", "4"]
    r = CliRunner().invoke(cli, [*args, "-o", str(out)])  # T: the config's, 1
    assert r.exit_code == 0, r.output
    assert "val: mAP@0.5" in r.output  # validated through the anchor-free decoding
    ckpt = load_checkpoint(out)
    assert isinstance(ckpt.model(), SpikeYOLO) and ckpt.meta["train"]["steps"] == 2
    assert ckpt.time_steps == 1 and "T=1" in r.output
    r = CliRunner().invoke(cli, ["eval", str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert 0.0 <= json.loads(r.output)["map50"] <= 1.0
    # the deployed model: the Loihi-quantized graph in onnxruntime, decoded by the DFL head
    r = CliRunner().invoke(cli, ["eval", str(out), "--json", "--backend", "onnx-fixed"])
    assert r.exit_code == 0, r.output
    assert 0.0 <= json.loads(r.output)["map50"] <= 1.0 and '"onnx-fixed"' in r.output


def test_dfl_rows_give_nms_an_objectness_of_one():
    pred = torch.tensor([[[10.0, 20.0], [11.0, 21.0], [4.0, 5.0], [6.0, 7.0], [0.9, 0.1], [0.2, 0.8]]])  # [1, 4+2, 2]
    rows = dfl_rows(pred)
    assert rows.shape == (1, 2, 7)
    assert rows[0, 0].tolist() == [10.0, 11.0, 4.0, 6.0, 1.0, 0.8999999761581421, 0.20000000298023224]
    np.testing.assert_array_equal(dfl_rows(pred.numpy()), rows.numpy())
