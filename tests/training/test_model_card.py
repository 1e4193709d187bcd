"""The shipped model card's mAP, re-measured on the whole 500-image validation split it names.

The card and the checkpoint's meta record mAP@0.5 from training; this test rebuilds the same
held-out split from the stored recipe, runs the exported stepwise ONNX graph on all of it
(seconds, against minutes in PyTorch), scores it with the same NMS and pycocotools as
``emsdeploy eval``, and demands the recorded number within ±0.005.
"""

from __future__ import annotations

import re

import pytest
import torch

from emsdeploy.checkpoint import load_checkpoint
from emsdeploy.cli.cmd_eval import dataset_for
from emsdeploy.exporters.onnx import StepwiseSession, build_onnx
from emsdeploy.models.training.evaluate import coco_map
from emsdeploy.models.training.nms import non_max_suppression
from emsdeploy.pipeline import load_graph
from tests.conftest import shipped_checkpoint

pytestmark = pytest.mark.onnx

TOLERANCE = 0.005
BATCH = 50


def _card_map50(path) -> float:
    card = path.with_suffix(".md").read_text(encoding="utf-8")
    m = re.search(r"mAP@0\.5: \*\*([0-9.]+)\*\*", card)
    assert m, "the model card states no mAP@0.5"
    return float(m.group(1))


def test_card_map50_holds_on_the_full_validation_split_in_onnx():
    path = shipped_checkpoint()
    ckpt = load_checkpoint(path)
    recorded = float(ckpt.meta["metrics"]["map50"])
    assert _card_map50(path) == pytest.approx(recorded, abs=5e-5)  # the card prints the meta's number
    dataset = dataset_for(ckpt, None, "val")
    assert len(dataset) == ckpt.meta["data"]["val"] == 500
    session = StepwiseSession(build_onnx(load_graph(path).graph), threads=2)
    results = []
    for start in range(0, len(dataset), BATCH):
        samples = [dataset[i] for i in range(start, min(start + BATCH, len(dataset)))]
        x = torch.stack([s.x for s in samples]).float().numpy()
        boxes = torch.as_tensor(session.run(x).outputs[session.meta.decode])
        for det, s in zip(non_max_suppression(boxes, 0.001, 0.6, 100), samples):  # emsdeploy eval's settings
            sx, sy = s.scale
            for x1, y1, x2, y2, score, cls in det.double().tolist():
                results.append(
                    {
                        "image_id": s.image_id,
                        "category_id": dataset.category_ids[int(cls)],
                        "bbox": [x1 / sx, y1 / sy, (x2 - x1) / sx, (y2 - y1) / sy],
                        "score": score,
                    }
                )
    measured = coco_map(dataset.coco_ground_truth(), results)["map50"]
    assert abs(measured - recorded) <= TOLERANCE, f"mAP@0.5 {measured:.4f} on 500 images; the card says {recorded:.4f}"
