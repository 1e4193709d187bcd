"""Level "onnx" of DESIGN.md §7: the stepwise graph in onnxruntime (float32) against ref-float,
the official references and the PyTorch model: spike-exact, and the same detections."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from emsdeploy.ir import LIF, Input, SiLUNeuron
from emsdeploy.pipeline import load_graph
from emsdeploy.simulators import RefFloat
from emsdeploy.tracer import trace
from tests.conftest import shipped_checkpoint
from tests.tolerances import BOX_PIXELS, FLOAT32_REORDERED, OFFICIAL, SCORES

from .conftest import SIZE, lif_margins, session

pytestmark = pytest.mark.onnx

MARGIN = 1e-5  # DESIGN.md §7: relative to V_th; never widened


def _raw(readout: np.ndarray, na: int) -> np.ndarray:
    """Our readout [B, na·no, ny, nx] in the official detect_raw layout [B, na, ny, nx, no]."""
    b, c, ny, nx = readout.shape
    return readout.reshape(b, na, c // na, ny, nx).transpose(0, 1, 3, 4, 2)


def test_official_fixtures_spike_exact(official):
    """Every LIF spike of both official fixtures, both inputs, equals the official code's and
    ref-float's; the head and decoded boxes meet the fixtures' float tolerances."""
    g = load_graph(official.checkpoint, SIZE, official.T).graph
    s = session(g, spikes=True)
    for k in range(2):
        x = official.input(k)
        tr = s.run(x.numpy(), record="neurons")
        ref = RefFloat(g).run(x, record="neurons")
        assert tr.time_steps == official.T
        for name in official.lif_names:
            spikes = tr.records[name]["s"]
            np.testing.assert_array_equal(spikes, official.ref(k, "spike", name).astype(bool), err_msg=name)
            np.testing.assert_array_equal(spikes, ref.records[name]["s"].numpy().astype(bool), err_msg=name)
        for name in official.silu_names:
            np.testing.assert_allclose(tr.records[name]["y"], official.ref(k, "silu", name), **OFFICIAL)
        for i, head in enumerate(s.meta.heads):
            np.testing.assert_allclose(
                _raw(tr.outputs[head], s.meta.na), official.ref(k, "detect_raw", i), **OFFICIAL
            )
        np.testing.assert_allclose(tr.outputs[s.meta.decode], official.ref(k, "pred"), **OFFICIAL)


def _excused(ref_rec: dict, spikes: np.ndarray, v_th: float) -> tuple[int, int]:
    """(mismatches, of which near threshold) of one node against its reference record."""
    diff = ref_rec["s"].numpy().astype(bool) != spikes
    near = np.abs(ref_rec["u"].double().numpy() - v_th) <= MARGIN * v_th
    return int(diff.sum()), int((diff & near).sum())


@pytest.mark.parametrize("which", ["tiny_direct", "tiny_frames"])
def test_random_configs_node_isolated_and_end_to_end(which, request):
    """Random res10-ee models: node-isolated, every mismatch must be near threshold (§7);
    end to end, on an input whose reference membranes all keep clear of V_th, zero mismatches."""
    model, g = request.getfixturevalue(which)
    s = session(g, spikes=True)
    iso = session(g, isolate=True)
    gen = torch.Generator().manual_seed(7)
    clear = 0
    for _ in range(3):
        if model.encoding == "direct":
            x = torch.rand(1, 3, *SIZE, generator=gen)
        else:
            x = (torch.rand(1, model.time_steps, 3, *SIZE, generator=gen) < 0.15).float()
        ref = RefFloat(g).run(x, record="neurons")
        isolated = iso.run_isolated(x, ref)
        for n in iso.meta.neurons:
            if n.type == "LIF":
                bad, near = _excused(ref.records[n.name], isolated.records[n.name]["s"], n.v_th)
                assert bad == near, f"{n.name}: {bad - near} mismatches not near threshold (node-isolated)"
        if lif_margins(ref, g) > MARGIN:
            clear += 1
            tr = s.run(x, record="neurons")
            for n in s.meta.neurons:
                np.testing.assert_array_equal(
                    tr.records[n.name]["s"], ref.records[n.name]["s"].numpy().astype(bool), err_msg=n.name
                )
            for h in s.meta.heads:
                np.testing.assert_allclose(tr.outputs[h], ref.outputs[h].numpy(), **FLOAT32_REORDERED)
    assert clear, "no input without near-threshold membranes; pick other seeds"


def test_isolated_run_feeds_each_neuron_the_reference(tiny_direct):
    """With a reference from another image, every neuron that reads only other neurons (no
    neuron-free path from the image) reproduces the reference; the others see the new image."""
    _, g = tiny_direct
    iso = session(g, isolate=True)
    x, other = torch.rand(2, 1, 3, *SIZE, generator=torch.Generator().manual_seed(1))
    ref = RefFloat(g).run(other, record="neurons")
    tr = iso.run_isolated(x, ref)
    from_image = {n.name for n in g.of_type(LIF) if _reads_input_directly(g, n.name)}
    differ = {
        n.name
        for n in iso.meta.neurons
        if not np.array_equal(tr.records[n.name]["s"], ref.records[n.name]["s"].numpy().astype(bool))
    }
    assert differ and differ <= from_image, sorted(differ - from_image)
    assert len(from_image) < len(iso.meta.neurons)


def _reads_input_directly(g, name: str) -> bool:
    """True if the path from the graph input to this neuron passes no other neuron."""
    stack = list(g[name].inputs)
    while stack:
        node = g[stack.pop()]
        if isinstance(node.op, Input):
            return True
        if not isinstance(node.op, (LIF, SiLUNeuron)):
            stack.extend(node.inputs)
    return False


def _torch_detections(boxes: torch.Tensor, conf: float, iou: float):
    """YOLOv5-style NMS of the PyTorch model's decoded boxes, with torchvision."""
    out = []
    for pred in boxes:
        score, cls = pred[:, 5:].max(1)
        score = pred[:, 4] * score
        keep = (pred[:, 4] > conf) & (score > conf)
        xywh, score, cls = pred[keep, :4], score[keep], cls[keep]
        xyxy = torch.cat((xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2), 1)
        k = torchvision.ops.batched_nms(xyxy, score, cls, iou)
        out.append((xyxy[k], score[k], cls[k]))
    return out


def test_detections_equal_the_pytorch_models(tiny_direct):
    model, g = tiny_direct
    s = session(g)
    x = torch.rand(2, 3, *SIZE, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        boxes, _ = model.predict(x)
    expect = _torch_detections(boxes, 0.3, 0.45)
    got = s.detect(x, conf=0.3, iou=0.45)
    assert sum(len(d) for d in got) > 5
    for (xyxy, score, cls), det in zip(expect, got):
        np.testing.assert_array_equal(det.classes, cls.numpy())
        np.testing.assert_allclose(det.boxes, xyxy.numpy(), **BOX_PIXELS)
        np.testing.assert_allclose(det.scores, score.numpy(), **SCORES)


def test_traced_model_and_export_agree_on_a_frames_model(tiny_frames):
    """The PyTorch model's raw heads equal the ONNX readouts (frames encoding)."""
    model, g = tiny_frames
    s = session(g)
    x = (torch.rand(1, 3, 3, *SIZE, generator=torch.Generator().manual_seed(2)) < 0.2).float()
    with torch.no_grad():
        raws = model(x)
    tr = s.run(x)
    for head, raw in zip(s.meta.heads, raws):
        np.testing.assert_allclose(_raw(tr.outputs[head], s.meta.na), raw.numpy(), **FLOAT32_REORDERED)
    assert trace(model, SIZE).same_as(g)


def test_shipped_checkpoint_spike_exact_and_same_detections():
    """The shipped checkpoint: node-isolated no unexcused mismatch, end to end spike-exact on an
    input whose reference membranes all keep clear of V_th (the comparison must run), and the
    PyTorch model's detections."""
    loaded = load_graph(shipped_checkpoint())
    g, model = loaded.graph, loaded.checkpoint.build()
    s, iso = session(g, spikes=True), session(g, isolate=True)
    c, h, w = g.input_node().op.shape
    # The first seed whose whole batch keeps every membrane more than MARGIN·V_th from V_th
    # (seed 19 for the shipped weights; most batches of two have a membrane within 1e-5).
    for seed in (19, *range(40, 48)):
        x = torch.rand(2, c, h, w, generator=torch.Generator().manual_seed(seed))
        ref = RefFloat(g).run(x, record="neurons")
        if lif_margins(ref, g) > MARGIN:
            break
    else:
        pytest.fail("no input among the seeds keeps its membranes clear of V_th; pick other seeds")
    isolated = iso.run_isolated(x, ref)
    for n in iso.meta.neurons:
        if n.type == "LIF":
            bad, near = _excused(ref.records[n.name], isolated.records[n.name]["s"], n.v_th)
            assert bad == near, f"{n.name}: {bad - near} mismatches not near threshold (node-isolated)"
    tr = s.run(x, record="neurons")
    compared = 0
    for n in s.meta.neurons:
        if n.type == "LIF":
            np.testing.assert_array_equal(
                tr.records[n.name]["s"], ref.records[n.name]["s"].numpy().astype(bool), err_msg=n.name
            )
            compared += int(tr.records[n.name]["s"].sum())
    assert compared > 1000, "the end-to-end spike comparison ran on a model that hardly fires"
    with torch.no_grad():
        boxes, _ = model.predict(x)
    detections = 0
    for (xyxy, score, cls), det in zip(_torch_detections(boxes, 0.25, 0.45), s.nms(tr, 0.25, 0.45)):
        np.testing.assert_array_equal(det.classes, cls.numpy())
        np.testing.assert_allclose(det.boxes, xyxy.numpy(), **BOX_PIXELS)
        np.testing.assert_allclose(det.scores, score.numpy(), **SCORES)
        detections += len(det.classes)
    assert detections > 0, "no detections to compare"


def test_runtime_traces_plug_into_the_verify_comparison(fixture_b_graph, fixture_b):
    """The duck-typed trace feeds emsdeploy.verify's comparison like any backend's."""
    from emsdeploy.verify.compare import compare_records

    g = fixture_b_graph
    x = fixture_b.input(1)
    ref = RefFloat(g).run(x, record="neurons")
    lifs = [n.name for n in g.of_type(LIF)]
    v_th = {n: g[n].op.v_th for n in lifs}
    for mode, tr in (
        ("end-to-end", session(g, spikes=True).run(x, record="neurons")),
        ("isolated", session(g, isolate=True).run_isolated(x, ref)),
    ):
        c = compare_records(
            "ref-float", "onnx", ref.records, tr.to_torch().records, lifs, integer=False, mode=mode, v_th=v_th
        )
        assert c.exact and c.ok and c.spikes_compared > 0
