"""The Lava exporter's options, typed (what ``emsdeploy export --target lava`` can set)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from emsdeploy.passes.align_delays import RELAY_ABOVE
from emsdeploy.passes.quantize import QuantizeOptions

__all__ = ["LavaFormat", "LavaOptions"]

LavaFormat = Literal["auto", "netx", "dag"]


@dataclass(frozen=True)
class LavaOptions:
    """Attributes:
    quantize: the quantization policy (``allow_clip``, scales, profile).
    custom_to_host: max-pools of currents and SiLU neurons on the host, not custom processes.
    fmt: ``"auto"`` (netx when the network is a chain, else the DAG), ``"netx"`` or ``"dag"``.
    relay_above: delayed conv groups larger than this go through relay populations.
    """

    quantize: QuantizeOptions = field(default_factory=QuantizeOptions)
    custom_to_host: bool = False
    fmt: LavaFormat = "auto"
    relay_above: int = RELAY_ABOVE

    @classmethod
    def from_flags(cls, *, custom_to_host: bool = False, allow_clip: bool = False, **_other: object) -> LavaOptions:
        """From the CLI's flags (those of other targets are not Lava's and are ignored)."""
        return cls(QuantizeOptions(allow_clip=bool(allow_clip)), custom_to_host=bool(custom_to_host))
