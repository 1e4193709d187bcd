"""The report: totals are the sums of its rows, and each view follows its stated formula."""

from __future__ import annotations

import json
import math

import pytest
import torch

from emsdeploy.energy import energy_report, load_profile
from emsdeploy.simulators.sops import count_sops
from emsdeploy.tracer import trace
from tests.helpers import one_lif_by_hand, tiny_ee


@pytest.fixture(scope="module")
def counts():
    graph = trace(tiny_ee(time_steps=3), (32, 32))
    return count_sops(graph, [torch.rand(1, 3, 32, 32), torch.rand(2, 3, 32, 32)])


@pytest.mark.parametrize("profile", ["45nm-fp32", "45nm-fp32-memory", "loihi"])
def test_totals_are_the_sums_of_the_rows(counts, profile):
    r = energy_report(counts, load_profile(profile))
    json.dumps(r)  # plain data only
    t, layers = r["total"], r["layers"]
    assert r["samples"] == 3 and r["time_steps"] == 3
    assert t["sop_ac"] == pytest.approx(sum(x["ac"] for x in layers))
    assert t["mac"] == pytest.approx(sum(x["mac"] for x in layers))
    assert t["sop_exact"] == pytest.approx(t["sop_ac"] + t["mac"])
    assert t["neuron_updates"] == sum(n["updates"] for n in r["neurons"])
    rows = layers + r["neurons"] + r["elementwise"]
    assert t["energy_pj"] == pytest.approx(sum(x["energy_pj"] for x in rows))
    assert t["energy_pj"] == pytest.approx(sum(t["breakdown_pJ"].values()))
    assert t["energy_mJ"] == pytest.approx(t["energy_pj"] / 1e9)
    assert sum(t["per_step"]["sop_ac"]) == pytest.approx(t["sop_ac"])
    assert r["ann"]["mac"] == sum(x["flops"] for x in layers)
    assert r["ratio_ann_over_snn"] == pytest.approx(r["ann"]["energy_mJ"] / t["energy_mJ"])


def test_compute_only_profile_prices_exactly_ac_and_mac(counts):
    r = energy_report(counts, load_profile("45nm-fp32"))
    t = r["total"]
    assert t["energy_pj"] == pytest.approx(0.9 * t["sop_ac"] + 4.6 * t["mac"])
    assert r["ann"]["energy_pj"] == pytest.approx(4.6 * r["ann"]["mac"])


def test_formula_is_rate_times_T_times_flops_and_graded_layers_are_dense(counts):
    r = energy_report(counts, load_profile("45nm-fp32"))
    kinds = [row["op_kind"] for row in r["layers"]]
    assert "AC" in kinds and "MAC" in kinds  # both branches below run
    assert all(row["sop_formula"] for row in r["layers"])  # so does the ratio check
    for row in r["layers"]:
        if row["op_kind"] == "AC":
            assert row["sop_formula"] == pytest.approx(row["firing_rate"] * 3 * row["flops"])
            assert row["energy_formula_pj"] == pytest.approx(0.9 * row["sop_formula"])
        else:
            assert row["sop_formula"] == 3 * row["flops"]
        assert 0 <= row["firing_rate"] <= 1
        assert row["sop_exact"] <= 3 * row["dense_sops"] <= 3 * row["flops"]  # padding only lowers it
        if row["sop_formula"]:
            assert row["exact_over_formula"] == pytest.approx(row["sop_exact"] / row["sop_formula"])
    assert r["total"]["energy_formula_mJ"] * 1e9 == pytest.approx(sum(x["energy_formula_pj"] for x in r["layers"]))


def test_loihi_prices_active_updates_and_memory_profile_prices_traffic(counts):
    loihi = energy_report(counts, load_profile("loihi"))["total"]
    assert loihi["breakdown_pJ"]["active_neuron_update"] == pytest.approx(81.0 * loihi["active_neuron_updates"])
    mem = energy_report(counts, load_profile("45nm-fp32-memory"))["total"]
    assert mem["breakdown_pJ"]["weight_read"] == pytest.approx(10.0 * mem["sop_exact"])
    assert mem["breakdown_pJ"]["membrane_write"] == pytest.approx(10.0 * mem["neuron_updates"])
    assert mem["energy_mJ"] > energy_report(counts, load_profile("45nm-fp32"))["total"]["energy_mJ"]
    assert math.isfinite(mem["energy_formula_mJ"])


def test_neuron_rows_are_per_inference_by_hand():
    """One LIF of 4 neurons, T = 3, two samples (the same input twice): per inference it makes
    12 updates, 6 of them active (tests/simulators/test_sops.py counts them by hand) and 1 spike."""
    g, x = one_lif_by_hand()
    r = energy_report(count_sops(g, [x, x]), load_profile("loihi"))
    (lif,) = r["neurons"]
    assert r["samples"] == 2 and r["time_steps"] == 3
    assert (lif["updates"], lif["active_updates"], lif["firing_rate"]) == (12.0, 6.0, 1 / 12)
    assert lif["breakdown_pJ"]["active_neuron_update"] == pytest.approx(81.0 * 6)
    (conv,) = r["layers"]
    assert (conv["sop_exact"], conv["firing_rate"]) == (1.0, 1 / 12)  # one spike, one weight
