r"""NIR export: an IR graph as a Neuromorphic Intermediate Representation 1.0 graph (nir 1.0.8).

Mapping (docs/nir.md has the full table and the node names):

* **LIF** — EMS-YOLO's ``U[t] = τ·U[t−1]·(1 − S[t−1]) + I[t]``, ``S[t] = 1[U[t] > V_th]``, hard
  reset to 0, becomes ``nir.LIF`` with ``dt`` = one step (dimensionless, ``dt = 1``) under
  forward Euler ``v[t] = v⁺[t−1] + (dt/tau)(v_leak − v⁺[t−1] + r·I[t])``: ``dt/tau = 1 − τ``,
  ``r = 1/(1 − τ)``, ``v_leak = 0``, ``v_threshold = V_th`` (strict ``>``), ``v_reset = 0``;
  ``τ = 1`` gives ``nir.IF`` with ``r = 1``. ``discretization="exact"`` writes
  ``tau = −dt/ln τ`` instead. Frameworks disagree on ``>`` vs ``>=`` and on Euler vs exact
  discretisation, so the graph metadata records ``dt``, ``time_unit``, ``discretization``,
  ``threshold_comparison`` and ``reset``.
* **Conv2d** -> ``nir.Conv2d`` with its input shape (tdBN folded in first); **Affine** -> a 1×1
  conv with a diagonal kernel; **Add** -> several edges into one node (NIR sums a node's
  incoming edges); **Concat** -> per-source convs with sliced kernels where a conv reads it,
  else 1×1 identity convs into channel ranges; **spike MaxPool2d** -> ``SumPool2d`` ->
  ``Threshold(0)``.
* **Readout** and **Decode** run on the host: the 1×1 head convs end in ``Output`` nodes
  ``<readout>.in``; the mean over T and the YOLO decode are listed in ``host_ops``.
* What NIR 1.0 cannot express exactly (max-pool of currents, nearest upsampling, SiLU neurons)
  is never approximated: the graph is cut there (``Output`` ``X.in`` / ``Input`` ``X``, each cut
  listed with its reason in the metadata), or, with ``on_unsupported="error"``, refused.

:func:`import_nir` reads such a file back as an IR graph (for round-trip checks).
Stands on :mod:`emsdeploy.ir`, the passes and the targets; imports neither simulators nor torch.
"""

from __future__ import annotations

from pathlib import Path

from emsdeploy.ir import Graph

from .contract import FORMAT, FORMAT_VERSION, HostOp
from .export import CUT_REASONS, LOWERED, NirExport, build_nir, export_nir
from .importer import import_nir
from .neurons import DISCRETIZATIONS, NeuronParams, ems_from_nir, nir_from_ems
from .options import NirOptions

__all__ = [
    "CUT_REASONS",
    "DISCRETIZATIONS",
    "FORMAT",
    "FORMAT_VERSION",
    "LOWERED",
    "HostOp",
    "NeuronParams",
    "NirExport",
    "NirOptions",
    "build_nir",
    "ems_from_nir",
    "export_cli",
    "export_nir",
    "import_nir",
    "nir_from_ems",
]


def export_cli(graph: Graph, output: Path, options: NirOptions) -> list[str]:
    """``emsdeploy export --target nir``: write the NIR file; return the lines to print."""
    result = export_nir(graph, output)
    g, ir = result.graph, result.ir
    counts = ", ".join(f"{n} {t}" for t, n in sorted(result.counts.items(), key=lambda kv: -kv[1]))
    lif = [n for n in ir if n.op.type_name == "LIF" and n.meta.get("partition") == "chip"]
    vths = sorted({n.op.v_th for n in lif})  # type: ignore[attr-defined]
    per_tau = []
    for tau in sorted({n.op.tau for n in lif}):  # type: ignore[attr-defined]
        p = nir_from_ems(tau, 0.0, result.discretization, result.dt)
        per_tau.append(
            f"τ = {tau:g} -> IF r = {p.r:g}" if p.model == "IF" else f"τ = {tau:g} -> tau = {p.tau:.6g}, r = {p.r:.6g}"
        )
    inp = ir.input_node()
    lines = [
        f"graph        : NIR {g.metadata['nir_version']}, {len(g.nodes)} nodes ({counts}), {len(g.edges)} edges; type-checked by nir",
        f"neurons      : {len(lif)} LIF populations ({'; '.join(per_tau)}), v_threshold {_fmt(vths)}, v_leak = v_reset = 0",
        f"time         : dt = {result.dt:g} (one step), {_DISC[result.discretization]}, spike iff v > v_threshold (strict), "
        f"hard reset; {inp.op.encoding} input {list(inp.op.shape)} for T = {ir.time_steps} steps",  # type: ignore[attr-defined]
    ]
    cuts = result.cuts
    if cuts:
        lines.append(f"cuts         : {len(cuts)} node(s) NIR 1.0 cannot express run on the host (metadata host_ops):")
        width = max(len(h.node) for h in cuts)
        for h in cuts:
            back = f" -> Input {h.nir_input}" if h.nir_input else ""
            outs = ", ".join(sorted({r["nir_output"] for r in h.reads if r["nir_output"]})) or "host values"
            kinds = "/".join(sorted(set(h.input_kinds)))
            lines.append(f"  {h.node:<{width}}  {h.op} on {kinds}: Output {outs}{back}")
    else:
        lines.append("cuts         : none: every step of the spiking network is in the NIR graph")
    design = [h for h in result.host_ops if not h.cut]
    if design:
        lines.append("host         : " + "; ".join(f"{h.node} ({h.op})" for h in design) + " after the last step")
    outputs = [f"{n} {list(map(int, v.output_type['output']))}" for n, v in g.outputs.items()]
    lines.append(f"outputs      : {', '.join(outputs)}")
    if options.ignored:
        lines.append(f"note         : {', '.join(options.ignored)} do not apply to --target nir; ignored")
    size = Path(output).stat().st_size
    lines.append(f"wrote        : {output} ({size / 1e6:.2f} MB)")
    return lines


_DISC = {"euler": "forward Euler", "exact": "exact (zero-order hold)"}


def _fmt(values: list[float]) -> str:
    return "{" + ", ".join(f"{v:g}" for v in values) + "}"
