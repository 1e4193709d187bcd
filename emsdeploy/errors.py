"""One error hierarchy for the toolchain.

Messages say where (file, module path, IR node), what went wrong, what is supported, and
how to fix it. The CLI prints them without a traceback.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "CheckpointError",
    "DRCError",
    "EmsdeployError",
    "EquivalenceError",
    "ExportError",
    "IRFormatError",
    "IRValidationError",
    "InputError",
    "LimitError",
    "PassError",
    "QuantizationError",
    "SimulationError",
    "TraceError",
    "UnsafeCheckpointError",
    "UntrustedFileError",
]


class EmsdeployError(Exception):
    """Base class of every error the toolchain raises on purpose."""


class CheckpointError(EmsdeployError):
    """A checkpoint file that cannot be read or does not hold a supported model."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle asked for a global outside the allow-list; nothing from it was executed."""


class TraceError(EmsdeployError):
    """A module the tracer cannot map to the IR (names the module path and the supported set)."""


class IRValidationError(EmsdeployError):
    """An IR graph that breaks an invariant (names the node)."""


class IRFormatError(EmsdeployError):
    """An IR file that is corrupt, truncated, or of an unsupported schema version."""


class PassError(EmsdeployError):
    """A pass whose preconditions do not hold for the given graph."""


class QuantizationError(EmsdeployError):
    """A value that does not fit the target's fixed-point format (names node, field and ranges)."""


class DRCError(EmsdeployError):
    """A design rule of a hardware target is violated (carries the rule name)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"[{rule}] {message}")
        self.rule = rule


class ExportError(EmsdeployError):
    """An exporter cannot write or load an artifact."""


class SimulationError(EmsdeployError):
    """A simulator or runtime failed on a node (names the node)."""


class EquivalenceError(EmsdeployError):
    """Two backends disagree where they must agree."""


class InputError(EmsdeployError):
    """A user input (image, folder, array, frame) of the wrong kind or shape."""


class LimitError(InputError):
    """A size-like input (T, input size, classes, widths, array or file size) above its bound."""


class UntrustedFileError(EmsdeployError):
    """A user file refused by the checked readers of :mod:`emsdeploy.fileio` (names file and part)."""


class BackendUnavailableError(EmsdeployError):
    """An optional backend (Lava) is not installed in this environment; says how to get it."""
