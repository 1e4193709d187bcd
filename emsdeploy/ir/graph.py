"""The spiking graph IR: a DAG of named nodes, each one op applied to earlier nodes' values.

Every value is implicitly ``[T, B, *shape]`` (time-first, batch second) except the outputs of
``timeless`` ops (readouts), which are ``[B, *shape]``. ``T`` is a run-time argument; the graph
records the default ``time_steps`` its source model was trained with.
"""

from __future__ import annotations

import copy
import graphlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from ..errors import IRValidationError
from .kinds import Kind
from .ops import OPS, Input, Op, Shape

__all__ = ["Graph", "Node"]


@dataclass
class Node:
    """One IR node. ``name`` is the torch module path it came from (plus a suffix for functions);
    ``meta`` keeps provenance (module path, class) and pass annotations (e.g. ``partition``)."""

    name: str
    op: Op
    inputs: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.inputs = tuple(self.inputs)


class Graph:
    """A validated, topologically ordered DAG of :class:`Node` s.

    Build it with :meth:`add` (inputs must already exist, so insertion order is a topological
    order). Passes never mutate their input graph: they :meth:`copy` it first.

    Attributes:
        outputs: names of the nodes whose values a run returns.
        attrs: graph-level facts: ``time_steps`` (default T), ``encoding``, ``names`` (classes),
            ``dt`` (one step, dimensionless in EMS-YOLO), ``reset`` ("hard-zero"), ``source``.
    """

    def __init__(self, attrs: Mapping[str, Any] | None = None) -> None:
        self._nodes: dict[str, Node] = {}
        self.outputs: list[str] = []
        self.attrs: dict[str, Any] = dict(attrs or {})
        self._cache: dict[str, tuple[Shape, Kind]] | None = None

    # --- construction -------------------------------------------------------------------
    def add(self, name: str, op: Op, inputs: Iterable[str] = (), meta: Mapping[str, Any] | None = None) -> str:
        if name in self._nodes:
            raise IRValidationError(f"{name}: a node with this name already exists")
        if type(op).__name__ not in OPS:
            raise IRValidationError(f"{name}: {type(op).__name__} is not an IR op; ops: {', '.join(OPS)}")
        inputs = tuple(inputs)
        for src in inputs:
            if src not in self._nodes:
                raise IRValidationError(f"{name}: input {src!r} is not (yet) a node of the graph")
        self._nodes[name] = Node(name, op, inputs, dict(meta or {}))
        self._cache = None
        return name

    def unique_name(self, base: str) -> str:
        if base not in self._nodes:
            return base
        i = 1
        while f"{base}_{i}" in self._nodes:
            i += 1
        return f"{base}_{i}"

    def copy(self) -> Graph:
        """A copy whose nodes can be replaced freely; ops (immutable values) are shared."""
        g = Graph(copy.deepcopy(self.attrs))
        g._nodes = {n.name: Node(n.name, n.op, n.inputs, copy.deepcopy(n.meta)) for n in self._nodes.values()}
        g.outputs = list(self.outputs)
        return g

    def replace(self, name: str, op: Op | None = None, inputs: Iterable[str] | None = None, **meta: Any) -> None:
        """Replace a node's op and/or inputs in place (for passes working on their own copy)."""
        node = self[name]
        if op is not None:
            node.op = op
        if inputs is not None:
            node.inputs = tuple(inputs)
        node.meta.update(meta)
        self._cache = None

    def remove(self, names: Iterable[str]) -> None:
        names = set(names)
        for n in self._nodes.values():
            if n.name not in names and names & set(n.inputs):
                raise IRValidationError(f"cannot remove {sorted(names & set(n.inputs))}: {n.name} still reads them")
        for name in names:
            self._nodes.pop(name, None)
        self.outputs = [o for o in self.outputs if o not in names]
        self._cache = None

    def reorder(self) -> None:
        """Restore topological insertion order after inputs were rewired (stable otherwise)."""
        order = {n: i for i, n in enumerate(self._nodes)}
        sorter = graphlib.TopologicalSorter({n.name: set(n.inputs) for n in self._nodes.values()})
        try:
            sorter.prepare()
        except graphlib.CycleError as e:
            raise IRValidationError(f"the graph has a cycle through {e.args[1]}") from None
        result: list[str] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready(), key=order.__getitem__)
            result += ready
            sorter.done(*ready)
        self._nodes = {n: self._nodes[n] for n in result}
        self._cache = None

    # --- queries ------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Node:
        try:
            return self._nodes[name]
        except KeyError:
            raise IRValidationError(f"no node named {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def __iter__(self) -> Iterator[Node]:
        """Nodes in topological order."""
        return iter(list(self._nodes.values()))

    def __len__(self) -> int:
        return len(self._nodes)

    @property
    def nodes(self) -> list[Node]:
        return list(self._nodes.values())

    def names(self) -> list[str]:
        return list(self._nodes)

    def input_node(self) -> Node:
        inputs = [n for n in self._nodes.values() if isinstance(n.op, Input)]
        if len(inputs) != 1:
            raise IRValidationError(f"expected exactly one Input node, found {len(inputs)}")
        return inputs[0]

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self._nodes.values() if name in n.inputs]

    def users(self) -> dict[str, list[str]]:
        """Map node name -> names of the nodes that read it (one pass over the graph)."""
        out: dict[str, list[str]] = {n: [] for n in self._nodes}
        for n in self._nodes.values():
            for src in dict.fromkeys(n.inputs):
                out[src].append(n.name)
        return out

    def of_type(self, *types: type[Op]) -> list[Node]:
        return [n for n in self._nodes.values() if isinstance(n.op, types)]

    def shape(self, name: str) -> Shape:
        return self._infer()[name][0]

    def kind(self, name: str) -> Kind:
        return self._infer()[name][1]

    @property
    def time_steps(self) -> int:
        return int(self.attrs.get("time_steps", 1))

    @property
    def encoding(self) -> str:
        return cast(Input, self.input_node().op).encoding  # input_node() found it by isinstance

    def _infer(self) -> dict[str, tuple[Shape, Kind]]:
        if self._cache is None:
            info: dict[str, tuple[Shape, Kind]] = {}
            for n in self._nodes.values():
                for src in n.inputs:
                    if src not in info:
                        raise IRValidationError(f"{n.name}: input {src!r} is not defined before it (not topological)")
                shapes = [info[s][0] for s in n.inputs]
                kinds = [info[s][1] for s in n.inputs]
                for s in n.inputs:
                    if self._nodes[s].op.timeless and not n.op.timeless:
                        raise IRValidationError(f"{n.name}: reads {s}, which has no time axis, but runs every step")
                try:
                    n.op.check_inputs(shapes, kinds)
                    info[n.name] = (tuple(n.op.output_shape(shapes)), n.op.output_kind(kinds))
                except IRValidationError as e:
                    raise IRValidationError(f"{n.name} ({n.op.type_name}): {e}") from None
            self._cache = info
        return self._cache

    def validate(self) -> Graph:
        """Check the invariants of DESIGN.md §6; raise :class:`IRValidationError` naming the node."""
        self._cache = None
        seen: set[str] = set()
        for n in self._nodes.values():
            for src in n.inputs:
                if src not in seen:
                    raise IRValidationError(f"{n.name}: input {src!r} does not come earlier (cycle or bad order)")
            seen.add(n.name)
        self.input_node()
        self._infer()
        if not self.outputs:
            raise IRValidationError("the graph has no outputs")
        for o in self.outputs:
            if o not in self._nodes:
                raise IRValidationError(f"output {o!r} is not a node")
        t = self.attrs.get("time_steps")
        if t is not None and (not isinstance(t, int) or t < 1):
            raise IRValidationError(f"graph attribute time_steps must be a positive integer, got {t!r}")
        return self

    def same_as(self, other: Graph) -> bool:
        """Structural equality: same nodes in the same order, ops, inputs, meta, outputs, attrs."""
        if self.names() != other.names() or self.outputs != other.outputs or self.attrs != other.attrs:
            return False
        for a, b in zip(self._nodes.values(), other._nodes.values()):
            if a.inputs != b.inputs or a.meta != b.meta or not a.op.same_as(b.op):
                return False
        return True

    def summary(self) -> str:
        lines = [f"Graph: {len(self)} nodes, outputs {self.outputs}"]
        for n in self._nodes.values():
            lines.append(
                f"  {n.name:<40} {n.op.type_name:<10} {self.kind(n.name).value:<7} {self.shape(n.name)} <- {list(n.inputs)}"
            )
        return "\n".join(lines)
