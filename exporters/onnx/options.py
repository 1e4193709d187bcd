"""The ONNX exporter's options, typed (what ``emsdeploy export --target onnx`` can set)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["OnnxOptions"]


@dataclass(frozen=True)
class OnnxOptions:
    """Attributes:
    spikes: also output ``spikes.<node>`` of every LIF (float) or ``out.<population>`` every
        call (fixed), for verification.
    arithmetic: ``"float"`` (the IR's float step) or ``"fixed"`` (Loihi's integer arithmetic,
        lowered by the Lava exporter's flow, bit-exact with ref-fixed).
    custom_to_host: fixed arithmetic: lower custom ops to the host, as the Lava flag does.
    """

    spikes: bool = False
    arithmetic: Literal["float", "fixed"] = "float"
    custom_to_host: bool = False

    @classmethod
    def from_flags(
        cls, *, spikes: bool = False, arithmetic: str = "float", custom_to_host: bool = False, **_other: object
    ) -> OnnxOptions:
        """From the CLI's flags (those of other targets are ignored)."""
        return cls(bool(spikes), "fixed" if arithmetic == "fixed" else "float", bool(custom_to_host))
