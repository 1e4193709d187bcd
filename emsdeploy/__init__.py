"""emsdeploy: deploy directly-trained spiking object detectors (EMS-YOLO) to Lava and ONNX.

``emsdeploy.load(path)`` is the Python face of the CLI (:mod:`emsdeploy.facade`); it is
imported on first use so that ``import emsdeploy`` (and ``emsdeploy --help``) stay light.
"""

from pathlib import Path as _Path
from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load"]


def __getattr__(name: str) -> Any:
    if name in ("load", "Model"):
        from . import facade

        return getattr(facade, name)
    raise AttributeError(f"module 'emsdeploy' has no attribute {name!r}")


# pyproject.toml installs the repository's models/, exporters/ and simulators/ as this package's
# subpackages. Where this folder is imported from a source checkout rather than from the installed
# copy (pytest puts the checkout first on sys.path, so `pip install .` then `pytest` does this), the
# checkout's root provides them the same way.
_root = _Path(__file__).resolve().parent.parent
if (_root / "pyproject.toml").is_file() and (_root / "exporters" / "__init__.py").is_file():
    __path__.append(str(_root))
