"""The Lava exporter's options, typed (what ``emsdeploy export --target lava`` can set)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from emsdeploy.passes.align_delays import RELAY_ABOVE
from emsdeploy.passes.quantize import QuantizeOptions

__all__ = ["LavaFormat", "LavaOptions", "SpikeMode"]

LavaFormat = Literal["auto", "netx", "dag"]
SpikeMode = Literal["graded", "spike-driven"]


@dataclass(frozen=True)
class LavaOptions:
    """Attributes:
    quantize: the quantization policy (``allow_clip``, scales, profile).
    custom_to_host: max-pools of currents and SiLU neurons on the host, not custom processes.
    fmt: ``"auto"`` (netx when the network is a chain, else the DAG), ``"netx"`` or ``"dag"``.
    relay_above: delayed conv groups larger than this go through relay populations.
    spike_mode: how integer spikes (SpikeYOLO's I-LIF) travel: ``"graded"`` (one graded spike per
        step) or ``"spike-driven"`` (D binary spikes over D sub-steps); docs/spikeyolo.md.
    """

    quantize: QuantizeOptions = field(default_factory=QuantizeOptions)
    custom_to_host: bool = False
    fmt: LavaFormat = "auto"
    relay_above: int = RELAY_ABOVE
    spike_mode: SpikeMode = "graded"

    @classmethod
    def from_flags(
        cls,
        *,
        custom_to_host: bool = False,
        allow_clip: bool = False,
        spike_mode: SpikeMode = "graded",
        **_other: object,
    ) -> LavaOptions:
        """From the CLI's flags (those of other targets are not Lava's and are ignored)."""
        return cls(
            QuantizeOptions(allow_clip=bool(allow_clip)), custom_to_host=bool(custom_to_host), spike_mode=spike_mode
        )
