"""`emsdeploy trace` and `emsdeploy inspect`, run as a user would."""

import json

import pytest

from emsdeploy.checkpoint import from_model, save_checkpoint
from emsdeploy.inspection import layer_rows, totals
from emsdeploy.ir import read_ir
from emsdeploy.models import build_model, builtin_configs
from emsdeploy.passes import partition, run_flow
from emsdeploy.targets import load_target
from emsdeploy.tracer import trace
from tests.helpers import run_console, tiny_ee


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "tiny.pt"
    save_checkpoint(path, from_model(tiny_ee(), {"input_size": 32}))
    return path


def test_trace_writes_a_readable_ir(ckpt, tmp_path):
    out = tmp_path / "m.emsir"
    r = run_console("trace", str(ckpt), "-o", str(out), "--simplify")
    assert r.returncode == 0, r.stderr
    g = read_ir(out)
    assert g.input_node().op.shape == (3, 32, 32)  # the checkpoint's input_size
    assert "LIF populations" in r.stdout


def test_inspect_json_totals_agree_with_rows(ckpt, tmp_path):
    r = run_console("inspect", str(ckpt), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    rows, tot = data["layers"], data["totals"]
    assert tot["parameters"] == sum(x["parameters"] for x in rows)
    assert tot["neurons"] == sum(x["neurons"] for x in rows) > 0
    assert {x["partition"] for x in rows} <= {"chip", "custom", "host"}
    assert rows[0]["node"] == "input"


def test_inspect_table_and_ir_input(ckpt, tmp_path):
    ir = tmp_path / "m.emsir"
    assert run_console("trace", str(ckpt), "-o", str(ir)).returncode == 0
    r = run_console("inspect", str(ir), "--raw")
    assert r.returncode == 0, r.stderr
    assert "model.1.residual_function.0" in r.stdout and "totals:" in r.stdout


def test_inspect_errors(tmp_path):
    r = run_console("inspect", str(tmp_path / "missing.pt"))
    assert r.returncode == 2 and "no such file" in r.stderr
    r = run_console("inspect")
    assert r.returncode == 2 and "SOURCE is required" in r.stderr
    r = run_console("inspect", "--support", "--json")
    assert r.returncode == 0 and "LIF" in json.loads(r.stdout)


@pytest.mark.parametrize("name", builtin_configs())
def test_inspect_rows_for_every_shipped_config(name):
    model = build_model(name)
    raw = trace(model, (64, 64))
    assert totals(raw, layer_rows(raw))["parameters"] == sum(p.numel() for p in model.parameters())
    g = partition(run_flow(raw, "simplify"), load_target("lava"))
    rows = layer_rows(g)
    assert totals(g, rows)["lif_populations"] > 0 and all(r["partition"] for r in rows)
