"""``emsdeploy.load``: the facade's objects equal the CLI's JSON and print as its tables."""

from __future__ import annotations

import json

import pytest

import emsdeploy
from emsdeploy.errors import InputError
from tests.helpers import invoke, tiny_checkpoint

SIZE = 64


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("facade"), SIZE)


@pytest.fixture(scope="module")
def model(ckpt):
    return emsdeploy.load(ckpt)


def cli_json(*args):
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_summary_equals_inspect_json_and_prints_a_table(model, ckpt):
    s = model.summary()
    assert s == cli_json("inspect", ckpt, "--json")
    text = repr(s)
    assert all(r["node"] in text for r in s["layers"]) and "…" not in text
    assert "direct encoding" in repr(model) and "T = 2" in repr(model)


def test_energy_equals_the_cli(model, ckpt):
    r = model.energy(limit=1)
    assert r == cli_json("energy", ckpt, "--json", "--limit", "1")
    assert "mJ per frame" in repr(r) and "model.0.conv" in repr(r)


def test_verify_equals_the_cli(model, ckpt):
    v = model.verify(targets="ref,onnx", limit=1)
    assert v.ok
    assert v.to_json() == cli_json("verify", ckpt, "--targets", "ref,onnx", "--limit", "1", "--json")
    assert "RESULT: OK" in repr(v) and "ref-float → onnx" in repr(v)


def test_fit_equals_the_cli(model, ckpt):
    f = model.fit(chip="loihi2")
    assert f.ok and f == cli_json("fit", ckpt, "--chip", "loihi2", "--json")
    assert f["chip"] == "loihi2" and f["totals"]["cores"] > 0 and f["totals"]["chips"] >= 1
    assert "cores" in repr(f) and f["layers"][0]["name"] in repr(f) and "latency" in repr(f)
    bare = model.fit(traffic=False)
    assert bare == cli_json("fit", ckpt, "--json", "--no-traffic") and "latency" not in repr(bare)


def test_load_takes_size_steps_and_encoding(ckpt):
    m = emsdeploy.load(ckpt, input_size=(32, 96), time_steps=3)
    assert m.summary()["totals"]["input_shape"] == [3, 32, 96] and m.graph.time_steps == 3
    with pytest.raises(InputError, match="a multiple of 32"):
        emsdeploy.load(ckpt, input_size=100)
    with pytest.raises(emsdeploy.errors.EmsdeployError, match="'direct' encoding"):
        emsdeploy.load(ckpt, encoding="frames")


def test_exports_load_back_and_print(model, tmp_path):
    onnx = model.export("onnx", tmp_path / "m.onnx")
    assert onnx.path.is_file() and onnx.load().meta.input_shape == (3, SIZE, SIZE)
    nir_graph = model.export("nir", tmp_path / "m.nir").load()
    assert len(nir_graph.nodes) > 10
    lava = model.export("lava", tmp_path / "lava")
    assert any("mapping" in line for line in lava.lines)
    text = repr(lava.load())  # like netx's print(net): a table of processes, not <... object at 0x...>
    assert "object at 0x" not in text and "processes" in text and "model.1.shortcut.0 " in text
    with pytest.raises(InputError, match="lava, onnx, nir"):
        model.export("loihi", tmp_path / "x")
