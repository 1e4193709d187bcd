"""Human-readable views of an energy report: a rich table and a per-layer plot."""

from __future__ import annotations

from pathlib import Path

from ..fileio import atomic_write
from ..tables import ENERGY_DIGITS

__all__ = ["eng", "render_table", "write_plot"]

# headers break into lines so that the table fits 80 columns; below NARROW the input kind is left
# out (the op kind says it: AC reads spikes, MAC reads currents or analog values)
COLUMNS = (
    "layer",
    "input",
    "firing\nrate",
    "SOP\nexact",
    "SOP\nformula",
    "exact /\nformula",
    "dense\nMAC/step",
    "energy\nnJ",
)
NARROW = 100


def eng(value: float | None, digits: int = 3) -> str:
    """1234567 -> '1.23M' (k, M, G, T); None -> '-'."""
    if value is None:
        return "-"
    v = float(value)
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.{digits}g}{suffix}"
    return f"{v:.{digits}g}"


def render_table(report: dict, console) -> None:
    """Print the per-layer table and the totals of ``report`` on a rich ``console``."""
    from ..tables import energy_text, name_table

    T, n = report["time_steps"], report["samples"]
    wide = console.width >= NARROW
    table = name_table(
        f"Synapse groups, per frame ({T} steps, mean of {n} sample{'s' * (n != 1)}; energy in nJ, "
        f"{ENERGY_DIGITS} significant digits)",
        [(c if wide or c != "input" else "op", "left" if c in ("layer", "input") else "right") for c in COLUMNS],
        names=[r["name"] for r in report["layers"]],
        name_columns=["layer"],
        fold_columns=["input"],
    )
    for r in report["layers"]:
        ratio = r["exact_over_formula"]
        table.add_row(
            r["name"],
            f"{r['input_kind']} ({r['op_kind']})" if wide else r["op_kind"],
            f"{r['firing_rate']:.3f}",
            eng(r["sop_exact"]),
            eng(r["sop_formula"]),
            "-" if ratio is None else f"{ratio:.3f}",
            eng(r["flops"]),
            energy_text(r["energy_pj"], "nJ"),
        )
    console.print(table)
    t, ann, prof = report["total"], report["ann"], report["profile"]
    neurons_pj = sum(x["energy_pj"] for x in report["neurons"])
    elem_pj = sum(x["energy_pj"] for x in report["elementwise"])
    syn_pj = sum(x["energy_pj"] for x in report["layers"])

    def mj(pj: float) -> str:
        return energy_text(pj, "mJ")

    inp = report["input"]
    lines = [
        f"model    : {report['model']['source']}  input {tuple(report['model']['input_shape'])}, "
        f"{report['model']['encoding']}, T = {T}",
        f"inputs   : {inp['description']}" + (f"  [{inp['note']}]" if inp.get("note") else ""),
        f"profile  : {prof['name']} — {prof['description']}"
        + (f"; not priced: {', '.join(prof['not_priced'])}" if prof["not_priced"] else ""),
        f"counts   : {eng(t['sop_ac'])} AC, {eng(t['mac'])} MAC (exact; formula {eng(t['sop_formula'])}), "
        f"{eng(t['neuron_updates'])} neuron updates ({eng(t['active_neuron_updates'])} active), "
        f"{eng(t['elementwise'])} elementwise ops",
        *(
            [
                f"integers : synapses fed by integer spikes cost {eng(t['sop_integer_spike_driven'])} AC spike-driven, "
                f"{eng(t['sop_integer_graded'])} graded events; priced: {t['integer_mode']}"
            ]
            if t.get("sop_integer_graded")
            else []
        ),
        f"energy   : {mj(t['energy_pj'])} mJ per frame (synapses {mj(syn_pj)} mJ, neurons {mj(neurons_pj)} mJ, "
        f"elementwise {mj(elem_pj)} mJ); paper formula {mj(t['energy_formula_mJ'] * 1e9)} mJ",
        f"ANN      : {eng(ann['mac'])} MAC per frame -> {mj(ann['energy_pj'])} mJ; "
        f"ANN/SNN = {_times(report['ratio_ann_over_snn'])} (paper formula: {_times(report['ratio_ann_over_snn_formula'])})",
    ]
    nb = report.get("neurobench")
    if nb is not None:
        ops, fp = nb["synaptic_operations"], nb["footprint"]
        lines.append(
            f"NeuroBench: activation sparsity {nb['activation_sparsity']:.4f}; synaptic ops {eng(ops['effective_acs'])} "
            f"effective AC, {eng(ops['effective_macs'])} effective MAC, {eng(ops['dense'])} dense; footprint "
            f"{eng(fp['parameter_bytes'])}B parameters + {eng(fp['state_bytes'])}B state; "
            f"connection sparsity {nb['connection_sparsity']:.4f}"
        )
    for line in lines:
        console.print(line, highlight=False, markup=False)


def _times(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}x"


def write_plot(report: dict, path: str | Path) -> Path:
    """Energy and input firing rate of each synapse group, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = report["layers"]
    names = [r["name"] for r in layers]
    x = range(len(layers))
    width = max(8.0, 0.22 * len(layers) + 2)
    fig, (ax_e, ax_f) = plt.subplots(2, 1, figsize=(width, 7), sharex=True, constrained_layout=True)
    colours = ["tab:blue" if r["op_kind"] == "AC" else "tab:orange" for r in layers]
    ax_e.bar(x, [r["energy_pj"] / 1e3 for r in layers], color=colours)
    ax_e.plot(x, [r["energy_formula_pj"] / 1e3 for r in layers], "k.", label="paper formula")
    ax_e.set_ylabel("energy per frame (nJ)")
    ax_e.set_yscale("log")
    ax_e.set_title(
        f"{Path(report['model']['source']).name}: {report['total']['energy_mJ']:.3g} mJ per frame, "
        f"profile {report['profile']['name']}\n(blue: AC on spikes, orange: MAC on real values)",
        fontsize=10,
    )
    ax_e.legend(loc="upper right")
    ax_f.bar(x, [r["firing_rate"] for r in layers], color=colours)
    ax_f.set_ylabel("input firing rate")
    ax_f.set_ylim(0, 1)
    ax_f.set_xticks(list(x))
    ax_f.set_xticklabels(names, rotation=90, fontsize=6)
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120), suffix=".png")
    plt.close(fig)
    return path
