"""netx format for chain-shaped networks (DESIGN.md §8: netx builds sequential chains only).

A quantized graph is a *netx chain* when its populations form one line P0 → P1 → … → Pn:
P0 is fed only by the host (its term reads the input) and every Pi (i ≥ 1) only by one
undelayed ``SynConv`` from P(i−1); all are LIFs except possibly a final readout; there are no
custom or host populations; every bias uses exponent 6 (netx hard-codes ``bias_exp = 6``).

The file is what ``lava.lib.dl.netx.hdf5.Network`` reads (layout of lava-dl's slayer export):
``layer/0`` an ``input`` layer with the neuron of P0 (CUBA: ``iDecay = du + 1``, ``vDecay = dv``,
``vThMant = vth``), ``layer/i`` ``conv`` layers (PyTorch-layout integer weights ``m·2**e``,
``bias`` per channel, or per neuron in (W, H, C) order). netx's input block has no bias and no
synaptic input, so the host sends P0's current *plus P0's bias* (bias_exp = 6: a bias of b adds
``b << 6`` to v, exactly what an input of b adds) straight into ``in_layer.neuron.a_in``, as the
netx PilotNet tutorial does. ``Network(reset_interval = T + n, reset_offset = 0)`` resets layer i
at time step i + 1 = its latency + 1, as the DAG export does.

A sidecar ``host.lava.h5`` (the emsdeploy.lava-dag format, holding only the host source, the
readout scale and the decoding) lets :func:`~emsdeploy.exporters.lava.load` run it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from emsdeploy.errors import ExportError
from emsdeploy.fileio import atomic_write
from emsdeploy.ir import DECODES, Graph
from emsdeploy.ir.ops.loihi import HOST_TERMS, POPULATIONS, LoihiLIF, LoihiReadout, SynConv
from emsdeploy.ir.runtime import RecordSpec, select_records

from ._require import require_lava
from .dag import LavaDag, ProcSpec
from .network import LavaNetwork, attach_recorder

__all__ = ["NETX_BIAS_EXP", "NetxNetwork", "chain_populations", "is_chain", "write_netx"]

NETX_BIAS_EXP = 6  # lava-dl netx/hdf5.py get_neuron_params: 'bias_exp': 6


def chain_populations(graph: Graph, check_bias: bool = True) -> tuple[list[str], str]:
    """The populations in chain order, or ``([], reason)`` when the graph is not a netx chain.
    ``check_bias=False`` ignores what a re-quantization can fix: the bias exponent, and a readout's
    split groups (``<group>@lo``, ``QuantizeOptions.readout_split``: netx has one per layer)."""
    pops = [n for n in graph if isinstance(n.op, POPULATIONS)]
    if not pops:
        return [], "no populations"
    names = [n.name for n in pops]
    for i, n in enumerate(pops):
        op = n.op
        if not isinstance(op, (LoihiLIF, LoihiReadout)):
            return [], f"{n.name} is a {op.type_name} (netx has standard neurons only)"
        if isinstance(op, LoihiReadout) and i != len(pops) - 1:
            return [], f"readout {n.name} is not the last layer"
        if check_bias and op.bias_exp_u3 != NETX_BIAS_EXP:
            return (
                [],
                f"{n.name} has bias_exp {op.bias_exp_u3}; netx hard-codes {NETX_BIAS_EXP} (quantize with bias_exp=6)",
            )
        inputs = [i for i in n.inputs if check_bias or "split_of" not in graph[i].meta]
        if len(inputs) != 1:
            return [], f"{n.name} has {len(inputs)} synapse groups; a chain layer has one"
        term = graph[n.inputs[0]]
        src = term.inputs[0]
        if i == 0:
            if not isinstance(term.op, HOST_TERMS) or term.op.delay_u6:
                return [], f"{n.name}: the first layer must be fed by the host alone"
        elif not isinstance(term.op, SynConv) or term.op.delay_u6 or src != names[i - 1]:
            return [], f"{n.name} is not fed by one Conv from {names[i - 1]}"
    extra = [o for o in graph.outputs if o != names[-1] and not isinstance(graph[o].op, DECODES)]
    if extra:
        return [], f"outputs {extra} are not the last layer"
    return names, ""


def is_chain(graph: Graph) -> bool:
    return bool(chain_populations(graph)[0])


def _neuron(group: h5py.Group, op: LoihiLIF | LoihiReadout) -> None:
    nrn = group.create_group("neuron")
    nrn.create_dataset("type", data=np.array([b"CUBA"]))
    nrn.create_dataset("iDecay", data=op.du_u12 + 1)  # netx: du = iDecay - 1
    nrn.create_dataset("vDecay", data=op.dv_u12)
    nrn.create_dataset("vThMant", data=op.vth_u17)
    nrn.create_dataset("refDelay", data=1)
    nrn.create_dataset("gradedSpike", data=False)


def _bias(op: LoihiLIF | LoihiReadout) -> np.ndarray:
    b = op.bias_mant_s13
    per_channel = b[:, :1, :1]
    if np.array_equal(np.broadcast_to(per_channel, b.shape), b):
        return per_channel.reshape(-1).astype(np.int64)
    return b.transpose(2, 1, 0).astype(np.int64)  # netx takes neuron-wise biases in (W, H, C)


def write_netx(graph: Graph, folder: str | Path) -> tuple[Path, Path]:
    """Write ``network.net`` (netx) and ``host.lava.h5`` (the host side) into ``folder``."""
    from .dag import dag_from_graph, write_dag

    names, why = chain_populations(graph)
    if not names:
        raise ExportError(f"not a netx chain: {why}")
    folder = Path(folder)
    p0 = graph[names[0]]
    pop0: Any = p0.op  # the chain's populations and convs, checked by chain_populations

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            layers = f.create_group("layer")
            g0 = layers.create_group("0")
            g0.create_dataset("type", data=np.array([b"input"]))
            g0.create_dataset("shape", data=np.array(graph.shape(names[0])))
            _neuron(g0, pop0)
            for i, name in enumerate(names[1:], start=1):
                n = graph[name]
                pop: Any = n.op
                conv: Any = graph[n.inputs[0]].op
                g = layers.create_group(str(i))
                g.create_dataset("type", data=np.array([b"conv"]))
                g.create_dataset("shape", data=np.array(graph.shape(n.inputs[0])))
                g.create_dataset("inChannels", data=conv.weight_s8.shape[1] * conv.groups)
                g.create_dataset("outChannels", data=conv.weight_s8.shape[0])
                g.create_dataset("kernelSize", data=np.array(conv.weight_s8.shape[2:]))
                g.create_dataset("stride", data=np.array(conv.stride))
                g.create_dataset("padding", data=np.array(conv.padding))
                g.create_dataset("dilation", data=np.array(conv.dilation))
                g.create_dataset("groups", data=conv.groups)
                g.create_dataset(
                    "weight", data=conv.effective_weight().astype(np.float32)
                )  # integers; netx reads astype(int)
                g.create_dataset("bias", data=_bias(pop).astype(np.float32))
                _neuron(g, pop)
            sim = f.create_group("simulation")
            sim.create_dataset("Ts", data=1)
            sim.create_dataset("tSample", data=graph.time_steps + int(graph.attrs["latency"]))

    net_path = atomic_write(folder / "network.net", write)
    # the host side: the same lowering as the DAG export, keeping the host source only
    dag = dag_from_graph(graph)
    host = [p for p in dag.procs if p.kind == "host_source"]
    host[0].params["input_bias"] = True
    host[0].arrays["bias_whc"] = pop0.bias_mant_s13.transpose(2, 1, 0).astype(np.int32)
    side = LavaDag(
        host,
        [],
        dag.time_steps,
        dag.latency,
        dag.encoding,
        dag.input_shape,
        dag.input_scale,
        dag.outputs,
        dag.readouts,
        dag.decode,
        {**dag.graph_attrs, "netx_layers": names},
    )
    side_path = write_dag(side, folder / "host.lava.h5")
    return net_path, side_path


class NetxNetwork(LavaNetwork):
    """Runs a netx chain: ``netx.hdf5.Network`` plus the host source into its input neuron."""

    def __init__(self, net_path: str | Path, host: LavaDag) -> None:
        super().__init__(host, fast_models=True)
        self.net_path = Path(net_path)
        self.layers: list[str] = list(host.graph_attrs["netx_layers"])

    def record_names(self, record: RecordSpec) -> list[str]:
        neurons = [n for n in self.layers if n not in self.dag.readouts]
        return select_records(record, neurons=neurons, every=self.layers, what="layers", hint=" of the netx network")

    def build(self, frames, time_steps, record=(), folder=None):
        require_lava()
        from lava.lib.dl import netx
        from lava.proc.io.source import RingBuffer as Source

        from .network import host_term_values

        n_steps = time_steps + self.dag.latency
        net = netx.hdf5.Network(str(self.net_path), reset_interval=n_steps, reset_offset=0)
        spec: ProcSpec = self.dag.procs[0]
        data = host_term_values(spec, frames, n_steps).astype(np.int64)
        data += spec.arrays["bias_whc"][..., None]  # netx's input block carries no bias
        src = Source(data=data.astype(np.int32))
        src.s_out.connect(net.layers[0].neuron.a_in)
        procs: dict[str, Any] = {"__net__": net, "__src__": src}
        for name, layer in zip(self.layers, net.layers):
            procs[name] = layer.neuron
        return procs, attach_recorder(procs, [n for n in record if n not in self.dag.readouts], n_steps, folder)

    def population_kind(self, name: str) -> str:
        return "readout" if name in self.dag.readouts else "lif"

    def population_latency(self, name: str) -> int:
        return self.layers.index(name)  # layer i of a chain is i hops from the input
