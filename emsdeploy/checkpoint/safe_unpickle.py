"""A restricted unpickler for official EMS-YOLO checkpoints.

Official checkpoints are pickles of whole ``models.yolo.Model`` objects, so
``torch.load(weights_only=True)`` refuses them and plain ``torch.load`` would run any
callable the file names. This unpickler resolves only an allow-list of globals:

* official EMS-YOLO classes and ``torch.nn`` module classes become :class:`InertObject`
  stand-ins that only store their pickled state (no ``__init__``, no ``__setstate__`` logic);
* tensor rebuild functions, ``OrderedDict``/``set``, NumPy array reconstruction (mapping
  ``numpy._core`` written by NumPy 2 onto the installed NumPy) and a latin-1 ``encode``.

Every other global is refused with :class:`UnsafeCheckpointError` *before* it is resolved,
so nothing it names is imported or called.
"""

from __future__ import annotations

import importlib
import pickle
import re
import types
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from ..errors import UnsafeCheckpointError

__all__ = ["ALLOWED_PREFIXES", "InertObject", "RestrictedUnpickler", "restricted_pickle_module"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Module prefixes whose classes are replaced by inert stand-ins.
ALLOWED_PREFIXES = ("models.yolo", "models.common", "models.experimental", "torch.nn.modules.")


class InertObject:
    """Stand-in for a pickled class: keeps the pickled state, runs no code of that class."""

    _qualname = "?"

    def __setstate__(self, state: Any) -> None:
        object.__setattr__(self, "_state", state)

    @property
    def state(self) -> dict:
        st = self.__dict__.get("_state")
        return st if isinstance(st, dict) else {}

    def __repr__(self) -> str:
        return f"<inert {self._qualname}>"


_STANDINS: dict[tuple[str, str], type] = {}


def _standin(module: str, name: str) -> type:
    key = (module, name)
    if key not in _STANDINS:
        _STANDINS[key] = type(name, (InertObject,), {"_qualname": f"{module}.{name}", "__module__": "emsdeploy.inert"})
    return _STANDINS[key]


def _latin1_encode(obj: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for raw NumPy bytes; latin-1 only."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpointError(f"refused _codecs.encode with encoding {encoding!r}")
    return obj.encode("latin1")


def _numpy_core() -> types.ModuleType:
    # NumPy 2 pickles name numpy._core.*, NumPy 1 numpy.core.*; resolve both on what is installed.
    if int(np.__version__.split(".")[0]) >= 2:
        return importlib.import_module("numpy._core.multiarray")
    return importlib.import_module("numpy.core.multiarray")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("__builtin__", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "frozenset"): frozenset,
    ("_codecs", "encode"): _latin1_encode,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _core in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_core, "_reconstruct")] = _numpy_core()._reconstruct
    _ALLOWED[(_core, "scalar")] = _numpy_core().scalar
for _dt in ("float16", "float32", "float64", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"):
    _ALLOWED[("torch", _dt)] = getattr(torch, _dt)


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` consults the allow-list only."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if _IDENT.match(name) and any(module == p or module.startswith(p) for p in ALLOWED_PREFIXES):
            return _standin(module, name)
        raise UnsafeCheckpointError(
            f"refused to load global '{module}.{name}': checkpoints may reference only tensors, plain "
            "containers, NumPy arrays and (as inert stand-ins) EMS-YOLO and torch.nn classes. "
            "Nothing from the file was executed."
        )


def _restricted_load(file: Any, **kwargs: Any) -> Any:
    return RestrictedUnpickler(file, **kwargs).load()


# torch.load(pickle_module=...) uses both ``Unpickler`` (zip format) and ``load`` (legacy format).
restricted_pickle_module = types.SimpleNamespace(
    Unpickler=RestrictedUnpickler, load=_restricted_load, __name__="emsdeploy_restricted_pickle"
)
