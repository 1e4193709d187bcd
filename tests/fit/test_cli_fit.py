"""``emsdeploy fit`` through the real entry point: the JSON schema, the plot, exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from emsdeploy.cli.cmd_fit import spike_counts
from emsdeploy.cli.main import cli
from emsdeploy.inputs import choose_inputs
from emsdeploy.ir import write_ir
from tests.loihi_cases import chain_graph, lowered

from .test_fit import _counts_from_trace

LAYER_KEYS = {"name", "neurons", "fan_in", "synapses", "weight_bytes", "cores", "binding"}


def _emsdeploy(*args):
    return subprocess.run(
        [sys.executable, "-m", "emsdeploy", *map(str, args)], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def ir_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("fit") / "chain.emsir"
    write_ir(chain_graph(size=16), path)
    return path


def test_json_schema_and_plot(ir_file, tmp_path):
    png = tmp_path / "cores.png"
    r = _emsdeploy("fit", ir_file, "--chip", "loihi2", "--json", "--plot", png)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"chip", "totals", "layers", "errors"}
    assert out["chip"] == "loihi2" and out["errors"] == []
    assert set(out["totals"]) == {"cores", "chips", "board", "neurons", "synapses"}
    assert out["totals"]["chips"] == 1 and out["totals"]["board"] == "Oheo Gulch"
    assert all(set(row) == LAYER_KEYS for row in out["layers"])
    assert [row["name"] for row in out["layers"]] == ["lif1", "lif2", "lif3", "ro"]
    assert out["totals"]["cores"] == sum(row["cores"] for row in out["layers"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_drc_error_exits_2_with_one_line(ir_file, make_chip):
    chip = make_chip(core__input_axons=8)  # lif2 reads 8·3·3 = 72 source neurons per neuron
    r = _emsdeploy("fit", ir_file, "--chip", chip, "--json", "--no-traffic")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: [fits_chip] lif2: one neuron reads 72 source neurons")
    assert "past the 8 input axons" in lines[0]
    assert json.loads(r.stdout)["errors"][0].startswith("lif2: ")  # the map is still printed


def test_bad_chip_file_exits_2_naming_file_and_field(ir_file, make_chip):
    chip = make_chip(core__neurons="true")
    r = CliRunner().invoke(cli, ["fit", str(ir_file), "--chip", str(chip)])
    assert r.exit_code == 2
    assert "mychip.toml: [core.neurons]: must be an integer" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_text_report_has_traffic_energy_and_latency(ir_file):
    r = CliRunner().invoke(cli, ["fit", str(ir_file)])
    assert r.exit_code == 0, r.output
    assert "smallest board: Kapoho Bay" in r.output
    assert "energy ~" in r.output and "latency ~" in r.output and "spike messages" in r.output


def test_the_observer_counts_equal_the_recorded_trace():
    q = lowered(chain_graph(size=16))
    counts = spike_counts(q, None)
    x = next(iter(choose_inputs(None, q, None, 1, 1, None).samples()))[:1]
    expect, _ = _counts_from_trace(q, x)
    for name, c in expect.items():
        if q[name].op.type_name == "LoihiReadout":
            continue
        assert np.array_equal(counts[name].per_step, c.per_step), name
        assert np.array_equal(counts[name].per_neuron, c.per_neuron), name
