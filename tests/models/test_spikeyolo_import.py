"""SpikeYOLO-n imported from the official checkpoint reproduces the official forward.

The fixture (../shared/fixtures/official/spikeyolo_n_T1, README there) holds the official
code's every I-LIF output, per-layer outputs, raw head outputs and decoded predictions for a
batch of 2 at 64×64. One forward is run per session and shared by the tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from emsdeploy.checkpoint import from_model, load_any, save_checkpoint
from emsdeploy.models import IntegerLIF, record_neurons
from emsdeploy.models.spikeyolo import SeqBatchNorm2d, SpikeYOLO, decode_dfl
from tests.tolerances import EXACT, OFFICIAL

CHECKPOINT = "checkpoint_stripped_fp16.pt"


def _forward(model: SpikeYOLO, x: torch.Tensor) -> dict:
    layers: dict[int, torch.Tensor] = {}
    handles = [
        m.register_forward_hook(lambda _m, _a, out, i=i: layers.__setitem__(i, out.detach()))
        for i, m in enumerate(model.model[:-1])
    ]
    try:
        with record_neurons(model, (IntegerLIF,)) as spikes:
            pred, raws = model.predict(x)
    finally:
        for h in handles:
            h.remove()
    return {"spikes": dict(spikes), "layers": layers, "pred": pred, "raws": raws}


@pytest.fixture(scope="module")
def run(spikeyolo_n: Path) -> dict:
    ckpt = load_any(spikeyolo_n / CHECKPOINT)
    model = ckpt.model()
    x = torch.from_numpy(np.load(spikeyolo_n / "input.npy"))
    return {
        "ckpt": ckpt,
        "model": model,
        "x": x,
        "ref": np.load(spikeyolo_n / "reference.npz"),
        "info": json.loads((spikeyolo_n / "reference.json").read_text()),
        **_forward(model, x),
    }


def test_every_ilif_output_is_exact_in_the_official_call_order(run):
    order = run["info"]["lif_call_order"]
    assert len(order) == 88 and list(run["spikes"]) == order
    wrong = {n: int((run["spikes"][n].numpy().astype(np.uint8) != run["ref"][f"lif__{n}"]).sum()) for n in order}
    assert sum(wrong.values()) == 0, {n: w for n, w in wrong.items() if w}
    totals = run["info"]["totals"]
    assert sum(s.numel() for s in run["spikes"].values()) == totals["neurons"] == 1_267_200
    assert sum(int((s != 0).sum()) for s in run["spikes"].values()) == totals["nonzero"]


def test_head_raw_pred_and_layer_outputs_match(run):
    ref = run["ref"]
    for i, raw in enumerate(run["raws"]):
        np.testing.assert_allclose(raw.numpy(), ref[f"head_raw__{i}"], **OFFICIAL)
    np.testing.assert_allclose(run["pred"].numpy(), ref["pred"], **OFFICIAL)
    assert sorted(run["layers"]) == list(range(26))
    for i, out in run["layers"].items():
        np.testing.assert_allclose(out.numpy(), ref[f"layer_out__{i}"], **OFFICIAL, err_msg=f"model.{i}")


def test_decode_in_numpy_equals_torch_and_the_anchors(run):
    raws = [r.numpy() for r in run["raws"]]
    np.testing.assert_allclose(decode_dfl(raws, [8, 16, 32]), run["pred"].numpy(), **OFFICIAL)
    from emsdeploy.models.spikeyolo import make_anchors

    anchors, strides = make_anchors([(8, 8), (4, 4), (2, 2)], [8, 16, 32], raws[0])
    np.testing.assert_allclose(anchors, run["ref"]["anchors"], **EXACT)
    np.testing.assert_allclose(strides, run["ref"]["strides"], **EXACT)


def test_import_reads_keys_eps_t_and_strides_from_the_file(run, spikeyolo_n):
    ckpt, model = run["ckpt"], run["model"]
    rows = [ln.split("\t") for ln in (spikeyolo_n / "keys.txt").read_text().splitlines() if not ln.startswith("#")]
    sd = model.state_dict()
    assert [r[0] for r in rows] == list(sd) and len(rows) == 755
    assert all(list(sd[k].shape) == json.loads(shape) for k, shape, _ in rows)
    assert all(v.dtype in (torch.float32, torch.int64) for v in ckpt.state_dict.values())  # FP16 -> FP32
    bns = [m for m in model.modules() if isinstance(m, SeqBatchNorm2d)]
    assert len(bns) == 123 and {m.eps for m in bns} == {1e-3}
    assert (ckpt.time_steps, ckpt.encoding, model.stride.tolist()) == (1, "direct", [8.0, 16.0, 32.0])
    assert ckpt.meta["source"]["format"] == "official-spikeyolo" and ckpt.meta["source"]["scale"] == "n"
    assert sum(p.numel() for p in model.parameters()) == run["info"]["n_params"] == 13_271_632


def test_our_checkpoint_round_trips(run, tmp_path):
    path = save_checkpoint(tmp_path / "sy.pt", from_model(run["model"], {"source": run["ckpt"].meta["source"]}))
    back = load_any(path)
    assert back.config == run["model"].config and back.time_steps == 1
    model = back.build()
    assert isinstance(model, SpikeYOLO)
    for k, v in run["model"].state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    with record_neurons(model, (IntegerLIF,)) as spikes:
        model(run["x"][:1])
    name = "model.9.cv2.lif"
    assert torch.equal(spikes[name], run["spikes"][name][:, :1])


def test_bn_eps_1e5_would_be_caught(run):
    """The mutant the fixture README names: ε = 1e-5 in place of the file's 1e-3."""
    cfg = {**run["model"].config, "bn_eps": 1e-5}
    mutant = SpikeYOLO(cfg, run["ckpt"].time_steps).eval()
    mutant.load_state_dict(run["model"].state_dict())
    out = _forward(mutant, run["x"])
    wrong = sum(
        int((out["spikes"][n].numpy().astype(np.uint8) != run["ref"][f"lif__{n}"]).sum()) for n in out["spikes"]
    )
    assert wrong > 100_000  # README §7: 397,562
    assert not np.allclose(out["pred"].numpy(), run["ref"]["pred"], **OFFICIAL)
