"""Small float IR graphs for the Loihi fixed-point tests (quantize, align_delays, ref-fixed, Lava).

:func:`mixed_graph` exercises every lowering rule in a few hundred neurons: a host stem conv,
membrane shortcuts (Add), a concat of currents, max-pools of currents (custom) and of spikes,
nearest upsampling of a current, an unfolded affine, a SiLU neuron, 1×1 and 3×3 convolutions of
currents, two readouts with different hop counts and a Decode.
"""

from __future__ import annotations

import numpy as np

from emsdeploy import ir
from emsdeploy.passes import partition, run_flow
from emsdeploy.passes.align_delays import align_delays
from emsdeploy.passes.quantize import QuantizeOptions, quantize
from emsdeploy.targets import load_target


def _conv(rng, cin: int, cout: int, k: int = 3, s: int = 1, bias: bool = True, gain: float = 1.6) -> ir.Conv2d:
    w = rng.normal(0.0, gain / np.sqrt(cin * k * k), (cout, cin, k, k))
    b = rng.normal(0.15, 0.2, cout) if bias else None
    return ir.Conv2d(w, b, s, k // 2)


def mixed_graph(seed: int = 0, size: int = 16, time_steps: int = 3, encoding: str = "direct") -> ir.Graph:
    rng = np.random.default_rng(seed)
    g = ir.Graph({"time_steps": time_steps, "dt": 1, "reset": "hard-zero"})
    g.add("input", ir.Input((3, size, size), encoding))
    g.add("stem", _conv(rng, 3, 8, 3, 2), ["input"])  # analog pixels: host
    g.add("lif1", ir.LIF(), ["stem"])
    g.add("c1", _conv(rng, 8, 8), ["lif1"])
    g.add("add1", ir.Add(), ["c1", "stem"])  # membrane shortcut
    g.add("lif2", ir.LIF(0.5, 0.5), ["add1"])
    g.add("sc", _conv(rng, 8, 4, 1), ["lif2"])
    g.add("cat", ir.Concat(), ["sc", "add1"])  # concat of currents (12 channels)
    g.add("pool", ir.MaxPool2d(2), ["cat"])  # max-pool of a current: custom
    g.add("lif3", ir.LIF(), ["pool"])
    g.add("c2", _conv(rng, 12, 12), ["lif3"])
    g.add("add2", ir.Add(), ["c2", "pool"])
    g.add("bn", ir.Affine(rng.uniform(0.5, 1.5, 12), rng.normal(0.0, 0.1, 12)), ["add2"])  # unfolded affine
    g.add("lif4", ir.LIF(), ["bn"])
    g.add("spool", ir.MaxPool2d(2), ["lif4"])  # max-pool of spikes: LIF with threshold 0
    g.add("c3", _conv(rng, 12, 8, 1), ["spool"])
    g.add("silu", ir.SiLUNeuron(0.25, True), ["c3"])  # custom
    g.add("lif5", ir.LIF(), ["silu"])
    g.add("c4", _conv(rng, 8, 8, 3), ["lif5"])
    g.add("up", ir.Upsample(2), ["c4"])  # nearest upsampling of a current
    g.add("cat2", ir.Concat(), ["up", "bn"])  # (20, 4, 4)
    g.add("c5", _conv(rng, 20, 12, 3, gain=1.0), ["cat2"])  # 3x3 conv of a current: a sparse composite
    g.add("lif6", ir.LIF(), ["c5"])
    g.add("h0", _conv(rng, 12, 6, 1), ["lif6"])
    g.add("ro0", ir.Readout(), ["h0"])
    g.add("h1", _conv(rng, 20, 6, 1, gain=1.0), ["cat2"])  # 1x1 conv of a current: folded
    g.add("ro1", ir.Readout(), ["h1"])
    g.add("decode", ir.Decode(1, np.array([[[1.0, 1.5]], [[2.0, 2.5]]]), (4.0, 4.0)), ["ro0", "ro1"])
    g.outputs = ["ro0", "ro1", "decode"]
    return g.validate()


def chain_graph(seed: int = 0, size: int = 16, time_steps: int = 3) -> ir.Graph:
    """A sequential network (stem on the host, three conv+LIF layers, a readout): a netx chain."""
    rng = np.random.default_rng(seed)
    g = ir.Graph({"time_steps": time_steps, "dt": 1, "reset": "hard-zero"})
    g.add("input", ir.Input((3, size, size), "direct"))
    g.add("stem", _conv(rng, 3, 8, 3, 2), ["input"])
    g.add("lif1", ir.LIF(), ["stem"])
    g.add("c1", _conv(rng, 8, 8, 3, 1), ["lif1"])
    g.add("lif2", ir.LIF(), ["c1"])
    g.add("c2", _conv(rng, 8, 12, 3, 2), ["lif2"])
    g.add("lif3", ir.LIF(0.5, 0.5), ["c2"])
    g.add("head", _conv(rng, 12, 6, 1), ["lif3"])
    g.add("ro", ir.Readout(), ["head"])
    g.outputs = ["ro"]
    return g.validate()


def simplified(graph: ir.Graph, custom_to_host: bool = False) -> ir.Graph:
    return partition(run_flow(graph, "simplify"), load_target("lava"), custom_to_host=custom_to_host)


def lowered(graph: ir.Graph, custom_to_host: bool = False, relay_above: int | None = None, **options) -> ir.Graph:
    """simplify -> partition -> quantize -> align_delays."""
    q = quantize(simplified(graph, custom_to_host), QuantizeOptions(**options))
    return align_delays(q) if relay_above is None else align_delays(q, relay_above=relay_above)


def integer_graph(seed: int = 0, size: int = 16, time_steps: int = 2, encoding: str = "direct") -> ir.Graph:
    """SpikeYOLO-style integer spikes (I-LIF, D = 4): a host stem, a membrane shortcut (Add of
    currents, so a delayed host term), a max-pool of a current (custom), a nearest upsampling
    of a conv of integer spikes (a Sparse), a sum of paths with different hop counts, a readout."""
    rng = np.random.default_rng(seed)
    g = ir.Graph({"time_steps": time_steps, "dt": 1})
    g.add("input", ir.Input((3, size, size), encoding))
    g.add("stem", _conv(rng, 3, 8, 3, 2, gain=3.0), ["input"])
    g.add("il1", ir.IntegerLIF(), ["stem"])
    g.add("c1", _conv(rng, 8, 8, gain=1.2), ["il1"])
    g.add("add1", ir.Add(), ["c1", "stem"])
    g.add("il2", ir.IntegerLIF(), ["add1"])
    g.add("pool", ir.MaxPool2d(2), ["add1"])
    g.add("il3", ir.IntegerLIF(), ["pool"])
    g.add("c2", _conv(rng, 8, 8, gain=1.2), ["il3"])
    g.add("up", ir.Upsample(2), ["c2"])
    g.add("sc", _conv(rng, 8, 8, 1, gain=1.2), ["il2"])
    g.add("add2", ir.Add(), ["up", "sc"])
    g.add("il4", ir.IntegerLIF(), ["add2"])
    g.add("head", _conv(rng, 8, 6, 1, gain=1.0), ["il4"])
    g.add("ro", ir.Readout(), ["head"])
    g.outputs = ["ro"]
    return g.validate()
