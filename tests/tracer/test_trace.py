"""The tracer: every shipped config and block type, names = module paths, clear errors."""

import pytest
import torch
from torch import nn

from emsdeploy.errors import TraceError
from emsdeploy.ir import LIF, Conv2d, Decode, Readout, SiLUNeuron
from emsdeploy.models import EMSYOLO, build_model, builtin_configs
from emsdeploy.tracer import supported_modules, trace


@pytest.mark.parametrize("name", builtin_configs())
def test_every_shipped_config_traces(name):
    model = build_model(name)
    graph = trace(model, (64, 64))
    lif_modules = [n for n, m in model.named_modules() if type(m).__name__ == "LIF"]
    assert sorted(n.name for n in graph.of_type(LIF)) == sorted(lif_modules)  # one node per LIF module, same path
    params_ir = sum(n.op.num_parameters() for n in graph)
    bn_buffers = sum(m.num_features * 2 for m in model.modules() if type(m).__name__ == "TdBatchNorm")
    # Affine holds scale+shift where the model holds weight+bias: same count.
    assert params_ir == sum(p.numel() for p in model.parameters())
    assert bn_buffers > 0
    assert graph.outputs[-1].endswith(".decode") and len(graph.of_type(Readout)) == 2


def test_silu_neurons_and_detect_heads_are_mapped():
    g = trace(build_model("resnet18"), (64, 64))
    assert [n.name for n in g.of_type(SiLUNeuron)] == ["model.10.act", "model.14.act"]
    heads = [n for n in g.of_type(Conv2d) if n.name.startswith("model.15.m.")]
    assert [h.name for h in heads] == ["model.15.m.0", "model.15.m.1"] and heads[0].op.bias is not None
    assert g[g.outputs[-1]].op.strides == (16.0, 32.0)
    assert isinstance(g[g.outputs[-1]].op, Decode)


def test_graph_attrs_record_time_and_encoding():
    m = build_model("res10-ee", time_steps=5, encoding="frames")
    g = trace(m, (64, 64))
    assert g.attrs["time_steps"] == 5 and g.encoding == "frames" and g.input_node().op.shape == (3, 64, 64)


def test_function_nodes_are_named_after_their_block():
    g = trace(build_model("res10-ee"), (64, 64))
    assert "model.1.add" in g and "model.1.cat" in g and "model.1.pools" in g


class _Odd(nn.Module):
    def __init__(self):
        super().__init__()
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(x)


def test_unsupported_module_names_path_type_and_supported_set():
    model = build_model("res10-ee")
    model.model[1].residual_function[0] = _Odd()
    with pytest.raises(TraceError) as e:
        trace(model, (64, 64))
    msg = str(e.value)
    assert "model.1.residual_function.0.act (ReLU)" in msg and "Supported modules: " in msg and "LIF" in msg


def test_unsupported_function_is_reported():
    model = build_model("res10-ee")

    class Mul(nn.Module):
        def forward(self, x):
            return x * 2

    model.model[1].pools = Mul()
    with pytest.raises(TraceError, match="model.1.pools: call_function 'mul' has no IR mapping"):
        trace(model, (64, 64))


def test_supported_modules_listed():
    assert {"LIF", "SeqConv2d", "TdBatchNorm", "Detect"} <= set(supported_modules())


def test_trace_leaves_training_mode_as_it_was():
    m = build_model("res10-ee").train()
    trace(m, (64, 64))
    assert m.training


def test_input_channels_checked():
    with pytest.raises(TraceError, match="expects 3"):
        trace(build_model("res10-ee"), (1, 64, 64))


def test_not_a_model():
    with pytest.raises(TraceError, match="EMSYOLO"):
        trace(torch.nn.Linear(2, 2), (64, 64))  # type: ignore[arg-type]


def test_default_input_sizes():
    assert trace(build_model("res10-ee", encoding="frames")).input_node().op.shape == (3, 320, 320)
    assert isinstance(build_model("res10-ee"), EMSYOLO)
