"""The Python face of the CLI: ``m = emsdeploy.load(path)``, then what the commands do.

Each method returns the object the matching command prints: ``m.summary()`` is
``inspect --json``, ``m.energy()`` is ``energy --json``, ``m.verify()`` is ``verify --json``
(as ``.to_json()`` / the dict itself), and each prints as the command's table in a REPL.
The facade holds no logic of its own beyond choosing defaults as the CLI does, so the two
cannot drift (a test compares them).
"""

from __future__ import annotations

import importlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError

__all__ = ["EnergyReport", "Export", "FitResult", "Model", "Summary", "VerifyResult", "load"]

EXPORT_TARGETS = ("lava", "onnx", "nir")  # = emsdeploy.cli.cmd_export.TARGETS


def _render(draw) -> str:
    """What ``draw(console)`` prints, as text (100 columns, no colour)."""
    from rich.console import Console

    buf = io.StringIO()
    draw(Console(file=buf, width=100, color_system=None, force_terminal=False))
    return buf.getvalue().rstrip()


class Summary(dict):
    """``inspect --json``: ``{"layers": [...], "totals": {...}}``; prints as a per-layer table."""

    def __repr__(self) -> str:
        from .tables import count_text, name_table

        rows, tot = self["layers"], self["totals"]
        table = name_table(
            f"{tot['nodes']} nodes, T = {tot['time_steps']}, {tot['encoding']} encoding",
            [(c, "right" if c in ("params", "neurons") else "left") for c in ("node", "op", "kind", "params", "neurons", "placement")],
            names=[r["node"] for r in rows],
            name_columns=["node"],
        )  # fmt: skip
        for r in rows:
            table.add_row(
                r["node"], r["op"], r["kind"], count_text(r["parameters"]),
                count_text(r["neurons"]) if r["neurons"] else "", r["partition"] or "",
            )  # fmt: skip
        return _render(lambda c: c.print(table))


class EnergyReport(dict):
    """``energy --json``; prints as the ``energy`` table."""

    def __repr__(self) -> str:
        from .energy.render import render_table

        return _render(lambda c: render_table(dict(self), c))


class FitResult(dict):
    """``fit --json``: ``{"chip", "totals", "layers", "errors"}``; prints as the ``fit`` table,
    with the energy and latency estimate when the traffic was counted. ``.ok``: every layer maps."""

    def __init__(self, report: Any, estimate: Any) -> None:
        from .exporters.lava.fit import fit_json

        super().__init__(fit_json(report))
        self.report, self.estimate = report, estimate

    @property
    def ok(self) -> bool:
        return not self["errors"]

    def __repr__(self) -> str:
        from .exporters.lava.fit import format_fit

        return format_fit(self.report, self.estimate)


@dataclass
class VerifyResult:
    """``verify``: ``ok``, ``to_json()`` (= ``verify --json``), and the report as its table."""

    report: Any  # emsdeploy.verify.VerifyReport
    inputs: dict

    @property
    def ok(self) -> bool:
        return bool(self.report.ok)

    def to_json(self) -> dict:
        return {**self.report.to_json(), "input": self.inputs}

    def __repr__(self) -> str:
        from .verify import render_report

        return _render(lambda c: render_report(self.report, self.inputs, c, False))


@dataclass
class Export:
    """What ``export`` wrote: the target, the path, and the lines the command prints."""

    target: str
    path: Path
    lines: list[str] = field(default_factory=list)

    def load(self) -> Any:
        """The exported network: a Lava network, an onnxruntime stepwise session or a NIR graph."""
        if self.target == "lava":
            from .exporters.lava import load

            return load(self.path)
        if self.target == "onnx":
            from .exporters.onnx import StepwiseSession

            return StepwiseSession(self.path)
        from .exporters.nir.importer import read_nir

        return read_nir(self.path)

    def __repr__(self) -> str:
        return "\n".join([f"{self.target} export at {self.path}", *self.lines])


class Model:
    """A checkpoint (ours or official) or an ``.emsir`` file, traced as the CLI traces it."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        input_size: int | tuple[int, int] | str | None = None,
        time_steps: int | None = None,
        encoding: str | None = None,
    ) -> None:
        from .pipeline import load_graph, parse_size, source_or_default

        self.path = source_or_default(path)
        size = parse_size(str(input_size)) if isinstance(input_size, (int, str)) else input_size
        self.time_steps = time_steps
        self.loaded = load_graph(self.path, (int(size[0]), int(size[1])) if size else None, time_steps, encoding)
        self.graph = self.loaded.graph
        self.checkpoint = self.loaded.checkpoint

    @property
    def meta(self) -> dict | None:
        return self.checkpoint.meta if self.checkpoint is not None else None

    def summary(self, target: str = "lava", raw: bool = False, custom_to_host: bool = False) -> Summary:
        """The per-layer table of ``inspect`` (deployed form unless ``raw``)."""
        from .inspection import layer_rows, totals
        from .passes import partition, run_flow
        from .targets import load_target

        graph = self.graph if raw else run_flow(self.graph, "simplify")
        graph = partition(graph, load_target(target), custom_to_host)
        rows = layer_rows(graph)
        tot = totals(graph, rows)
        if self.meta is not None and self.meta.get("gen1_mode") is not None:
            tot["gen1_mode"] = self.meta["gen1_mode"]
        return Summary(layers=rows, totals=tot)

    def export(self, target: str, path: str | Path, **options: Any) -> Export:
        """Write ``target`` (lava, onnx or nir) to ``path``; ``options`` as the CLI flags
        (``spikes``, ``custom_to_host``, ``allow_clip``)."""
        if target not in EXPORT_TARGETS:
            raise InputError(f"target {target!r} unknown; choose from {', '.join(EXPORT_TARGETS)}")
        from .exporters import export_options

        exporter = importlib.import_module(f"emsdeploy.exporters.{target}")
        lines = exporter.export_cli(self.graph, Path(path), export_options(target, **options))
        return Export(target, Path(path), list(lines))

    def _inputs(self, input: str | Path | None, limit: int | None, default: int, gen1_mode: str | None):
        from .inputs import choose_inputs

        return choose_inputs(input, self.graph, self.meta, limit, default, self.time_steps, gen1_mode)

    def energy(
        self,
        profile: str = "45nm-fp32",
        input: str | Path | None = None,
        limit: int | None = None,
        gen1_mode: str | None = None,
        integer_mode: str = "spike-driven",
    ) -> EnergyReport:
        """Exact synaptic operations and energy per frame, as ``energy --json``."""
        from .energy import counted_graph, energy_report, load_profile, measure
        from .energy.measure import DEFAULT_SAMPLES

        prof = load_profile(profile)
        inputs = self._inputs(input, limit, DEFAULT_SAMPLES, gen1_mode)
        graph = counted_graph(self.graph)
        counts = measure(graph, inputs, lambda: None)
        node = self.graph.input_node()
        model = {
            "source": str(self.path),
            "input_shape": list(node.op.shape),  # type: ignore[attr-defined]
            "encoding": node.op.encoding,  # type: ignore[attr-defined]
            "nodes": len(self.graph),
        }
        return EnergyReport(energy_report(counts, prof, graph, integer_mode, model=model, input=inputs.to_dict()))

    def verify(
        self,
        targets: str | tuple[str, ...] = ("ref", "onnx", "lava"),
        input: str | Path | None = None,
        limit: int | None = None,
        margin: float = 1e-5,
        gen1_mode: str | None = None,
    ) -> VerifyResult:
        """Spike equivalence across backends, as ``verify --json`` (``.ok`` says whether it holds)."""
        from .cli.cmd_verify import DEFAULT_SAMPLES
        from .verify import VerifyOptions
        from .verify import verify as run_verify

        chosen = tuple(t.strip() for t in targets.split(",")) if isinstance(targets, str) else tuple(targets)
        inputs = self._inputs(input, limit, DEFAULT_SAMPLES, gen1_mode)
        model = self.loaded.model  # the traced model: built once
        options = VerifyOptions(targets=chosen, margin=margin, time_steps=self.time_steps)
        samples = ((f"sample {i}", x) for i, x in enumerate(inputs.samples()))
        report = run_verify(self.graph, samples, model, options, str(self.path), lambda msg: None)
        return VerifyResult(report, inputs.to_dict())

    def fit(self, chip: str | Path = "loihi1", traffic: bool = True, custom_to_host: bool = False) -> FitResult:
        """Cores, chips, board and the binding limit per layer on Loihi, as ``fit --json``
        (``chip``: loihi1, loihi2 or a chip TOML file; ``traffic``: count the spikes of one
        ref-fixed inference for traffic, energy and latency). DRC errors are in ``["errors"]``."""
        from .cli.cmd_fit import fit_loaded
        from .exporters.lava.fit import load_chip

        report, estimate = fit_loaded(self.loaded, load_chip(chip), traffic, custom_to_host)
        return FitResult(report, estimate)

    def __repr__(self) -> str:
        node = self.graph.input_node()
        return (
            f"emsdeploy.Model({self.path}: {len(self.graph)} nodes, input {tuple(node.op.shape)}, "  # type: ignore[attr-defined]
            f"{self.graph.encoding} encoding, T = {self.graph.time_steps})"
        )


def load(
    path: str | Path | None = None,
    *,
    input_size: int | tuple[int, int] | str | None = None,
    time_steps: int | None = None,
    encoding: str | None = None,
) -> Model:
    """Load a checkpoint (ours or official) or an ``.emsir`` file, as every command does.

    ``path`` defaults to the shipped checkpoint; ``input_size`` is H, ``(H, W)`` or ``"HxW"``.
    """
    return Model(path, input_size=input_size, time_steps=time_steps, encoding=encoding)
