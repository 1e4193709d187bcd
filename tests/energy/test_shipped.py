"""The shipped checkpoint: `energy --json` totals agree with its per-layer rows."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from emsdeploy.cli import cli
from emsdeploy.models import DEFAULT_CHECKPOINT
from tests.conftest import shipped_checkpoint


def test_shipped_checkpoint_totals_match_its_rows():
    assert shipped_checkpoint().resolve() == DEFAULT_CHECKPOINT.resolve()  # skips locally, fails under CI, when missing
    res = CliRunner().invoke(cli, ["energy", "--json", "--limit", "2"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["model"]["source"] == str(DEFAULT_CHECKPOINT) and r["samples"] == 2
    t, layers = r["total"], r["layers"]
    assert t["sop_ac"] == pytest.approx(sum(x["ac"] for x in layers))
    assert t["mac"] == pytest.approx(sum(x["mac"] for x in layers))
    assert t["neuron_updates"] == pytest.approx(sum(n["updates"] for n in r["neurons"]))
    rows = layers + r["neurons"] + r["elementwise"]
    assert t["energy_mJ"] * 1e9 == pytest.approx(sum(x["energy_pj"] for x in rows))
    assert r["ann"]["mac"] == sum(x["flops"] for x in layers)
    assert r["ratio_ann_over_snn"] == pytest.approx(r["ann"]["energy_mJ"] / t["energy_mJ"])
