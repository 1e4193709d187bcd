"""The NIR exporter's options, typed (what ``emsdeploy export --target nir`` can set)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NirOptions"]

# CLI options of other targets: named in a note when given, never silently dropped.
OTHER_TARGETS_FLAGS = {
    "spikes": "--spikes (onnx)",
    "custom_to_host": "--custom-to-host (lava)",
    "allow_clip": "--allow-clip (lava)",
}


@dataclass(frozen=True)
class NirOptions:
    """Attributes:
    ignored: flags of other targets that were given (the export names them in a note).
    """

    ignored: tuple[str, ...] = ()

    @classmethod
    def from_flags(cls, **flags: object) -> NirOptions:
        """From the CLI's flags: NIR takes none of them; the other targets' are noted."""
        return cls(tuple(label for key, label in OTHER_TARGETS_FLAGS.items() if flags.get(key)))
