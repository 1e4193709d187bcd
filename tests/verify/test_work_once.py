"""verify does each piece of work once (issue 16): the PyTorch model is built once, the graph
is lowered once, and ref-fixed runs once per sample (its raw run serves the Lava comparison,
the fixed-point ONNX comparison and the quantisation report)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from emsdeploy.checkpoint.format import Checkpoint
from emsdeploy.cli import cli
from emsdeploy.simulators.ref_fixed import RefFixed
from tests.conftest import shipped_checkpoint
from tests.passes.test_flows import counting

pytestmark = pytest.mark.lava  # the lava level runs lava-nc (skipped, with the reason, without it)


def _counting(monkeypatch, cls, name):
    calls = []
    original = getattr(cls, name)

    def counted(self, *args, **kwargs):
        calls.append(name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, counted)
    return calls


def test_verify_builds_the_model_once_and_runs_ref_fixed_once_per_sample(monkeypatch):
    path = shipped_checkpoint()
    builds = _counting(monkeypatch, Checkpoint, "build")
    runs = _counting(monkeypatch, RefFixed, "run")
    passes = counting(monkeypatch)
    args = ["verify", str(path), "--targets", "ref,lava,onnx-fixed", "--input-size", "32", "--limit", "2", "--json"]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output[-2000:]
    report = json.loads(res.stdout)
    assert report["ok"] and len(report["inputs"]) == 2
    assert report["quantization"]["spikes_compared"] > 0  # the report was made from that one run
    assert {(c["a"], c["b"]) for c in report["comparisons"]} >= {("ref-fixed", "lava"), ("ref-fixed", "onnx-fixed")}
    assert len(builds) == 1
    assert len(runs) == 2
    assert passes.count("quantize") == 1 and passes.count("fold_affine") == 1
