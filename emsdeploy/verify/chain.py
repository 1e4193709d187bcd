"""The verification chain of DESIGN.md §7, run on a set of inputs.

    torch ──▶ ref-float ──▶ onnx            (float: spike-exact, near-threshold flips excused
                  │                          only where they can be attributed to one node)
                  └──── quantisation ──▶ ref-fixed ──▶ lava   (integer: bit-exact, nothing excused)

Each float pair runs twice: end to end, and node-isolated (every neuron fed the reference's
own inputs and state). Levels whose backend cannot run here are reported as skipped with the
reason, never silently dropped.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..exporters.lava._require import LAVA_MISSING, lava_available, require_lava
from ..ir import LIF, Graph, IntegerLIF
from ..ir.runtime import Trace
from ..models import EMSYOLO
from ..simulators import RefFloat
from .compare import DEFAULT_MARGIN, Comparison, compare_records, merge
from .torch_level import run_torch

__all__ = ["TARGETS", "Chain", "SampleResult", "VerifyOptions", "VerifyReport", "open_chain", "verify"]

TARGETS = ("ref", "onnx", "lava", "onnx-fixed")


@dataclass
class VerifyOptions:
    targets: Sequence[str] = TARGETS
    margin: float = DEFAULT_MARGIN
    time_steps: int | None = None
    onnx_model: Path | None = None  # verify this artifact instead of a fresh export
    lava_artifact: Path | None = None
    workdir: Path | None = None
    providers: list[str] | None = None  # onnxruntime execution providers (default: CPU)
    # The default targets: without lava-nc, ref-fixed and the quantisation section still run and
    # the lava run is reported as skipped; asked for explicitly, a missing Lava is an error.
    lava_optional: bool = False


@dataclass
class VerifyReport:
    source: str
    inputs: list[str]
    time_steps: int
    input_shape: list[int]
    comparisons: list[Comparison] = field(default_factory=list)
    quantization: dict[str, Any] | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.comparisons)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "source": self.source,
            "inputs": self.inputs,
            "time_steps": self.time_steps,
            "input_shape": self.input_shape,
            "comparisons": [c.to_json() for c in self.comparisons],
            "quantization": self.quantization,
            "skipped": self.skipped,
        }


def _max_diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    out = {}
    for k in a:
        if k in b:
            x, y = torch.as_tensor(a[k]).double(), torch.as_tensor(b[k]).double()
            out[k] = float((x - y).abs().max()) if x.numel() else 0.0
    return out


class _Pair:
    """Accumulates one (a, b, mode) comparison over samples."""

    def __init__(self) -> None:
        self.parts: list[Comparison] = []

    def add(self, c: Comparison) -> None:
        self.parts.append(c)

    def result(self) -> Comparison:
        return merge(self.parts)


def verify(
    graph: Graph,
    samples: Iterable[tuple[str, torch.Tensor]],
    model: EMSYOLO | None,
    options: VerifyOptions,
    source: str = "",
    progress: Callable[[str], None] | None = None,
) -> VerifyReport:
    """Run the chain on every sample; return the merged report. Artifacts exported on the way
    go to ``options.workdir``, or to a temporary folder removed afterwards."""
    with open_chain(graph, model, options, source) as chain:
        return chain.finish(chain.run(k, name, x, progress) for k, (name, x) in enumerate(samples))


@dataclass
class SampleResult:
    """One sample through the chain: its comparisons, and its quantisation section (lava)."""

    name: str
    comparisons: list[Comparison]
    quant: dict[str, Any] | None = None


@contextmanager
def open_chain(graph: Graph, model: EMSYOLO | None, options: VerifyOptions, source: str = "") -> Iterator[Chain]:
    """A :class:`Chain` whose exports live in ``options.workdir`` or a temporary folder."""
    if options.workdir is not None:
        yield Chain(graph, model, options, source)
        return
    with tempfile.TemporaryDirectory(prefix="emsdeploy-verify-") as tmp:
        yield Chain(graph, model, replace(options, workdir=Path(tmp)), source)


class Chain:
    """The levels, built (and exported) once, then run one sample at a time.

    Samples may run in any process and any order: :meth:`finish` merges their results in
    the order given, which is what makes a sharded run equal to a single one.
    """

    def __init__(self, graph: Graph, model: EMSYOLO | None, options: VerifyOptions, source: str = "") -> None:
        unknown = set(options.targets) - set(TARGETS)
        if unknown:
            raise InputError(f"unknown verify targets {sorted(unknown)}; choose from {', '.join(TARGETS)}")
        if "lava" in options.targets and not lava_available():
            if not options.lava_optional or options.lava_artifact is not None:
                require_lava()  # asked for explicitly: a missing Lava is an error, before any work
        self.graph, self.model, self.options, self.source = graph, model, options, source
        self.lif_names = [n.name for n in graph.of_type(LIF, IntegerLIF)]
        # where a spike can flip: V_th for a LIF, every rounding edge k + 0.5 for an I-LIF
        self.v_th: dict[str, float | tuple[float, ...]] = {n.name: n.op.v_th for n in graph if isinstance(n.op, LIF)}
        self.v_th.update(
            {n.name: tuple(k + 0.5 for k in range(n.op.levels)) for n in graph if isinstance(n.op, IntegerLIF)}
        )
        self.skipped: dict[str, str] = {}
        self.ref_float = RefFloat(graph)
        if options.workdir is None:
            raise ValueError("Chain needs options.workdir for its exports; open_chain() makes one")
        workdir = Path(options.workdir)
        from .onnx_fixed import OnnxFixedLevel, is_fixed_model

        # a fixed-point --onnx file is compared with ref-fixed, a float one with ref-float
        fixed_artifact = options.onnx_model is not None and is_fixed_model(options.onnx_model)
        wants_fixed = "onnx-fixed" in options.targets or ("onnx" in options.targets and fixed_artifact)
        self.onnx = (
            _OnnxLevel(graph, options, workdir, self.skipped)
            if "onnx" in options.targets and not fixed_artifact
            else None
        )
        self.lava = _LavaLevel(graph, options, workdir, self.skipped) if "lava" in options.targets else None
        # both integer levels check the same lowering where they can: lowered once, and
        # ref-fixed run once per sample for both (the lava level's run is raw: it holds both views)
        shared = self.lava is not None and self.lava.default_lowering
        self.onnx_fixed = (
            OnnxFixedLevel(
                graph,
                options.onnx_model if fixed_artifact else None,
                workdir,
                self.lava.ref_fixed if shared and self.lava is not None else None,
            )
            if wants_fixed
            else None
        )
        self.shared_fixed = self.onnx_fixed is not None and self.lava is not None and shared
        if "ref" in options.targets and model is None:
            self.skipped["torch"] = "the source is an IR file: there is no PyTorch model to compare with"

    def _cmp(self, a_name, b_name, a, b, integer, mode, sample, nodes=None) -> Comparison:
        c = compare_records(
            a_name, b_name, a.records, b.records, self.lif_names if nodes is None else nodes,
            integer=integer, mode=mode, v_th=self.v_th, margin=self.options.margin, sample=sample,
        )  # fmt: skip
        c.outputs = _max_diff(a.outputs, b.outputs)
        return c

    def run(self, k: int, name: str, x: torch.Tensor, progress: Callable[[str], None] | None = None) -> SampleResult:
        """Sample number ``k`` (its index in the whole input set) through every level."""
        out = SampleResult(name, [])
        add, cmp, options, model = out.comparisons.append, self._cmp, self.options, self.model
        T = options.time_steps
        say = progress or (lambda _msg: None)
        say(f"{name}: ref-float")
        ref = self.ref_float.run(x, T, record="neurons")
        if "ref" in options.targets and model is not None:
            say(f"{name}: torch")
            tch = run_torch(model, self.graph, x, T)
            add(cmp("torch", "ref-float", tch, ref, False, "end-to-end", k))
            iso = self.ref_float.run(x, T, record="neurons", reference=tch)
            add(cmp("torch", "ref-float", tch, iso, False, "isolated", k))
        if self.onnx is not None and self.onnx.available:
            say(f"{name}: onnx")
            e2e, iso = self.onnx.run(x, T, ref)
            add(cmp("ref-float", "onnx", ref, e2e, False, "end-to-end", k))
            if iso is not None:
                add(cmp("ref-float", "onnx", ref, iso, False, "isolated", k))
        shared = self.lava.run_ref_fixed(x, T) if self.shared_fixed and self.lava is not None else None
        if self.onnx_fixed is not None:
            say(f"{name}: ref-fixed and onnx-fixed")
            fixed, got = self.onnx_fixed.run(x, T, shared)
            add(cmp("ref-fixed", "onnx-fixed", fixed, got, True, "end-to-end", k, list(fixed.records)))
        if self.lava is not None and self.lava.available:
            say(f"{name}: ref-fixed and lava")
            fixed, lava_trace, quant = self.lava.run(x, T, ref, shared)
            out.quant = quant
            if lava_trace is not None:
                add(cmp("ref-fixed", "lava", fixed, lava_trace, True, "end-to-end", k, list(fixed.records)))
        return out

    def finish(self, results: Iterable[SampleResult]) -> VerifyReport:
        """The report of ``results``, merged in the order given (sample order)."""
        graph, options = self.graph, self.options
        shape = list(graph.input_node().op.shape)  # type: ignore[attr-defined]
        report = VerifyReport(self.source, [], options.time_steps or graph.time_steps, shape)
        report.skipped = dict(self.skipped)
        pairs: dict[tuple[str, str, str], _Pair] = {}
        quant_parts: list[dict[str, Any]] = []
        for r in results:
            report.inputs.append(r.name)
            for c in r.comparisons:
                pairs.setdefault((c.a, c.b, c.mode), _Pair()).add(c)
            if r.quant is not None:
                quant_parts.append(r.quant)
        report.comparisons = [p.result() for p in pairs.values()]
        if quant_parts:
            report.quantization = _LavaLevel.merge_quant(quant_parts)
        return report


class _OnnxLevel:
    """Exports the graph to ONNX (or loads ``--onnx``) and runs it in onnxruntime."""

    def __init__(self, graph: Graph, options: VerifyOptions, workdir: Path, skipped: dict[str, str]) -> None:
        from ..exporters.onnx import StepwiseSession, export_onnx

        self.available = True
        if options.onnx_model is not None:
            self.session = StepwiseSession(options.onnx_model, providers=options.providers)
            if not self.session.meta.spikes:
                raise InputError(f"{options.onnx_model}: exported without spikes; re-export with --spikes to verify it")
        else:
            path = workdir / "model.onnx"
            export_onnx(graph, path, spikes=True)
            self.session = StepwiseSession(path, providers=options.providers)
        iso_path = workdir / "model-isolated.onnx"
        export_onnx(graph, iso_path, isolate=True)
        self.isolated = StepwiseSession(iso_path, providers=options.providers)
        if options.onnx_model is not None:
            skipped["onnx-isolated"] = (
                f"node isolation runs a graph exported from the IR, not {options.onnx_model.name}; "
                "the artifact itself is judged end to end"
            )

    def run(self, x: torch.Tensor, T: int | None, ref) -> tuple[Any, Any]:
        e2e = self.session.run(x.numpy(), T, record="neurons").to_torch()
        iso = self.isolated.run_isolated(x.numpy(), ref, T).to_torch()
        return e2e, iso


class _LavaLevel:
    """ref-fixed (the quantized IR in our integer simulator) and lava-nc running the export.

    The quantized graph is always lowered afresh from the source, with the default options; the
    Lava network is either exported alongside it or, with ``--lava``, the user's artifact. Every
    population is compared over all ``T + latency`` steps (spikes, graded outputs of custom
    processes, readout integrator state): integer, so nothing is excused.
    """

    def __init__(self, graph: Graph, options: VerifyOptions, workdir: Path, skipped: dict[str, str]) -> None:
        from ..exporters.lava import export, lower
        from ..passes import run_flow
        from ..simulators import RefFixed

        self.available = True
        self.runs_lava = lava_available()
        if not self.runs_lava:
            skipped["lava"] = LAVA_MISSING
        # simplified once: the quantisation report reads it, and the lava flow finds it recorded
        self.float_graph = run_flow(graph, "simplify")
        self.network: Path | None = None
        if options.lava_artifact is not None:
            if not Path(options.lava_artifact).exists():
                raise InputError(
                    f"{options.lava_artifact}: no such Lava export (a folder from `emsdeploy export --target lava`)"
                )
            from ..exporters.lava.loader import load

            load(options.lava_artifact)  # checked here (manifest, HDF5 reader): one-line errors, not a worker's
            self.qgraph = lower(self.float_graph)
            self.network = Path(options.lava_artifact)
        elif not self.runs_lava:
            self.qgraph = lower(self.float_graph)  # ref-fixed needs no Lava
        else:
            res = export(self.float_graph, workdir / "lava")
            self.qgraph = res["graph"]
            self.network = workdir / "lava"
        # lower()'s default lowering, which the fixed-point ONNX level checks too (a netx export
        # re-quantizes with netx's bias exponent: then that level lowers its own)
        self.default_lowering = options.lava_artifact is not None or not self.runs_lava or res["format"] == "dag"
        self.ref_fixed = RefFixed(self.qgraph)
        self.pops = [n.name for n in self.qgraph if n.name in _population_names(self.qgraph)]

    def run_ref_fixed(self, x: torch.Tensor, T: int | None) -> Any:
        """ref-fixed on ``x``, raw: every step for Lava, the aligned records for the report."""
        return self.ref_fixed.run(x, T, record="all", raw=True)

    def run(self, x: torch.Tensor, T: int | None, ref, fixed: Any = None) -> tuple[Any, Any, dict[str, Any]]:
        """``fixed``: this sample's :meth:`run_ref_fixed`, when the chain already has it."""
        from ..exporters.lava.runner import run_in_subprocess
        from .quantization import compare_fixed_float

        # one ref-fixed run per sample: the raw one serves the Lava comparison and the report
        fixed = fixed if fixed is not None else self.run_ref_fixed(x, T)
        quant = compare_fixed_float(self.float_graph, self.qgraph, x, fixed=(fixed, self.ref_fixed.stats))
        if self.network is None:
            return _raw_view(fixed, self.pops), None, quant
        lava = run_in_subprocess(self.network, x, time_steps=T, record="all", raw=True)
        return _raw_view(fixed, self.pops), _raw_view(lava, self.pops), quant

    @staticmethod
    def merge_quant(parts: list[dict[str, Any]]) -> dict[str, Any]:
        entries = sum(p["entries"] for p in parts)
        mismatches = sum(p["mismatches"] for p in parts)
        readouts = [v for p in parts for v in p["outputs"].values() if "max_abs" in v]
        iso = [p["isolated_agreement"] for p in parts if p.get("isolated_agreement") is not None]
        return {
            "spike_agreement": 1 - mismatches / max(1, entries),
            "spikes_compared": entries,
            "mismatches": mismatches,
            "isolated_agreement": sum(iso) / len(iso) if iso else None,
            "readout_max_abs_diff": max((r["max_abs"] for r in readouts), default=0.0),
            "readout_mean_abs_diff": sum(r["mean_abs"] for r in readouts) / max(1, len(readouts)),
            "populations": parts[0]["populations"] if len(parts) == 1 else None,
        }


def _population_names(qgraph: Graph) -> set[str]:
    from ..simulators.ref_fixed import population_names

    return population_names(qgraph, "all")


def _raw_view(trace: Trace, pops: Sequence[str]) -> Trace:
    """The integer view :func:`compare_records` reads: ``s`` holds every integer a population
    produced over all ``T + latency`` steps (spikes, graded values or readout state)."""
    records: dict[str, dict[str, Any]] = {}
    steps = max((len(r[k]) for r in trace.records.values() for k in ("s_raw", "y_raw") if k in r), default=1)
    for name in pops:
        rec = trace.records.get(name)
        if rec is None:
            continue
        if "s_raw" in rec or "y_raw" in rec:
            records[name] = {"s": torch.as_tensor(numpy_int(rec["s_raw" if "s_raw" in rec else "y_raw"]))}
        elif "v" in rec:  # a readout: its integrator state after the last step
            records[name] = {"s": torch.as_tensor(numpy_int(rec["v"]))[None], "t0": steps - 1}
    outputs = {k: torch.as_tensor(numpy_int(v)) for k, v in trace.outputs.items() if "decode" not in k}
    return Trace(outputs, records, trace.time_steps)


def numpy_int(a):
    import numpy as np

    return np.asarray(a.numpy() if hasattr(a, "numpy") else a).astype(np.int64)
