"""partition: placements follow the target's data; users can send custom ops to the host."""

import pytest

from emsdeploy.errors import EmsdeployError
from emsdeploy.models import build_model
from emsdeploy.passes import partition, run_flow
from emsdeploy.targets import builtin_targets, load_target
from emsdeploy.tracer import trace


@pytest.fixture(scope="module")
def graph():
    return run_flow(trace(build_model("resnet18"), (64, 64)), "simplify")


def test_lava_placements(graph):
    g = partition(graph, load_target("lava"))
    where = {n.name: n.meta["partition"] for n in g}
    assert where["input"] == "host" and where["model.0.conv"] == "host"  # conv of analog pixels
    assert where["model.1.residual_function.0"] == "chip"  # LIF
    assert where["model.1.shortcut.0"] == "custom"  # EMS-Block1 shortcut: max-pool of currents
    assert where["model.10.act"] == "custom"  # SiLU neuron
    assert where[g.outputs[-1]] == "host"  # box decoding
    assert g.attrs["target"] == "lava"


def test_custom_to_host(graph):
    g = partition(graph, load_target("lava"), custom_to_host=True)
    assert {n.meta["partition"] for n in g} == {"chip", "host"}
    assert g["model.10.act"].meta["partition"] == "host"


def test_onnx_target_runs_everything_but_decode(graph):
    g = partition(graph, load_target("onnx"))
    assert [n.name for n in g if n.meta["partition"] != "chip"] == [g.outputs[-1]]


def test_target_files(tmp_path):
    assert {"lava", "onnx"} <= set(builtin_targets())
    with pytest.raises(EmsdeployError, match="unknown target 'tpu'"):
        load_target("tpu")
    bad = tmp_path / "t.toml"
    bad.write_text('name = "x"\n[chip]\nFoo = ["spike"]\n')
    with pytest.raises(EmsdeployError, match="unknown op 'Foo'"):
        load_target(bad)
    bad.write_text('name = "x"\n[chip]\nLIF = ["photon"]\n')
    with pytest.raises(EmsdeployError, match="input kinds"):
        load_target(bad)
    bad.write_text("name = \n")
    with pytest.raises(EmsdeployError, match="not valid TOML"):
        load_target(bad)
