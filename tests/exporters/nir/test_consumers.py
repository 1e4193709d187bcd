"""Our NIR files in other frameworks (docs/nir.md, "Other frameworks").

snnTorch 1.0.0 and Norse 1.1.0 (test extras) import a file we wrote (``nir.read`` then their own
``from NIR`` functions, which build a ``nirtorch`` module) and run it step by step; every LIF
population's spikes must equal ref-float's element by element (float32 on both sides, the
file's own weights: ref-float runs ``import_nir`` of the same file). What a framework cannot
take is checked to fail, or to differ, the way docs/nir.md says.
"""

from __future__ import annotations

import logging

import nir
import numpy as np
import pytest
import torch

from emsdeploy.checkpoint import load_any
from emsdeploy.exporters.nir import export_nir, import_nir
from emsdeploy.ir import LIF, Affine, Conv2d, Graph, Input, Readout
from emsdeploy.simulators import RefFloat
from emsdeploy.tracer import trace
from tests.conftest import shipped_checkpoint

from .conftest import chain_graph

# Norse 1.1.0 builds its module with nirtorch's older loader, which warns that it is deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:nirtorch.load is being deprecated:DeprecationWarning")

SNNTORCH_DT = 1e-4  # snnTorch's NIR import assumes this step length (hard-coded in snntorch.import_nir)


def _need(package: str):
    return pytest.importorskip(package, reason=f"{package} not installed (test extra: pip install -e '.[test]')")


def _plain_chain(tau: float, seed: int = 0) -> Graph:
    """conv -> tdBN -> LIF -> conv -> tdBN -> LIF -> 1x1 head -> readout (no max-pool)."""
    rng = np.random.default_rng(seed)
    g = Graph({"time_steps": 6, "encoding": "direct", "dt": 1, "reset": "hard-zero", "source": "chain"})
    g.add("input", Input((2, 16, 16)))
    g.add("c1", Conv2d(rng.normal(0, 1.2, (4, 2, 3, 3)), rng.normal(0, 0.1, 4), padding=1), ["input"])
    g.add("bn1", Affine(0.6 + 0.4 * rng.random(4), 0.2 * rng.normal(size=4)), ["c1"])
    g.add("lif1", LIF(tau, 0.5), ["bn1"])
    g.add("c2", Conv2d(rng.normal(0, 0.6, (6, 4, 3, 3)), None, stride=2, padding=1), ["lif1"])
    g.add("bn2", Affine(0.6 + 0.4 * rng.random(6), 0.2 * rng.normal(size=6)), ["c2"])
    g.add("lif2", LIF(tau, 0.5), ["bn2"])
    g.add("head", Conv2d(rng.normal(0, 0.4, (5, 6, 1, 1)), rng.normal(0, 0.1, 5)), ["lif2"])
    g.add("readout", Readout(), ["head"])
    g.outputs = ["readout"]
    return g.validate()


def _export(graph: Graph, path, **options):
    export_nir(graph, path, **options)
    return path


def _images(n: int, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def _run_steps(
    net: torch.nn.Module, steps: list[torch.Tensor], lifs: list[str]
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Call a nirtorch module once per step (state carried). Returns each LIF's spikes and the
    graph's output, ``[T, B, ...]``. nirtorch returns an Output's incoming edges as separate
    values, in no fixed order, not their sum (NIR's edge rule): they are summed here."""
    out: dict[str, list[torch.Tensor]] = {n: [] for n in lifs}

    def hook(name):
        return lambda module, args, result: out[name].append(result[0] if isinstance(result, tuple) else result)

    handles = [net.get_submodule(name.replace(".", "_")).register_forward_hook(hook(name)) for name in lifs]
    state, values = None, []
    with torch.no_grad():
        for x in steps:
            result = net(x, state)
            state = result[-1]
            values.append(sum(result[:-1]))
    for h in handles:
        h.remove()
    return {n: torch.stack(v) for n, v in out.items()}, torch.stack(values)


def _reference(path, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """ref-float on the file itself (float32, the precision the frameworks run at): each LIF's
    spikes, and what each host node (readout, cut) reads per step, by the NIR Output's name."""
    back = import_nir(path)
    reads = {f"{n.name}.in": n.inputs[0] for n in back if n.meta.get("cut") or isinstance(n.op, Readout)}
    run = RefFloat(back, torch.float32).run(x, record=[n.name for n in back.of_type(LIF)] + sorted(set(reads.values())))
    return {n.name: run.records[n.name]["s"] for n in back.of_type(LIF)}, {o: run.records[i]["y"] for o, i in reads.items()}


def _assert_same_spikes(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> int:
    fired = 0
    for name, s in theirs.items():
        ref = ours[name]
        assert s.shape == ref.shape, (name, s.shape, ref.shape)
        assert torch.equal(s.to(ref.dtype), ref), f"{name}: {int((s.to(ref.dtype) != ref).sum())} of {ref.numel()} spikes differ"
        fired += int(ref.sum())
    assert 0 < fired < sum(s.numel() for s in ours.values() if s is not None), "nothing (or everything) fired"
    return fired


# --- snnTorch ---------------------------------------------------------------------------


def test_snntorch_runs_the_chain_spike_exact(tmp_path):
    """A LIF chain exported with dt = 1e-4: snnTorch's Leaky(beta = τ, reset to zero) is our LIF."""
    _need("snntorch")
    from snntorch.import_nir import import_from_nir

    g = _plain_chain(tau=0.25)
    path = _export(g, tmp_path / "chain.nir", dt=SNNTORCH_DT)
    net = import_from_nir(nir.read(path))
    x = _images(3, (2, 16, 16))
    theirs, head = _run_steps(net, [x] * g.time_steps, ["lif1", "lif2"])
    spikes, reads = _reference(path, x)
    _assert_same_spikes(spikes, theirs)
    assert torch.equal(head, reads["readout.in"])  # the head conv's output at every step, bit for bit


@pytest.fixture(scope="module")
def shipped_nir(tmp_path_factory):
    """The shipped checkpoint at 64×64 (T = 4), exported for snnTorch (dt = 1e-4)."""
    graph = trace(load_any(shipped_checkpoint()).build().eval(), (64, 64), source="shipped")
    return _export(graph, tmp_path_factory.mktemp("shipped") / "shipped.nir", dt=SNNTORCH_DT), graph.time_steps


def test_snntorch_runs_every_shipped_lif_population_isolated(shipped_nir):
    """The shipped checkpoint: each of its LIF populations, as written in the file, imported by
    snnTorch alone (Input -> LIF -> Output) and fed the current ref-float's LIF received."""
    _need("snntorch")
    from snntorch.import_nir import import_from_nir

    path, _ = shipped_nir
    file, back = nir.read(path), import_nir(path)
    x = _images(1, (3, 64, 64))
    ref = RefFloat(back, torch.float32).run(x, record="all")
    lifs = [n for n in back.of_type(LIF)]
    assert len(lifs) == 21
    for node in lifs:
        current = ref.records[node.inputs[0]]["y"].clone()
        for src in node.inputs[1:]:
            current = current + ref.records[src]["y"]  # the order ref-float sums a fan-in in
        shape = tuple(file.nodes[node.name].v_threshold.shape)
        single = nir.NIRGraph(
            nodes={"input": nir.Input(np.array(shape)), node.name: file.nodes[node.name], "output": nir.Output(np.array(shape))},
            edges=[("input", node.name), (node.name, "output")],
        )
        theirs, _ = _run_steps(import_from_nir(single), list(current), [node.name])
        s = theirs[node.name].to(torch.float32)
        assert torch.equal(s, ref.records[node.name]["s"]), f"{node.name}: {int((s != ref.records[node.name]['s']).sum())} spikes differ"


def test_snntorch_runs_the_shipped_input_cone_spike_exact(shipped_nir):
    """End to end on the shipped file: the part that reads only the network input and ends in one
    Output (nirtorch runs graphs of one Input and one Output), i.e. up to the first cut."""
    _need("snntorch")
    from snntorch.import_nir import import_from_nir

    path, time_steps = shipped_nir
    file = nir.read(path)
    cone, output = _input_cone(file)
    lifs = [k for k, v in cone.nodes.items() if isinstance(v, nir.LIF)]
    assert output == "model.1.pools.in" and lifs
    x = _images(2, (3, 64, 64), seed=1)
    theirs, value = _run_steps(import_from_nir(cone), [x] * time_steps, lifs)
    spikes, reads = _reference(path, x)
    _assert_same_spikes({n: s for n, s in spikes.items() if n in lifs}, theirs)
    assert torch.equal(value, reads[output])  # what the host's first max-pool reads, bit for bit


def _input_cone(g: nir.NIRGraph) -> tuple[nir.NIRGraph, str]:
    """The largest sub-graph that ends in one Output and reads no Input but ``input``."""
    preds: dict[str, set[str]] = {k: set() for k in g.nodes}
    for a, b in g.edges:
        preds[b].add(a)
    best: tuple[int, str, set[str]] | None = None
    for name, node in g.nodes.items():
        if not isinstance(node, nir.Output):
            continue
        seen, stack = {name}, [name]
        while stack:
            for p in preds[stack.pop()]:
                if p not in seen:
                    seen.add(p)
                    stack.append(p)
        if [k for k in seen if isinstance(g.nodes[k], nir.Input)] == ["input"]:
            if best is None or len(seen) > best[0]:
                best = (len(seen), name, seen)
    assert best is not None
    _, output, keep = best
    sub = nir.NIRGraph(
        nodes={k: g.nodes[k] for k in g.nodes if k in keep}, edges=[e for e in g.edges if e[0] in keep and e[1] in keep]
    )
    return sub, output


def test_snntorch_cannot_take_spike_max_pool(tmp_path):
    """A spike max-pool is SumPool2d -> Threshold(0); snnTorch has no Threshold and says so."""
    _need("snntorch")
    from snntorch.import_nir import import_from_nir

    path = _export(chain_graph(), tmp_path / "pool.nir", dt=SNNTORCH_DT)
    with pytest.raises(ValueError, match="Threshold"):
        import_from_nir(nir.read(path))


def test_snntorch_needs_its_step_length(tmp_path):
    """The default file (dt = 1 step) leaks and scales wrongly in snnTorch, which assumes dt = 1e-4."""
    _need("snntorch")
    from snntorch.import_nir import import_from_nir

    g = _plain_chain(tau=0.25)
    path = _export(g, tmp_path / "dt1.nir")
    net = import_from_nir(nir.read(path))
    x = _images(3, (2, 16, 16))
    theirs, _ = _run_steps(net, [x] * g.time_steps, ["lif1"])
    assert theirs["lif1"].sum() == 0 < _reference(path, x)[0]["lif1"].sum()  # threshold scaled by 1e4: silent


# --- Norse ------------------------------------------------------------------------------


def test_norse_runs_an_if_chain_spike_exact(tmp_path):
    """τ = 1 (IF, r = 1): Norse's IAFCell is our neuron without leak, exactly."""
    _need("norse")
    import norse.torch as norse

    g = _plain_chain(tau=1.0, seed=2)
    path = _export(g, tmp_path / "if.nir")
    net = norse.from_nir(nir.read(path), dt=1.0)
    x = _images(3, (2, 16, 16), seed=2)
    theirs, _ = _run_steps(net, [x] * g.time_steps, ["lif1", "lif2"])
    _assert_same_spikes(_reference(path, x)[0], theirs)


def test_norse_drops_the_lif_input_gain(tmp_path, caplog):
    """Norse maps nir.LIF without ``r`` (it warns): its input gain is dt/tau = 1 − τ, not 1."""
    _need("norse")
    import norse.torch as norse

    g = _plain_chain(tau=0.25, seed=2)
    path = _export(g, tmp_path / "lif.nir")
    with caplog.at_level(logging.WARNING):
        net = norse.from_nir(nir.read(path), dt=1.0)
    assert "parameter r" in caplog.text
    x = _images(3, (2, 16, 16), seed=2)
    theirs, _ = _run_steps(net, [x] * g.time_steps, ["lif1"])
    assert theirs["lif1"].sum() < _reference(path, x)[0]["lif1"].sum()  # 0.75·I instead of I: fewer spikes


def test_snntorch_cannot_take_if_neurons(tmp_path):
    """τ = 1 is nir.IF: snnTorch accepts only r = 1 (dt = 1 here) and then builds a Leaky with
    beta 0.9 that hands (spikes, membrane) to the next layer, which cannot take it."""
    _need("snntorch")
    from snntorch.import_nir import import_from_nir

    g = _plain_chain(tau=1.0, seed=2)
    with pytest.raises(AssertionError, match="r != 1"):
        import_from_nir(nir.read(_export(g, tmp_path / "if_short.nir", dt=SNNTORCH_DT)))
    net = import_from_nir(nir.read(_export(g, tmp_path / "if.nir")))
    assert net.get_submodule("lif1").beta == pytest.approx(0.9)
    with pytest.raises(TypeError, match="conv2d"):
        _run_steps(net, [_images(1, (2, 16, 16))] * g.time_steps, ["lif1"])


def test_norse_cannot_take_spike_max_pool(tmp_path):
    """Norse maps no nir.Threshold: its loader leaves the node out and picks one of the nodes
    without a module as the network input, in no fixed order. Either the conv after the pool is
    fed the image (a shape error), or the run silently ends at the pool: the second LIF never
    runs (its spike record stays empty)."""
    _need("norse")
    import norse.torch as norse

    path = _export(chain_graph(), tmp_path / "pool.nir")
    net = norse.from_nir(nir.read(path), dt=1.0, ignore_warnings=True)
    with pytest.raises(RuntimeError, match="channels|non-empty"):
        _run_steps(net, [_images(1, (2, 16, 16))] * 4, ["lif2"])
