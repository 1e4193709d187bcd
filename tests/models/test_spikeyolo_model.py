"""SpikeYOLO built from its configs: exact parameter counts, T and D at run time, config errors."""

from __future__ import annotations

import pytest
import torch

from emsdeploy.models import ConfigError, IntegerLIF, record_neurons
from emsdeploy.models.family import build_detector, model_family
from emsdeploy.models.spikeyolo import SpikeYOLO, build_spikeyolo, spikeyolo_config

# The paper's and the official yaml's figures (m and l with layer 25 = MS_ConvBlock [2, 7]).
PARAMS = {"n": 13_271_632, "s": 23_153_024, "m": 47_841_856, "l": 68_478_400}


@pytest.mark.parametrize("scale", sorted(PARAMS))
def test_parameter_counts_are_exact(scale):
    with torch.device("meta"):
        model = build_spikeyolo(f"spikeyolo-{scale}")
    assert sum(p.numel() for p in model.parameters()) == PARAMS[scale]
    assert model.scale == scale and model.detect.strides == [8.0, 16.0, 32.0]


def test_m_and_l_widen_the_last_block_as_the_official_comments_say():
    assert spikeyolo_config("m")["head"][15] == [-1, 1, "MS_ConvBlock", [2, 7]]
    assert spikeyolo_config("n")["head"][15] == [-1, 1, "MS_ConvBlock", [1, 7]]


def _tiny(**extra) -> dict:
    cfg = spikeyolo_config("n")
    cfg["scales"]["n"] = [0.33, 0.0625, 1024]  # widths 8..64: a fast model
    return {**cfg, "nc": 3, **extra}


def test_t_comes_from_the_input_and_d_from_the_neurons():
    model = SpikeYOLO(_tiny()).eval()
    assert (model.time_steps, model.levels) == (1, 4)
    x = torch.rand(2, 3, 32, 64)
    with record_neurons(model, (IntegerLIF,)) as spikes:
        raws = model(x, time_steps=3)
    assert [tuple(r.shape) for r in raws] == [(2, 67, 4, 8), (2, 67, 2, 4), (2, 67, 1, 2)]
    assert all(s.shape[0] == 3 for s in spikes.values())
    model.set_levels(2)
    assert model.config["levels"] == 2
    with record_neurons(model, (IntegerLIF,)) as spikes:
        model(x * 50, time_steps=2)
    top = max(float(s.max()) for s in spikes.values())
    assert top == 2.0
    pred, _ = model.predict(torch.rand(1, 3, 32, 64))
    assert pred.shape == (1, 4 + 3, 4 * 8 + 2 * 4 + 1 * 2)


def test_frames_encoding_takes_t_from_the_frames():
    model = SpikeYOLO(_tiny(), encoding="frames").eval()
    with record_neurons(model, (IntegerLIF,)) as spikes:
        model(torch.rand(1, 2, 3, 32, 32))
    assert all(s.shape[0] == 2 for s in spikes.values())


def test_family_dispatch_builds_either_model():
    assert model_family(_tiny()) == "spikeyolo"
    assert isinstance(build_detector(_tiny(levels=3), 2), SpikeYOLO)
    assert build_detector(_tiny(levels=3), 2).levels == 3


def test_training_gradient_flows_through_the_integer_spikes():
    model = SpikeYOLO(_tiny()).train()
    loss = sum(r.square().mean() for r in model(torch.rand(2, 3, 32, 32), time_steps=2))
    loss.backward()
    stem = model.model[1].encode_conv.weight
    assert stem.grad is not None and float(stem.grad.abs().sum()) > 0
    assert model.model[26].dfl.conv.weight.grad is None  # the DFL integral is fixed


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda c: c.update(scale="x"), "scale 'x' is not one of"),
        (
            lambda c: c["backbone"].__setitem__(2, [-1, 1, "os.system", []]),
            "layer 2: module 'os.system' is not supported",
        ),
        (
            lambda c: c["head"].__setitem__(1, [-1, 1, "nn.Upsample", [None, "(2,2,2)", "nearest"]]),
            "layer 11: nn.Upsample",
        ),
        (lambda c: c["backbone"].__setitem__(1, [-1, 1, "MS_DownSampling", [128, 7, 4]]), "layer 1: MS_DownSampling"),
        (
            lambda c: c["head"].__setitem__(3, [[-1, 7], 1, "Concat", [2]]),
            "layer 13: Concat inputs have different strides",
        ),
        (lambda c: c.update(levels=0), "levels"),
    ],
)
def test_bad_configs_are_refused_naming_the_layer(edit, match):
    cfg = _tiny()
    edit(cfg)
    with pytest.raises(ConfigError, match=match):
        SpikeYOLO(cfg)
