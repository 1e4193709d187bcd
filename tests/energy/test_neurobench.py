"""Our NeuroBench-named figures against NeuroBench 2.3 itself, on the shipped checkpoint.

NeuroBench hooks the PyTorch model; we count on the IR in the float simulator. Both run in
float64 here: NeuroBench sums each layer's counts in the model's dtype, and float32 cannot hold
a layer total above 2**24 exactly (docs/energy.md). Equal where the definitions agree; the
footprint and zero weights differ by definition, and the tests check those differences exactly.
"""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from emsdeploy.checkpoint import load_any
from emsdeploy.cli import cli
from emsdeploy.energy.neurobench_metrics import neurobench_metrics
from emsdeploy.ir import Conv2d
from emsdeploy.models.neurons import LIF, SiLUNeuron
from emsdeploy.passes import fold_affine
from emsdeploy.simulators.sops import count_sops
from emsdeploy.tracer import trace
from tests.conftest import shipped_checkpoint

SIZE = (64, 64)  # the smallest size the model's strides take: a few seconds per run
SAMPLES = 2


def _images() -> torch.Tensor:
    return torch.rand(SAMPLES, 3, *SIZE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _need_neurobench() -> None:
    pytest.importorskip("neurobench", reason="neurobench not installed (test extra: pip install -e '.[test]')")


def _neurobench(model: torch.nn.Module, x: torch.Tensor) -> dict:
    """NeuroBench's own Benchmark on ``model`` (our neuron classes registered as activations)."""
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
    from neurobench.models import TorchModel

    wrapped = TorchModel(model)
    wrapped.add_activation_module(LIF)
    wrapped.add_activation_module(SiLUNeuron)
    data = torch.utils.data.TensorDataset(x, torch.zeros(len(x)))
    loader = torch.utils.data.DataLoader(data, batch_size=len(x))
    bench = Benchmark(wrapped, loader, [], [], [[ConnectionSparsity], [ActivationSparsity, SynapticOperations]])
    return bench.run(quiet=True)


def _ours(model: torch.nn.Module, x: torch.Tensor):
    """Our figures for ``model`` traced at SIZE, counted in float64 (NeuroBench runs it in float64 too)."""
    graph = trace(model, SIZE, source="shipped")
    return neurobench_metrics(graph, count_sops(graph, [x], dtype=torch.float64))


@pytest.fixture(scope="module")
def shipped():
    _need_neurobench()
    return load_any(shipped_checkpoint())


def test_equal_to_neurobench_on_the_shipped_model(shipped):
    model = shipped.build().eval()
    x = _images()
    ours = _ours(model, x)
    nb = _neurobench(model.double(), x)
    ops = nb["SynapticOperations"]
    assert ours.effective_acs > 0 and ours.effective_macs > 0 and 0 < ours.activation_sparsity < 1
    assert ours.effective_acs == ops["Effective_ACs"]
    assert ours.effective_macs == ops["Effective_MACs"]
    assert ours.dense == ops["Dense"]
    assert ours.activation_sparsity == nb["ActivationSparsity"]
    assert round(ours.connection_sparsity, 4) == nb["ConnectionSparsity"]  # NeuroBench rounds to 4 decimals


def test_footprint_differs_by_batchnorm_folding_exactly(shipped):
    """NeuroBench counts the module's parameters and buffers; we count the folded graph's values.

    The difference is each BatchNorm's γ, β, running mean and variance and ``num_batches_tracked``
    (int64), plus the Detect stride buffer (the IR keeps strides as attributes), minus the
    bias each fold adds to a conv that had none.
    """
    from neurobench.metrics.static import Footprint
    from neurobench.models import TorchModel

    model = shipped.build().eval()
    graph = trace(model, SIZE, source="shipped")
    ours = neurobench_metrics(graph, count_sops(graph, [_images()[:1].float()]))
    nb = Footprint()(TorchModel(model))
    bn_bytes = sum(
        t.numel() * t.element_size()
        for m in model.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        for t in [*m.parameters(), *m.buffers()]
    )
    persistent = model.state_dict()
    unsaved = sum(b.numel() * b.element_size() for name, b in model.named_buffers() if name not in persistent)

    def biases(g):
        return sum(n.op.bias.size for n in g.of_type(Conv2d) if n.op.bias is not None)  # type: ignore[attr-defined]

    added = biases(fold_affine(graph)) - biases(graph)
    assert bn_bytes > 0 and added > 0
    assert nb - ours.parameter_bytes == bn_bytes + unsaved - 4 * added
    assert ours.state_bytes == 4 * ours.state_values > 0  # NeuroBench has no state figure


def test_zero_weights_count_here_not_in_neurobench(shipped):
    """A pruned conv: connection sparsity agrees, our SOPs keep the events on zero weights."""
    model = shipped.build().eval()
    spiking = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][3]  # a conv reading spikes
    with torch.no_grad():
        spiking.weight[:, ::2] = 0.0
    x = _images()
    ours = _ours(model, x)
    nb = _neurobench(model.double(), x)
    assert ours.zero_weights > 0
    assert round(ours.connection_sparsity, 4) == nb["ConnectionSparsity"] > 0
    assert ours.dense == nb["SynapticOperations"]["Dense"]
    assert ours.effective_macs == nb["SynapticOperations"]["Effective_MACs"]
    assert ours.effective_acs > nb["SynapticOperations"]["Effective_ACs"]


def test_energy_json_has_the_neurobench_section():
    shipped_checkpoint()
    res = CliRunner().invoke(cli, ["energy", "--json", "--limit", "1", "--input-size", "64"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    nb, t = r["neurobench"], r["total"]
    ops, fp = nb["synaptic_operations"], nb["footprint"]
    assert ops["effective_acs"] == t["sop_ac"] and ops["effective_macs"] == t["mac"]
    assert ops["dense"] == sum(x["dense_sops"] for x in r["layers"]) * r["time_steps"]
    assert all(isinstance(v, int) for v in [*ops.values(), fp["parameter_bytes"], fp["state_bytes"]])
    assert fp["bytes"] == fp["parameter_bytes"] + fp["state_bytes"]
    assert 0 < nb["activation_sparsity"] < 1 and nb["connection_sparsity"] == 0.0
