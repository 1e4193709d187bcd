"""onnxruntime execution providers by the names a user types (``--provider cpu|cuda``).

The CPU provider is always present; CUDA only with the ``onnxruntime-gpu`` build and a GPU. A
provider that this installation does not offer is refused in one line that says what it does
offer, instead of onnxruntime's silent fallback to the CPU.
"""

from __future__ import annotations

from .errors import InputError

__all__ = ["PROVIDERS", "ort_providers"]

# user name -> onnxruntime providers, in priority order (CPU last: ops CUDA lacks run there)
PROVIDERS = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
}


def ort_providers(name: str) -> list[str]:
    """The onnxruntime provider list for ``name``; :class:`InputError` when it is not available here."""
    import onnxruntime as ort

    if name not in PROVIDERS:
        raise InputError(f"--provider {name}: unknown; choose from {', '.join(PROVIDERS)}")
    available = ort.get_available_providers()
    wanted = PROVIDERS[name]
    if wanted[0] not in available:
        offered = ", ".join(k for k, v in PROVIDERS.items() if v[0] in available)
        raise InputError(
            f"--provider {name}: onnxruntime {ort.__version__} here does not offer {wanted[0]} "
            f"(it offers: {offered}); for cuda install onnxruntime-gpu on a machine with an NVIDIA GPU"
        )
    return list(wanted)
