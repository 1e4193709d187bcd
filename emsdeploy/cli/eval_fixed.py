"""``eval --backend onnx-fixed``: the deployed (Loihi-quantized) model's detections, from the
fixed-point stepwise ONNX graph in onnxruntime, in the shape the torch evaluator expects."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["FixedOnnxDetector"]


class FixedOnnxDetector(nn.Module):
    """Wraps a :class:`FixedSession` as a detector: ``forward`` gives the raw head outputs per
    scale (the readouts, mean over T) in the float model's layout — ``[B, na, ny, nx, no]`` for
    EMS-YOLO's anchor head, ``[B, 4·reg_max + nc, ny, nx]`` for SpikeYOLO's DFL head — and
    ``detect`` decodes them with the float model's own head (same anchors, strides, bins)."""

    def __init__(self, model: Any, checkpoint_path: str, threads: int | None = None) -> None:
        super().__init__()
        from ..exporters.onnx.fixed import build_fixed_onnx, fixed_graph
        from ..exporters.onnx.fixed_runtime import FixedSession
        from ..pipeline import load_graph

        graph = load_graph(checkpoint_path, None, None).graph
        self.session = FixedSession(build_fixed_onnx(fixed_graph(graph)).SerializeToString(), threads=threads)
        self.detect = model.detect
        self.na = 0 if getattr(model.detect, "reg_max", None) else int(model.detect.anchors.shape[1])

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        trace = self.session.run(x.cpu())
        raws = []
        for h in self.session.heads:
            y = torch.from_numpy(trace.outputs[h["readout"]]).to(torch.float32)
            if not self.na:  # DFL: the readout is the head's raw output as it is
                raws.append(y)
                continue
            b, c, ny, nx = y.shape
            raws.append(y.view(b, self.na, c // self.na, ny, nx).permute(0, 1, 3, 4, 2).contiguous())
        return raws


def validation_fixed(model: Any, path: str, dataset: Any, spec: str, batch_size: int, threads: int | None) -> dict:
    """mAP of the fixed-point ONNX graph (no firing rates: the graph has no torch LIF modules)."""
    from ..models.training import evaluate
    from .cmd_train import data_meta

    metrics = evaluate(FixedOnnxDetector(model, path, threads), dataset, batch_size, "cpu")
    return {"metrics": {**metrics, "data": data_meta(dataset, spec), "backend": "onnx-fixed"}, "firing_rates": {}}
