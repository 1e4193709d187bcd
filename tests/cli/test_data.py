"""`emsdeploy data`: a synthetic split written as a COCO folder that our COCO loader reads back."""

import json

from click.testing import CliRunner

from emsdeploy.cli import cli
from emsdeploy.models.data import open_dataset


def test_writes_pngs_and_annotations_that_load_back(tmp_path):
    out = tmp_path / "val"
    r = CliRunner().invoke(cli, ["data", "shapes", "-o", str(out), "--limit", "3"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.glob("*.png")) == ["000001.png", "000002.png", "000003.png"]
    coco = json.loads((out / "annotations.json").read_text())
    assert {a["image_id"] for a in coco["annotations"]} <= {im["id"] for im in coco["images"]}
    assert len(coco["images"]) == 3 and coco["annotations"]
    back = open_dataset(out / "annotations.json", "val", input_size=128)
    assert len(back) == 3


def test_event_data_is_refused_clearly(tmp_path):
    r = CliRunner().invoke(cli, ["data", "events", "-o", str(tmp_path / "e"), "--limit", "1"])
    assert r.exit_code == 2 and "event-frame datasets have no single image" in r.output


def test_unknown_spec(tmp_path):
    r = CliRunner().invoke(cli, ["data", str(tmp_path / "nope"), "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "nope" in r.output
