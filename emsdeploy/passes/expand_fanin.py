"""Fold every linear op into the fan-in of the populations that read it (DESIGN.md §8).

On Loihi only populations (LIF, SiLU, max-pool, readout) hold state and only synapse groups
carry values between them, so a population's input current becomes

    I_P = Σ_t  map_t(output of source_t) + bias_P

with one :class:`~emsdeploy.ir.linear.Term` per source population (LIF spikes, a graded
output, or the input image), ``map_t`` the composition of the linear ops on the way and
``bias_P`` the composed biases (per neuron: a conv of a per-channel bias differs at borders).
Concat becomes per-source terms, Add several terms into one ``a_in``, nearest upsampling and
any composition that is not a convolution sparse matrices; a 1×1 convolution of a current folds
into the convolutions that built it. The map algebra is :mod:`emsdeploy.ir.linear`; this pass
walks the graph and decides where folding must stop.

Folding stops at a *relay*: a current-valued node carried by a population of its own, because
its folded form would unroll into a matrix above ``fold_max_synapses`` where a weight-shared
form exists, or because folding a shortcut sum copies its convolutions into too many readers
(:func:`choose_cuts`).

Pre: a simplified graph (``fold_affine``, ``flatten_fanin``, ``remove_dead``). Post: the same
nodes; every population and every relayed node carries ``meta["fanin"]`` (a
:class:`~emsdeploy.ir.linear.Fanin`, float64, one term per source), and
``graph.attrs["fanin"] = {"fold_max_synapses": ..., "relays": {node: why}}`` records that the
expansion ran and what it relayed. :func:`~emsdeploy.passes.quantize.quantize` turns that
into integers; read it back with :func:`fanins` and :func:`relays`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import PassError
from ..ir import (
    LIF,
    Add,
    Affine,
    Concat,
    Conv2d,
    Graph,
    Input,
    IntegerLIF,
    Kind,
    MaxPool2d,
    Readout,
    SiLUNeuron,
    Upsample,
)
from ..ir import linear as lm

__all__ = ["DUPLICATION_MAX", "FOLD_MAX_SYNAPSES", "choose_cuts", "expand_fanin", "fanin_terms", "fanins", "relays"]

FOLD_MAX_SYNAPSES = 1 << 18  # an unrolled group above this goes weight-shared (relays, graded Conv)
DUPLICATION_MAX = 2.0  # folded weights allowed, in model weights, before shortcut sums are relayed


def expand_fanin(graph: Graph, fold_max_synapses: int = FOLD_MAX_SYNAPSES) -> Graph:
    """Record every population's fan-in as terms (see the module docstring); never mutates ``graph``."""
    cuts, chains = _choose_cuts(graph, fold_max_synapses)
    g = graph.copy()
    for name, ch in chains.items():
        g.replace(name, fanin=lm.Fanin(lm.merge_terms([(t.source, t.chain, t.path) for t in ch.terms]), ch.bias))
    g.attrs["fanin"] = {"fold_max_synapses": int(fold_max_synapses), "relays": dict(cuts)}
    return g


def fanins(graph: Graph) -> dict[str, lm.Fanin]:
    """The fan-in :func:`expand_fanin` recorded, population (or relayed node) -> terms, in graph order."""
    if "fanin" not in graph.attrs:
        raise PassError("the graph has no fan-in expansion; run expand_fanin first")
    return {n.name: n.meta["fanin"] for n in graph if "fanin" in n.meta}


def relays(graph: Graph) -> dict[str, str]:
    """The nodes :func:`expand_fanin` relayed (node -> why), in the order it chose them."""
    if "fanin" not in graph.attrs:
        raise PassError("the graph has no fan-in expansion; run expand_fanin first")
    return dict(graph.attrs["fanin"]["relays"])


def fanin_terms(graph: Graph, cuts: frozenset[str] | set[str] = frozenset()) -> dict[str, lm.Fanin]:
    """The input current of every population (LIF, SiLU, Readout, MaxPool2d) and every node in
    ``cuts`` as terms, one per source, without annotating the graph (what the pass records)."""
    return {
        name: lm.Fanin(lm.merge_terms([(t.source, t.chain, t.path) for t in ch.terms]), ch.bias)
        for name, ch in _expand(graph, frozenset(cuts)).items()
    }


# ---- the walk: terms as chains of maps ----------------------------------------------------------


@dataclass
class _ChainTerm:
    """A term before it is collapsed: maps outermost first, ``hops`` naming each map's IR node."""

    source: str
    chain: lm.Chain
    path: tuple[str, ...] = ()
    hops: tuple[str, ...] = ()


@dataclass
class _Chains:
    terms: list[_ChainTerm] = field(default_factory=list)
    bias: lm.Array | None = None


def _map_terms(value: _Chains, m: lm.LinearMap, node: str) -> list[_ChainTerm]:
    # Maps stay chains (outermost first) until the population collapses them, so products
    # are formed from the destination side, where the matrices have the fewest rows.
    return [_ChainTerm(t.source, (m, *t.chain), (*t.path, node), (node, *t.hops)) for t in value.terms]


def _channel_bias(values: Any, shape: tuple[int, ...]) -> lm.Array:
    """A per-channel bias as a per-neuron ``(C, H, W)`` array: a read-only broadcast view (no
    memory per neuron; most populations' bias is just this, at 640×640 hundreds of MB)."""
    return np.broadcast_to(values.astype(np.float64).reshape(-1, 1, 1), shape)


def _expand(graph: Graph, cuts: frozenset[str], biases: bool = True) -> dict[str, _Chains]:
    """Unmerged chains into every population and cut node (what :func:`choose_cuts` inspects).

    Sources are the Input and the populations with a per-step output (everything but Readout).
    A max-pool of spikes gets the all-ones window synapse (it becomes a LIF with threshold 0);
    a max-pool of currents gets the current itself (it becomes a custom or host population).
    A cut node is a source for the nodes that read it and gets its own entry. ``biases=False``
    leaves every bias None: the search for cuts reads only the maps, and the per-neuron float64
    biases are most of the work and memory at paper sizes."""
    memo: dict[str, _Chains] = {}
    # a node's entry is dropped once every node reading it is built, so that the per-neuron
    # biases of the whole graph are never held at once (only those still to be read)
    unread: dict[str, int] = {}
    for node in graph:
        for i in set(node.inputs):
            unread[i] = unread.get(i, 0) + 1

    def built(name: str) -> None:
        for i in set(graph[name].inputs):
            unread[i] -= 1
            if unread[i] == 0:
                memo.pop(i, None)  # read again (never, by the count) it would be rebuilt: same value

    def value(name: str) -> _Chains:
        if name in memo:
            return memo[name]
        op, shape = graph[name].op, graph.shape(name)
        if isinstance(op, (Input, LIF, IntegerLIF, SiLUNeuron, MaxPool2d)) or name in cuts:
            out = _Chains([_ChainTerm(name, (lm.identity(shape),), (), (name,))], None)
        else:
            out = own(name)
            built(name)
        memo[name] = out
        return out

    def own(name: str) -> _Chains:
        node = graph[name]
        op, shape = node.op, graph.shape(name)
        bias: lm.Array | None = None
        if isinstance(op, Conv2d):
            inner = value(node.inputs[0])
            m: lm.LinearMap = lm.conv_map(op, graph.shape(node.inputs[0]))
            if biases:
                bias = lm.bias_through(m, inner.bias)
                if op.bias is not None:
                    bias = lm.add_bias(bias, _channel_bias(op.bias, shape))
            return _Chains(_map_terms(inner, m, name), bias)
        if isinstance(op, Affine):
            inner = value(node.inputs[0])
            m = lm.pointwise(np.diag(op.scale.astype(np.float64)), graph.shape(node.inputs[0]))
            if biases:
                bias = lm.add_bias(lm.bias_through(m, inner.bias), _channel_bias(op.shift, shape))
            return _Chains(_map_terms(inner, m, name), bias)
        if isinstance(op, Add):
            terms: list[_ChainTerm] = []
            for i in node.inputs:
                v = value(i)
                terms += [_ChainTerm(t.source, t.chain, (*t.path, name), t.hops) for t in v.terms]
                bias = lm.add_bias(bias, v.bias)
            return _Chains(terms, bias)
        if isinstance(op, Concat):
            terms, parts, offset = [], [], 0
            total = shape[0]
            for i in node.inputs:
                c_in = graph.shape(i)[0]
                embed = np.zeros((total, c_in))
                embed[offset : offset + c_in] = np.eye(c_in)
                v = value(i)
                terms += _map_terms(v, lm.pointwise(embed, graph.shape(i)), name)
                parts.append(v.bias)
                offset += c_in
            if any(b is not None for b in parts):
                bias = np.concatenate(
                    [np.zeros(graph.shape(i)) if b is None else b for i, b in zip(node.inputs, parts)]
                )
            return _Chains(terms, bias)
        if isinstance(op, Upsample):
            inner = value(node.inputs[0])
            m = lm.upsample_map(op.scale, graph.shape(node.inputs[0]))
            return _Chains(_map_terms(inner, m, name), lm.bias_through(m, inner.bias))
        raise PassError(
            f"{name} ({op.type_name}): no linear lowering to synapse groups; "
            "linear ops: Conv2d, Affine, Add, Concat, Upsample; populations: LIF, SiLUNeuron, MaxPool2d, Readout"
        )

    result: dict[str, _Chains] = {}
    for node in graph:
        op = node.op
        if node.name in cuts:
            result[node.name] = own(node.name)
            built(node.name)
        elif isinstance(op, (LIF, IntegerLIF, SiLUNeuron, Readout)):
            terms: list[_ChainTerm] = []
            bias = None
            for i in node.inputs:
                v = value(i)
                terms += v.terms
                bias = lm.add_bias(bias, v.bias)
            result[node.name] = _Chains(terms, bias)
            built(node.name)
        elif isinstance(op, MaxPool2d):
            src = node.inputs[0]
            v = value(src)
            if not op.plain and graph.kind(src) == Kind.SPIKE:  # a pool of currents is a custom population
                raise PassError(
                    f"{node.name} (MaxPool2d kernel {op.kernel}, stride {op.stride}, padding {op.padding}): the Loihi "
                    "fan-in maps only disjoint windows (stride = kernel, no padding)"
                )
            if graph.kind(src) == Kind.SPIKE:
                w = lm.window_map(op.kernel, graph.shape(src))  # stride k, no padding: floor(H/k) like the pool
                result[node.name] = _Chains(_map_terms(v, w, node.name), None)
            else:
                result[node.name] = _Chains(list(v.terms), v.bias)
            built(node.name)
    # value and own reach each other through their closures: a reference cycle that would keep
    # memo alive until the cyclic collector happens to run
    memo.clear()
    return result


# ---- where folding stops: relays -----------------------------------------------------------------


def _cut_for(graph: Graph, term: _ChainTerm, limit: int) -> str | None:
    """The node to carry by a relay so that ``term``'s chain stops unrolling: the value read by
    the innermost op at which the chain stops being a convolution and grows past ``limit``."""
    chain = term.chain  # outermost first
    for j in range(len(chain) - 1, -1, -1):
        form, nnz = lm.chain_cost(chain[j:])
        if form == "sparse" and nnz > limit:
            breaking = term.hops[j]
            k = term.path.index(breaking) if breaking in term.path else -1
            if k <= 0:
                return None  # the op reads the source itself: nothing to cut
            cut = term.path[k - 1]
            if isinstance(graph[cut].op, Concat) and k >= 2:
                cut = term.path[k - 2]  # relay the concatenated part, not the whole concat
            return cut
    return None


def choose_cuts(graph: Graph, limit: int) -> dict[str, str]:
    """Current-valued nodes to carry by relays (name -> why) so that no synapse group unrolls
    into a matrix of more than ``limit`` synapses where a weight-shared form exists.

    Greedy: expand the fan-in without building matrices, take every source whose merged group
    would be a matrix above ``limit``, cut the value its chain unrolls at (:func:`_cut_for`),
    repeat. The old folding stays wherever it is a convolution or a matrix within ``limit``.
    Then, while folding copies the convolutions of shortcut sums into their readers so often
    that the chip would hold more than ``DUPLICATION_MAX`` times the model's weights, relay the
    currents whose copies cost most (:func:`_duplication_cuts`)."""
    return _choose_cuts(graph, limit)[0]


def _choose_cuts(graph: Graph, limit: int) -> tuple[dict[str, str], dict[str, _Chains]]:
    """:func:`choose_cuts` and the chains of the last expansion (those of the cuts returned)."""
    cuts: dict[str, str] = {}
    model_weights = sum(int(n.op.weight.size) for n in graph if isinstance(n.op, Conv2d))
    for _ in range(len(graph)):
        chains = _expand(graph, frozenset(cuts), biases=False)
        new: dict[str, str] = {}
        for pop, fi in chains.items():
            by_source: dict[str, list[_ChainTerm]] = {}
            for t in fi.terms:
                by_source.setdefault(t.source, []).append(t)
            for src, terms in by_source.items():
                form, nnz = lm.merged_cost([t.chain for t in terms])
                if form != "sparse" or nnz <= limit:
                    continue
                for t in sorted(terms, key=lambda t: -lm.chain_cost(t.chain)[1]):
                    cut = _cut_for(graph, t, limit)
                    if cut is not None and cut not in cuts:
                        new.setdefault(
                            cut, f"folded, {pop}<-{src} would be a {nnz}-synapse matrix (> {limit}); relayed at {cut}"
                        )
                        break
        if not new:
            folded = sum(lm.chain_weights(t.chain) for fi in chains.values() for t in fi.terms)
            if folded <= DUPLICATION_MAX * model_weights:
                break
            new = _duplication_cuts(graph, chains, cuts, limit)
            if not new:
                break
        cuts.update(new)
    return cuts, _expand(graph, frozenset(cuts))


def _duplication_cuts(graph: Graph, chains: dict[str, _Chains], cuts: dict[str, str], limit: int) -> dict[str, str]:
    """Currents whose folding copies the most weights: folding a shortcut sum into every
    population that reads it (directly or through later sums) copies the convolutions that
    built it into each, so weights grow with depth (quadratically along a ResNet stage). A relay
    holds them once; its readers get one small group each. Returns the cuts (node -> why) that
    save more than ``limit`` weights each, largest first, at most one per folded term."""
    per: dict[str, dict[str, int]] = {}
    users: dict[str, set[int]] = {}
    tid = 0
    for pop, fi in chains.items():
        for t in fi.terms:
            tid += 1
            w = lm.chain_weights(t.chain)
            for v in set(t.path):
                if v in cuts or v == pop or graph.kind(v) != Kind.CURRENT:
                    continue
                if isinstance(graph[v].op, (Concat, Upsample)):
                    continue  # relays of these go through choose_cuts' unrolling rule
                per.setdefault(v, {}).setdefault(pop, 0)
                per[v][pop] += w
                users.setdefault(v, set()).add(tid)
    savings = []
    for v, readers in per.items():
        if len(readers) < 2:
            continue
        c = graph.shape(v)
        saving = sum(readers.values()) - max(readers.values()) - int(np.prod(c)) - len(readers) * c[0] * c[0]
        if saving > limit:
            savings.append((saving, v))
    chosen: dict[str, str] = {}
    taken: set[int] = set()
    for saving, v in sorted(savings, reverse=True):
        if users[v] & taken:
            continue  # its terms change once the bigger cut is made: decide next round
        taken |= users[v]
        chosen[v] = (
            f"duplicated, {len(per[v])} populations would each hold a copy of the convolutions that "
            f"build {v} (about {int(saving)} weights saved by one relay)"
        )
    return chosen
