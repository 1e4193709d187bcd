"""emsdeploy: deploy directly-trained spiking object detectors (EMS-YOLO) to Lava and ONNX.

``emsdeploy.load(path)`` is the Python face of the CLI (:mod:`emsdeploy.facade`); it is
imported on first use so that ``import emsdeploy`` (and ``emsdeploy --help``) stay light.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load"]


def __getattr__(name: str) -> Any:
    if name in ("load", "Model"):
        from . import facade

        return getattr(facade, name)
    raise AttributeError(f"module 'emsdeploy' has no attribute {name!r}")
