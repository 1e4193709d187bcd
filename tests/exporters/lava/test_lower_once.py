"""``export --target lava`` lowers once (issue 16): each pass of the lava flow runs once, the
mapping report reads the kept partitioned graph, and the written IR records the flow."""

from __future__ import annotations

from click.testing import CliRunner

from emsdeploy.cli import cli
from emsdeploy.exporters.lava import export
from emsdeploy.ir import read_ir
from emsdeploy.passes import applied_flows, flow_steps
from tests.conftest import shipped_checkpoint
from tests.loihi_cases import chain_graph
from tests.passes.test_flows import counting


def test_export_lava_runs_its_flow_once(monkeypatch, tmp_path):
    path = shipped_checkpoint()
    calls = counting(monkeypatch)
    args = ["export", str(path), "--target", "lava", "-o", str(tmp_path / "out"), "--input-size", "32"]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output[-2000:]
    assert calls == flow_steps("lava")  # each pass once, in the flow's order
    q = read_ir(tmp_path / "out" / "quantized.emsir")
    assert applied_flows(q) == ["simplify", "loihi", "lava"]
    assert "IR node" in (tmp_path / "out" / "mapping.txt").read_text()  # the report still lists the float nodes


def test_netx_requantizes_only(monkeypatch, tmp_path):
    """A chain needs netx's bias exponent, seen only after quantization: the loihi flow
    (expand_fanin, quantize, align_delays) runs again on the kept partitioned graph; simplify and partition do not."""
    calls = counting(monkeypatch)
    res = export(chain_graph(seed=4), tmp_path / "out")
    assert res["format"] == "netx"
    assert calls == [*flow_steps("lava"), "expand_fanin", "quantize", "align_delays"]
    assert applied_flows(res["graph"]) == ["simplify", "loihi", "lava"]
