"""Pass flows as data: named, ordered lists of passes (hls4ml's flows), each run once.

A flow lists pass names (:data:`PASSES`) or other flows' names (:data:`FLOWS`). Running one
applies its steps in order, validates after each pass when asked, and appends the flow's name
to ``graph.attrs["flows"]`` (saved with the graph). A flow whose name is already recorded is
not run again: an exporter or report that needs ``simplify`` on a graph that has it checks the
record instead of re-running. Each deployment target names its flow (``flow = "..."`` in
``emsdeploy/profiles/targets/<name>.toml``).

The passes that take parameters read them from one :class:`FlowOptions`, which the exporters
fill from their typed options.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PassError
from ..ir import Graph
from ..targets import Target, load_target
from .align_delays import RELAY_ABOVE, align_delays
from .expand_fanin import expand_fanin
from .flatten_fanin import flatten_fanin
from .fold_affine import fold_affine
from .fold_convs import fold_convs
from .partition import partition
from .quantize import QuantizeOptions, quantize
from .remove_dead import remove_dead

__all__ = ["FLOWS", "PASSES", "FlowOptions", "applied_flows", "flow_steps", "record_flow", "run_flow"]


@dataclass(frozen=True)
class FlowOptions:
    """The parameters of the passes that take any.

    Attributes:
        target: the target (name, TOML path or loaded) whose placements ``partition`` reads.
        custom_to_host: ``partition`` puts custom ops (max-pools of currents, SiLU neurons) on
            the host instead of custom processes.
        quantize: the quantization policy (hardware limits come from its profile).
        relay_above: ``align_delays`` sends delayed conv groups larger than this through relays.
    """

    target: str | Path | Target = "lava"
    custom_to_host: bool = False
    quantize: QuantizeOptions = field(default_factory=QuantizeOptions)
    relay_above: int = RELAY_ABOVE


def _partition(graph: Graph, o: FlowOptions) -> Graph:
    target = o.target if isinstance(o.target, Target) else load_target(o.target)
    return partition(graph, target, custom_to_host=o.custom_to_host)


Pass = Callable[[Graph, FlowOptions], Graph]

PASSES: dict[str, Pass] = {
    "fold_affine": lambda g, o: fold_affine(g),
    "fold_convs": lambda g, o: fold_convs(g),
    "flatten_fanin": lambda g, o: flatten_fanin(g),
    "remove_dead": lambda g, o: remove_dead(g),
    "partition": _partition,
    "expand_fanin": lambda g, o: expand_fanin(g, o.quantize.fold_max_synapses),
    "quantize": lambda g, o: quantize(g, o.quantize),
    "align_delays": lambda g, o: align_delays(g, relay_above=o.relay_above),
}

FLOWS: dict[str, tuple[str, ...]] = {
    # What every backend wants first: BN folded into its conv, chains of convs (SpikeYOLO's
    # RepConv) composed into one, sums as fan-in, nothing dead.
    "simplify": ("fold_affine", "fold_convs", "flatten_fanin", "remove_dead"),
    # Loihi fixed point with Lava's timing (DESIGN.md §8), on a partitioned graph: every
    # population's fan-in as linear terms (and the relay cuts), then quantized, then aligned.
    "loihi": ("expand_fanin", "quantize", "align_delays"),
    # The Lava exporter's flow: placed for FlowOptions.target (chip, custom process or host).
    "lava": ("simplify", "partition", "loihi"),
    # The NIR exporter's flow: placed for the nir target, custom ops cut to the host.
    "nir": ("simplify", "partition"),
}


def applied_flows(graph: Graph) -> list[str]:
    """The flows recorded on ``graph``, in the order they ran (an IR file carries its record:
    anything but a list of names is refused, never guessed at)."""
    flows = graph.attrs.get("flows", [])
    if not isinstance(flows, list) or not all(isinstance(f, str) for f in flows):
        raise PassError(f"graph attrs['flows'] must be a list of flow names, got {str(flows)[:80]!r}")
    return list(flows)


def record_flow(graph: Graph, flow: str) -> Graph:
    """``graph`` (a copy) recording ``flow`` as applied: for a caller that ran the flow's last
    steps itself from a kept intermediate graph (the Lava exporter's netx re-quantization)."""
    if flow not in FLOWS:
        raise PassError(f"unknown flow {flow!r}; flows: {', '.join(FLOWS)}")
    out = graph.copy()
    out.attrs["flows"] = [*applied_flows(graph), flow]
    return out


def flow_steps(flow: str) -> list[str]:
    """The passes of ``flow``, nested flows expanded, in the order they run."""
    steps: list[str] = []
    for step in FLOWS[flow]:
        steps.extend(flow_steps(step) if step in FLOWS else [step])
    return steps


def run_flow(
    graph: Graph,
    flow: str,
    options: FlowOptions | None = None,
    *,
    verify_each: bool = True,
    observe: Callable[[str, Graph], None] | None = None,
) -> Graph:
    """Apply the flow named ``flow`` unless ``graph`` records it; never mutates ``graph``.

    Args:
        options: the parameters of the passes (defaults: :class:`FlowOptions`).
        verify_each: validate the graph after each pass (a failure names the pass).
        observe: called with ``(step, graph)`` after each step (a pass or a nested flow), so a
            caller can keep an intermediate graph (the Lava mapping report reads the
            partitioned float graph) without running anything again.

    Returns:
        The transformed graph, its ``attrs["flows"]`` extended by the flows that ran.
    """
    if flow not in FLOWS:
        raise PassError(f"unknown flow {flow!r}; flows: {', '.join(FLOWS)}")
    if flow in applied_flows(graph):
        return graph
    options = options or FlowOptions()
    original, record = graph, applied_flows(graph)
    for step in FLOWS[flow]:
        if step in FLOWS:
            graph = run_flow(graph, step, options, verify_each=verify_each, observe=observe)
            record = applied_flows(graph)
        else:
            graph = PASSES[step](graph, options)
            if verify_each:
                try:
                    graph.validate()
                except Exception as e:
                    raise PassError(f"after pass {step}: {e}") from e
            if observe is not None:
                observe(step, graph)
    out = graph.copy() if graph is original else graph  # the caller's graph is never written
    out.attrs["flows"] = [*record, flow]
    if observe is not None:
        observe(flow, out)
    return out
