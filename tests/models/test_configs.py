"""Shipped configs build with the paper's parameter counts; bad configs fail clearly."""

import pytest
import torch

from emsdeploy.models import ConfigError, build_model, builtin_configs

PARAMS = {
    ("res10-ee", 2): 6_207_050,
    ("res18-ee", 2): 9_343_370,
    ("res34-ee", 2): 14_399_306,
    ("resnet34-cat", 80): 25_449_022,
    ("resnet34", 80): 34_027_454,
    ("resnet18", 80): 15_427_774,
    ("resnet10", 80): 17_561_662,
}


@pytest.mark.parametrize("name,nc", sorted(PARAMS))
def test_parameter_counts_match_the_paper_and_official_code(name, nc):
    model = build_model(name, nc=nc)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[(name, nc)]
    assert model.stride.tolist() == [16.0, 32.0]


def test_every_paper_config_is_shipped():
    assert {n for n, _ in PARAMS} <= set(builtin_configs())


@pytest.mark.parametrize("encoding,shape", [("direct", (2, 3, 64, 64)), ("frames", (2, 3, 3, 64, 64))])
def test_both_encodings_run(encoding, shape):
    cfg = {**build_model("res10-ee").config, "width_multiple": 0.25}
    from emsdeploy.models import EMSYOLO

    model = EMSYOLO(cfg, time_steps=3, encoding=encoding).eval()
    pred, raws = model.predict(torch.rand(shape))
    assert [tuple(r.shape) for r in raws] == [(2, 3, 4, 4, 7), (2, 3, 2, 2, 7)]
    assert pred.shape == (2, 60, 7)


def test_wrong_input_shapes_are_explained():
    model = build_model("res10-ee").eval()
    with pytest.raises(ValueError, match="expected 3 input channels"):
        model(torch.rand(1, 2, 64, 64))
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        model(torch.rand(1, 1, 3, 64, 64))


def _cfg(rows, head=None):
    return {
        "nc": 2,
        "anchors": [[10, 14, 23, 27, 37, 58], [81, 82, 135, 169, 216, 269]],
        "backbone": rows,
        "head": head if head is not None else [[[-1, -1], 1, "Detect", ["nc", "anchors"]]],
    }


def test_unknown_module_names_the_layer_and_the_supported_set():
    with pytest.raises(ConfigError, match=r"layer 1: module 'CSABlock' is not supported. Supported: Conv_1, Conv_2"):
        build_model(_cfg([[-1, 1, "Conv_2", [32, 3, 2]], [-1, 1, "CSABlock", [64]]]))


def test_string_args_are_never_evaluated(tmp_path):
    marker = tmp_path / "pwned"
    cfg = _cfg([[-1, 1, "Conv_2", [f"__import__('os').system('touch {marker}')", 3, 2]]])
    with pytest.raises(ConfigError):
        build_model(cfg)
    assert not marker.exists()


def test_repeated_block_that_changes_width_is_refused():
    with pytest.raises(ConfigError, match="repeated 2"):
        build_model(_cfg([[-1, 1, "Conv_2", [32, 3, 2]], [-1, 2, "BasicBlock_2", [64, 3, 1]]]))


def test_bad_from_index():
    with pytest.raises(ConfigError, match="does not name an earlier layer"):
        build_model(_cfg([[-1, 1, "Conv_2", [32, 3, 2]], [5, 1, "BasicBlock_2", [32, 3, 1]]]))
