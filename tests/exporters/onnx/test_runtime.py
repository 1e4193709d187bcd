"""The stepwise runtime: streaming, batches, decoding and NMS, and clear errors on bad inputs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torchvision
from onnx import TensorProto, helper

from emsdeploy.errors import ExportError, InputError
from emsdeploy.exporters.onnx import StepwiseSession, build_onnx, nms
from emsdeploy.ir import Decode
from emsdeploy.ir.runtime import decode_boxes
from emsdeploy.ir.runtime import decode_readouts as decode

from .conftest import SIZE, session

pytestmark = pytest.mark.onnx


def test_streaming_frame_by_frame_equals_the_whole_sequence(tiny_frames):
    _, g = tiny_frames
    s = session(g, spikes=True)
    x = (np.random.default_rng(0).random((1, 3, 3, *SIZE)) < 0.15).astype(np.float32)
    whole = s.run(x, record="neurons")
    stream = s.stream(record="neurons")
    per_step = [[h.copy() for h in stream.push(x[:, t])] for t in range(3)]
    streamed = stream.finish()
    assert streamed.time_steps == whole.time_steps == 3
    for k in whole.outputs:
        np.testing.assert_array_equal(streamed.outputs[k], whole.outputs[k])
    for n in whole.records:
        np.testing.assert_array_equal(streamed.records[n]["s"], whole.records[n]["s"])
    # the readout is the mean of the per-step heads
    np.testing.assert_allclose(whole.outputs[s.meta.heads[0]], sum(p[0] for p in per_step) / 3, rtol=1e-6)
    # a second run on the same session starts from zero state again
    again = s.run(x, record="neurons")
    for k in whole.outputs:
        np.testing.assert_array_equal(again.outputs[k], whole.outputs[k])


def test_direct_stream_repeats_the_image_and_time_steps_override(tiny_direct):
    _, g = tiny_direct
    s = session(g)
    x = np.random.default_rng(1).random((1, 3, *SIZE), dtype=np.float32)
    stream = s.stream()
    stream.push(x)
    for _ in range(4):
        stream.push()  # None: the same image again
    five = s.run(x, time_steps=5)
    got = stream.finish()
    assert got.time_steps == 5
    for k in five.outputs:
        np.testing.assert_array_equal(got.outputs[k], five.outputs[k])


def test_a_batch_gives_each_sample_its_own_result(fixture_b_graph, fixture_b):
    s = session(fixture_b_graph, spikes=True)
    both = s.run(fixture_b.inputs, record="neurons")
    for k in range(2):
        one = s.run(fixture_b.inputs[k : k + 1], record="neurons")
        for n in fixture_b.lif_names:
            np.testing.assert_array_equal(both.records[n]["s"][:, k : k + 1], one.records[n]["s"])
        for h in s.meta.heads:
            np.testing.assert_allclose(both.outputs[h][k : k + 1], one.outputs[h], rtol=1e-5, atol=1e-6)


def test_to_torch_gives_ref_float_shaped_records(tiny_direct):
    _, g = tiny_direct
    tr = session(g, spikes=True).run(np.zeros((1, 3, *SIZE), np.float32), record=["model.1.shortcut.0"])
    t = tr.to_torch()
    assert set(t.records) == {"model.1.shortcut.0"}
    s = t.spikes("model.1.shortcut.0")
    assert s.dtype == torch.float32 and s.shape == (3, 1, *g.shape("model.1.shortcut.0"))


def test_decode_matches_the_float_kernels(tiny_direct):
    _, g = tiny_direct
    op = g.of_type(Decode)[0].op
    rng = np.random.default_rng(2)
    readouts = [
        rng.normal(size=(2, op.na * op.no, *g.shape(i)[1:])).astype(np.float32) for i in g.of_type(Decode)[0].inputs
    ]
    ours = decode(readouts, op.anchors, op.strides, op.nc)
    theirs = decode_boxes([torch.from_numpy(r) for r in readouts], op).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-4)


def test_nms_matches_torchvision_per_class():
    rng = np.random.default_rng(3)
    n, nc = 400, 3
    pred = np.zeros((1, n, 5 + nc), np.float32)
    pred[0, :, :2] = rng.uniform(20, 100, (n, 2))
    pred[0, :, 2:4] = rng.uniform(5, 40, (n, 2))
    pred[0, :, 4:] = rng.uniform(0, 1, (n, 1 + nc))
    det = nms(pred, conf=0.2, iou=0.5)[0]
    p = torch.from_numpy(pred[0])
    score, cls = p[:, 5:].max(1)
    score = p[:, 4] * score
    ok = (p[:, 4] > 0.2) & (score > 0.2)
    xyxy = torch.cat((p[ok, :2] - p[ok, 2:4] / 2, p[ok, :2] + p[ok, 2:4] / 2), 1)
    keep = torchvision.ops.batched_nms(xyxy, score[ok], cls[ok], 0.5)
    assert len(det) == len(keep) > 10
    np.testing.assert_allclose(det.boxes, xyxy[keep].numpy(), atol=1e-5)
    np.testing.assert_array_equal(det.classes, cls[ok][keep].numpy())
    assert (np.diff(det.scores) <= 0).all()
    assert len(nms(pred, conf=0.2, iou=0.5, max_det=7)[0]) == 7


def test_bad_inputs_are_clear_errors(tiny_direct, tiny_frames, tmp_path):
    _, g = tiny_direct
    s = session(g)
    with pytest.raises(InputError, match=r"direct encoding takes images \[B, 3, 64, 64\], got \(1, 1, 64, 64\)"):
        s.run(np.zeros((1, 1, 64, 64), np.float32))  # wrong channel count
    with pytest.raises(InputError, match="got \\(1, 3, 32, 32\\)"):
        s.run(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(InputError, match="uint8 images: divide by 255"):
        s.run(np.zeros((1, 3, 64, 64), np.uint8))
    with pytest.raises(InputError, match="exported without spike outputs"):
        s.run(np.zeros((1, 3, 64, 64), np.float32), record="neurons")
    with pytest.raises(InputError, match="not a node-isolated graph"):
        s.run_isolated(np.zeros((1, 3, 64, 64), np.float32), None)
    stream = s.stream()
    with pytest.raises(InputError, match="the first push needs a frame"):
        stream.push()
    with pytest.raises(InputError, match="use run"):
        stream.push(np.zeros((1, 3, 3, 64, 64), np.float32))
    stream.push(np.zeros((1, 3, 64, 64), np.float32))
    with pytest.raises(InputError, match="batch size changed"):
        stream.push(np.zeros((2, 3, 64, 64), np.float32))
    _, gf = tiny_frames
    sf = session(gf)
    with pytest.raises(InputError, match=r"frames encoding takes \[B, T, 3, 64, 64\]"):
        sf.run(np.zeros((1, 3, 64, 64), np.float32))
    with pytest.raises(InputError, match="3 frames but time_steps=4"):
        sf.run(np.zeros((1, 3, 3, 64, 64), np.float32), time_steps=4)


def test_bad_model_files_are_clear_errors(tmp_path):
    with pytest.raises(ExportError, match="no such file"):
        StepwiseSession(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf")
    with pytest.raises(ExportError, match="junk.onnx: not a readable ONNX model"):
        StepwiseSession(junk)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    foreign = helper.make_model(
        helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]),
        opset_imports=[helper.make_opsetid("", 17)],
        ir_version=8,
    )
    onnx.save(foreign, tmp_path / "foreign.onnx")
    with pytest.raises(ExportError, match="not a stepwise emsdeploy ONNX graph"):
        StepwiseSession(tmp_path / "foreign.onnx")


def test_newer_format_version_is_refused(tiny_direct):
    _, g = tiny_direct
    model = build_onnx(g)
    for p in model.metadata_props:
        if p.key == "format_version":
            p.value = "99"
    with pytest.raises(ExportError, match="format version 99 is newer"):
        StepwiseSession(model)
