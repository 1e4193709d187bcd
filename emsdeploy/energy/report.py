"""From counted events and an energy profile to the report (a plain, JSON-ready dict).

All numbers are **per sample** (one detection frame: T time steps), i.e. counts summed over
the sample's steps and averaged over the samples. Three views sit side by side:

* **exact**: the counts of :mod:`emsdeploy.simulators.sops`, priced with the profile;
* **formula**: the papers' estimate, per synapse group ``SOP_l = fr_l·T·FLOPs_l`` for spike
  inputs (``fr_l`` = the firing rate of the layer's input) and ``T·FLOPs_l`` MACs for graded
  inputs (EMS-YOLO Eq. 6: every non-spike conv as MAC, at every step, the first layer included),
  priced ``E_AC·SOP`` or ``E_MAC·MAC``; nothing else;
* **ANN**: the same graph as a conventional network, one pass per frame: ``Σ FLOPs_l`` MACs
  (padded taps included) priced at ``ann_mac``, plus one weight read per MAC and the same
  elementwise ops once, when the profile prices those.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emsdeploy.ir import Graph
from emsdeploy.simulators.sops import SOPCounts

from .neurobench_metrics import neurobench_metrics
from .profiles import COSTS, EnergyProfile

__all__ = ["DEFINITIONS", "INTEGER_MODES", "energy_report"]

PJ_PER_MJ = 1e9

DEFINITIONS = {
    "sop": "one weight applied to one nonzero input value; padded kernel taps reach nothing and are not counted; zero weights count",
    "ac": "synaptic ops of synapse groups whose input kind is spike",
    "mac": "synaptic ops of synapse groups whose input kind is current or analog (nonzero inputs only)",
    "firing_rate": "fraction of the layer's input elements that are nonzero, over all steps (spike inputs: the firing rate)",
    "firing_rate_paper": "mean input value over all elements and steps: the firing rate for binary spikes, the mean integer for integer spikes (the SpikeYOLO paper's fr)",
    "integer_spikes": "a synapse group fed by integer spikes 0..D costs s accumulates per integer s in spike-driven mode (sop_spike_driven) and one graded event per nonzero integer in graded mode (sop_graded); integer_mode says which one the energy prices",
    "sop_formula": "papers' estimate: fr·T·FLOPs for spike inputs (fr = firing_rate_paper), T·FLOPs (dense MACs) for real-valued inputs",
    "flops": "dense MACs of one step, kH·kW·C_in/groups·C_out·H_out·W_out (padded taps included)",
    "neuron_updates": "LIF and SiLU neurons × T",
    "active_neuron_updates": "updates where the neuron received a nonzero input or its membrane U[t] is nonzero",
    "elementwise": "(n−1) adds per element of each Add and each neuron fan-in of n inputs, (k²−1) compares per max-pool output, one add per readout element",
    "per_sample": "counts are summed over a sample's T steps, averaged over the samples and rounded to the nearest integer",
}


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


INTEGER_MODES = ("spike-driven", "graded")


def energy_report(
    counts: SOPCounts,
    profile: EnergyProfile,
    graph: Graph | None = None,
    integer_mode: str = "spike-driven",
    **context: Any,
) -> dict:
    """The report of ``counts`` priced by ``profile``; ``context`` entries (model, input) are copied in.

    ``integer_mode`` prices synapse groups fed by integer spikes (SpikeYOLO): ``spike-driven``
    (an integer s is s accumulates) or ``graded`` (one event per nonzero integer). Both counts
    are in each such row (``sop_spike_driven``, ``sop_graded``) and in the totals.

    Every total is the sum of its rows (``layers``, ``neurons``, ``elementwise``). With the
    counted ``graph``, a ``neurobench`` section adds the figures NeuroBench users know.
    """
    if integer_mode not in INTEGER_MODES:
        raise ValueError(f"integer_mode must be one of {', '.join(INTEGER_MODES)}, got {integer_mode!r}")
    n, T = counts.samples, counts.time_steps
    c = {k: profile.pj(k) for k in COSTS}
    layers = []
    for row in counts.synapses:
        # counts are integers in the report: each step's mean over the samples, rounded; a row's
        # count is the sum of its steps, a total the sum of its rows (so every sum holds exactly)
        # integer spikes: the mode says which exact count is priced; both are reported
        spike_driven = row.is_integer and integer_mode == "spike-driven"
        per_step = np.rint((row.value_sops if spike_driven else row.sops) / n).astype(np.int64)
        sops = int(per_step.sum())
        nonzero = float(row.nonzero.sum()) / n
        fr = nonzero / (row.input_size * T)
        # the papers' rate: the mean input value (= the firing rate for binary spikes; SpikeYOLO
        # counts an integer s as s spikes, so it is the mean integer)
        fr_paper = float(row.value_sum.sum()) / n / (row.input_size * T) if row.is_integer else fr
        formula = fr_paper * T * row.flops if row.is_ac else float(T * row.flops)  # an estimate, not a count
        ac, mac = (sops, 0) if row.is_ac else (0, sops)
        e_ac, e_mac, e_wr = ac * c["ac"], mac * c["mac"], sops * c["weight_read"]
        layers.append(
            {
                "name": row.name,
                "input": row.source,
                "input_kind": row.input_kind.value,
                "op_kind": "AC" if row.is_ac else "MAC",
                "firing_rate": fr,
                "firing_rate_paper": fr_paper,
                "sop_exact": sops,
                "ac": ac,
                "mac": mac,
                "sop_formula": formula,
                "exact_over_formula": _ratio(sops, formula),
                "flops": row.flops,
                "dense_sops": row.dense_sops,
                "weight_reads": sops,
                "energy_pj": e_ac + e_mac + e_wr,
                "energy_formula_pj": formula * (c["ac"] if row.is_ac else c["mac"]),
                "breakdown_pJ": {"ac": e_ac, "mac": e_mac, "weight_read": e_wr},
                "sop_per_step": per_step.tolist(),
                "input_shape": list(row.input_shape),
                "output_shape": list(row.output_shape),
            }
        )
        if row.is_integer:
            layers[-1]["sop_spike_driven"] = int(np.rint(row.value_sops / n).sum())
            layers[-1]["sop_graded"] = int(np.rint(row.sops / n).sum())
    neurons = []
    for nr in counts.neurons:
        updates = int(nr.size * T)
        active = round(float(nr.active.sum()) / n)
        e = {
            "neuron_update": updates * c["neuron_update"],
            "active_neuron_update": active * c["active_neuron_update"],
            "membrane_read": updates * c["membrane_read"],
            "membrane_write": updates * c["membrane_write"],
        }
        neurons.append(
            {
                "name": nr.name,
                "op": nr.op,
                "size": nr.size,
                "fanin": nr.fanin,
                "updates": updates,
                "active_updates": active,
                # spikes per neuron and step (an I-LIF's integer s counts s unit spikes), and the
                # fraction of neurons with a nonzero output (the same for a binary LIF)
                "firing_rate": float(nr.nonzero_out.sum()) / n / updates if nr.spiking else None,
                "nonzero_rate": float(nr.nonzero.sum()) / n / updates,
                "energy_pj": sum(e.values()),
                "breakdown_pJ": e,
            }
        )
    elementwise = []
    for el in counts.elementwise:
        ops = int(el.ops_per_step * T)
        elementwise.append(
            {"name": el.name, "op": el.op, "rule": el.rule, "ops": ops, "energy_pj": ops * c["elementwise"]}
        )

    def total(rows: list[dict], key: str) -> float:
        return sum(r[key] for r in rows)  # integers stay integers (counts), energies stay floats

    breakdown = {k: 0.0 for k in COSTS if k != "ann_mac"}
    for r in layers + neurons:
        for k, v in r["breakdown_pJ"].items():
            breakdown[k] += v
    breakdown["elementwise"] = total(elementwise, "energy_pj")
    energy = total(layers, "energy_pj") + total(neurons, "energy_pj") + total(elementwise, "energy_pj")
    energy_formula = total(layers, "energy_formula_pj")
    all_updates = total(neurons, "updates")
    zero = np.zeros(T, dtype=np.int64)
    per_step_ac = sum((np.asarray(r["sop_per_step"]) for r in layers if r["op_kind"] == "AC"), zero)
    per_step_mac = sum((np.asarray(r["sop_per_step"]) for r in layers if r["op_kind"] == "MAC"), zero)
    totals = {
        "sop_ac": total(layers, "ac"),
        "mac": total(layers, "mac"),
        "sop_exact": total(layers, "sop_exact"),
        "sop_formula": total(layers, "sop_formula"),
        "integer_mode": integer_mode,
        "sop_integer_spike_driven": sum(r.get("sop_spike_driven", 0) for r in layers),
        "sop_integer_graded": sum(r.get("sop_graded", 0) for r in layers),
        "neuron_updates": all_updates,
        "active_neuron_updates": total(neurons, "active_updates"),
        "elementwise": total(elementwise, "ops"),
        "weight_reads": total(layers, "weight_reads"),
        "membrane_reads": all_updates,
        "membrane_writes": all_updates,
        "energy_pj": energy,
        "energy_mJ": energy / PJ_PER_MJ,
        "energy_formula_mJ": energy_formula / PJ_PER_MJ,
        "breakdown_pJ": breakdown,
        "per_step": {
            "sop_ac": [int(v) for v in per_step_ac],
            "mac": [int(v) for v in per_step_mac],
        },
    }
    ann_mac = int(sum(r.flops for r in counts.synapses))
    ann_elementwise = int(sum(el.ops_per_step for el in counts.elementwise))
    ann_breakdown = {
        "mac": ann_mac * c["ann_mac"],
        "weight_read": ann_mac * c["weight_read"],
        "elementwise": ann_elementwise * c["elementwise"],
    }
    ann_energy = sum(ann_breakdown.values())
    report = {
        **context,
        "time_steps": T,
        "samples": n,
        "profile": profile.to_dict(),
        "layers": layers,
        "neurons": neurons,
        "elementwise": elementwise,
        "uncounted": dict(counts.uncounted),
        "total": totals,
        "ann": {
            "mac": ann_mac,
            "elementwise": ann_elementwise,
            "energy_pj": ann_energy,
            "energy_mJ": ann_energy / PJ_PER_MJ,
            "breakdown_pJ": ann_breakdown,
        },
        "ratio_ann_over_snn": _ratio(ann_energy, energy),
        "ratio_ann_over_snn_formula": _ratio(ann_mac * c["ann_mac"], energy_formula),
        "definitions": DEFINITIONS,
    }
    if graph is not None:
        report["neurobench"] = neurobench_metrics(graph, counts).to_dict()
    return report
