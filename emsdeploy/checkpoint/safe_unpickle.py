"""The one unpickler for checkpoint files: a closed set of data constructors, nothing else.

Official checkpoints are pickles of whole ``models.yolo.Model`` objects, and a pickle is a
small program: ``GLOBAL`` names any importable object, ``REDUCE``/``NEWOBJ`` call it, ``BUILD``
sets attributes on whatever is on the stack. This unpickler (the pure-Python VM with its
dangerous opcodes replaced) allows only:

* ``GLOBAL``: the names in :data:`_ALLOWED` (resolved to *our* checked constructors, never to
  the named object itself, except inert types such as ``torch.float16``), storage types, and
  official EMS-YOLO / ``torch.nn`` classes and the exact SpikeYOLO (``ultralytics``) class
  names in :data:`ALLOWED_CLASSES`, which become :class:`InertObject` stand-ins;
* calls (``REDUCE``, ``NEWOBJ``, ``INST``, ``OBJ``): those constructors only, on plain
  arguments (no iteration over tensors or stand-ins);
* ``BUILD``: on our stand-ins only (state stored, no code of the named class runs);
  ``SETITEM(S)``/``APPEND(S)``/``ADDITEMS``: on dicts, lists and sets only;
* no ``EXT`` codes (they would fill the process-wide copyreg cache).

Every other global is refused with :class:`UnsafeCheckpointError` *before* it is resolved,
so nothing it names is imported or called. Opcodes are counted: a pickle may run at most
:data:`MAX_OPS` of them, which bounds the objects it can allocate. Tensors come from
``persistent_load``, which the caller (:mod:`.torchfile`) binds to size-checked records.
"""

from __future__ import annotations

import io
import math
import pickle
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import UnsafeCheckpointError

__all__ = [
    "ALLOWED_CLASSES",
    "ALLOWED_PREFIXES",
    "MAX_OPS",
    "ArrayStandin",
    "InertObject",
    "RestrictedUnpickler",
    "StorageType",
    "TensorArgsError",
    "rebuild_from_storage",
]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Module prefixes whose classes are replaced by inert stand-ins.
ALLOWED_PREFIXES = ("models.yolo", "models.common", "models.experimental", "torch.nn.modules.")

# Official SpikeYOLO checkpoints (BICLab/SpikeYOLO, an ultralytics 8.0.197 fork) pickle these
# classes; exactly these names become inert stand-ins, any other ultralytics global is refused.
_SPIKEYOLO_MODULES = (
    "MS_GetT",
    "MS_DownSampling",
    "MS_AllConvBlock",
    "MS_ConvBlock",
    "SepConv",
    "SepRepConv",
    "RepConv",
    "BNAndPadLayer",
    "MS_StandardConv",
    "SpikeSPPF",
    "SpikeConv",
    "SpikeConvWithoutBN",
    "SpikeDetect",
    "SpikeDFL",
    "mem_update",
    "MultiSpike4",
)
ALLOWED_CLASSES = frozenset(
    {
        ("ultralytics.nn.tasks", "DetectionModel"),
        ("ultralytics.nn.modules.conv", "Concat"),
        ("ultralytics.utils", "IterableSimpleNamespace"),
        *(("ultralytics.nn.modules.yolo_spikformer", n) for n in _SPIKEYOLO_MODULES),
    }
)

# The biggest official fixture runs 50k opcodes; 1M bounds what a pickle can allocate (~100 MB).
MAX_OPS = 1_000_000
MAX_NDIM = 8


class TensorArgsError(ValueError):
    """A tensor or array record whose declared shape, stride or size does not fit its data."""


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


MAX_CLASSES = 4096  # distinct stand-in classes per file; the official models name about 30


def _standin(module: str, name: str) -> type:
    return type(name, (InertObject,), {"_qualname": f"{module}.{name}", "__module__": "emsdeploy.inert"})


class StorageType:
    """What ``torch.FloatStorage`` and friends mean inside a persistent id: an element dtype."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype

    def __repr__(self) -> str:
        return f"StorageType({self.dtype})"


_STORAGE_TYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "UntypedStorage": torch.uint8,
}

_NUMPY_DTYPES = frozenset(("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1", "?")) | frozenset(
    ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
)


class DtypeStandin(InertObject):
    """``numpy.dtype(name, align, copy)`` as pickled: a plain numeric dtype, checked on BUILD."""

    def __init__(self, name: Any = "f8", align: Any = False, copy: Any = True) -> None:
        if not isinstance(name, str) or name not in _NUMPY_DTYPES:
            raise TensorArgsError(f"numpy dtype {name!r} is not a plain numeric dtype")
        self.dtype = np.dtype(name)

    def __setstate__(self, state: Any) -> None:
        # (version, byteorder, subarray, names, fields, elsize, alignment, flags) for plain dtypes
        if not (isinstance(state, tuple) and len(state) >= 2 and state[1] in ("<", "|", "=")):
            raise TensorArgsError(f"numpy dtype state {state!r:.80} is not a little-endian plain dtype")
        if any(s is not None for s in state[2:5]):
            raise TensorArgsError("numpy dtype with fields or sub-arrays is not allowed")


class ArrayStandin(InertObject):
    """``numpy.core.multiarray._reconstruct(ndarray, ...)`` result; BUILD checks bytes against the shape."""

    array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise TensorArgsError("numpy array state is not (version, shape, dtype, fortran, data)")
        _, shape, dtype, fortran, raw = state
        if not isinstance(dtype, DtypeStandin) or not isinstance(raw, (bytes, bytearray)):
            raise TensorArgsError("numpy array state needs a plain dtype and raw bytes")
        shape = _int_tuple(shape, "numpy array shape")
        need = math.prod(shape) * dtype.dtype.itemsize
        if need != len(raw):
            raise TensorArgsError(f"numpy array of shape {shape} needs {need} bytes, the pickle holds {len(raw)}")
        arr = np.frombuffer(bytes(raw), dtype=dtype.dtype).reshape(shape, order="F" if fortran else "C")
        object.__setattr__(self, "array", arr.copy())


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) > MAX_NDIM:
        raise TensorArgsError(f"{what} must be a tuple of at most {MAX_NDIM} integers, got {value!r:.80}")
    if not all(type(v) is int and v >= 0 for v in value):
        raise TensorArgsError(f"{what} must hold non-negative integers, got {value!r:.80}")
    return tuple(value)


def _np_reconstruct(subtype: Any, shape: Any, dtype: Any) -> ArrayStandin:
    if subtype is not ArrayStandin:
        raise TensorArgsError("numpy _reconstruct may only make a plain ndarray")
    return ArrayStandin()


def _np_scalar(dtype: Any, raw: Any = None) -> Any:
    if not isinstance(dtype, DtypeStandin) or not isinstance(raw, (bytes, bytearray)):
        raise TensorArgsError("numpy scalar needs a plain dtype and raw bytes")
    if len(raw) != dtype.dtype.itemsize:
        raise TensorArgsError(f"numpy scalar of {dtype.dtype} needs {dtype.dtype.itemsize} bytes, got {len(raw)}")
    return np.frombuffer(bytes(raw), dtype=dtype.dtype)[0].item()


def _latin1_encode(obj: Any, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for raw NumPy bytes; latin-1 only."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpointError(f"refused _codecs.encode with encoding {encoding!r}")
    return obj.encode("latin1")


def rebuild_from_storage(
    storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False, hooks: Any = None, meta: Any = None
) -> torch.Tensor:
    """``torch._utils._rebuild_tensor_v2``, checked: the view must lie inside its storage."""
    if not isinstance(storage, torch.Tensor) or storage.dim() != 1:
        raise TensorArgsError("a tensor's storage is not a storage record of this file")
    if type(offset) is not int or offset < 0:
        raise TensorArgsError(f"tensor storage offset {offset!r:.40} is not a non-negative integer")
    size, stride = _int_tuple(size, "tensor size"), _int_tuple(stride, "tensor stride")
    if len(size) != len(stride):
        raise TensorArgsError(f"tensor size {size} and stride {stride} differ in length")
    if hooks not in (None, {}) or meta not in (None, {}) or not isinstance(requires_grad, bool):
        raise TensorArgsError("tensor records may not carry hooks or extra metadata")
    if math.prod(size) and offset + sum((n - 1) * s for n, s in zip(size, stride)) >= storage.numel():
        raise TensorArgsError(
            f"tensor of size {size} (stride {stride}, offset {offset}) reaches past its storage of {storage.numel()} elements"
        )
    if not math.prod(size) and offset > storage.numel():
        raise TensorArgsError(f"tensor offset {offset} lies past its storage of {storage.numel()} elements")
    return storage.as_strided(size, stride, offset)


def _rebuild_parameter(data: Any, requires_grad: Any = False, hooks: Any = None) -> torch.Tensor:
    if not isinstance(data, torch.Tensor) or hooks not in (None, {}):
        raise TensorArgsError("a parameter record must wrap a tensor and carry no hooks")
    return data


def _plain_args(ctor: Callable) -> Callable:
    """A container constructor that only accepts lists/tuples (never iterates tensors or stand-ins)."""

    def make(*args: Any) -> Any:
        if len(args) > 1 or any(not isinstance(a, (list, tuple)) for a in args):
            raise TensorArgsError(
                f"{ctor.__name__} may only be built from a list, got {[type(a).__name__ for a in args]}"
            )
        if ctor is torch.Size and args:
            _int_tuple(args[0], "torch.Size")
        return ctor(*args)

    make.__name__ = ctor.__name__
    return make


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _plain_args(OrderedDict),
    ("builtins", "set"): _plain_args(set),
    ("__builtin__", "set"): _plain_args(set),
    ("builtins", "frozenset"): _plain_args(frozenset),
    ("__builtin__", "frozenset"): _plain_args(frozenset),
    ("_codecs", "encode"): _latin1_encode,
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_from_storage,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch", "Size"): _plain_args(torch.Size),
    ("numpy", "ndarray"): ArrayStandin,
    ("numpy", "dtype"): DtypeStandin,
}
for _core in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_core, "_reconstruct")] = _np_reconstruct
    _ALLOWED[(_core, "scalar")] = _np_scalar
for _dt in ("float16", "float32", "float64", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"):
    _ALLOWED[("torch", _dt)] = getattr(torch, _dt)

# What REDUCE/NEWOBJ/INST/OBJ may call: our constructors above; plus stand-in classes.
_CALLABLE_IDS = frozenset(id(v) for v in _ALLOWED.values() if callable(v) and not isinstance(v, torch.dtype))


def _refuse(what: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(f"{what}; nothing from the file was executed")


class RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler with calls, BUILD and item setting limited to our data types.

    ``persistent_load`` is supplied by the caller; ``storage_types`` says whether storage
    type globals (only meaningful inside persistent ids) resolve.
    """

    dispatch: ClassVar[dict[int, Callable[..., None]]] = {}
    # the pure-Python VM's working state, which typeshed's ``_Unpickler`` does not declare
    stack: list[Any]
    append: Callable[[Any], None]
    pop_mark: Callable[[], list[Any]]

    def __init__(self, file: io.BufferedIOBase, persistent_load: Callable[[Any], Any] | None = None) -> None:
        super().__init__(file, fix_imports=False, encoding="latin1")
        self._ops = 0
        self._standins: dict[tuple[str, str], type] = {}  # per file, so nothing outlives the load
        self._persistent = persistent_load

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise UnsafeCheckpointError("a persistent id outside a checkpoint's storage records")
        return self._persistent(pid)

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_TYPES:
            return StorageType(_STORAGE_TYPES[name])
        allowed = (module, name) in ALLOWED_CLASSES or any(
            module == p or module.startswith(p) for p in ALLOWED_PREFIXES
        )
        if _IDENT.match(name) and allowed:
            if (module, name) not in self._standins:
                if len(self._standins) >= MAX_CLASSES:
                    raise _refuse(f"pickle names more than {MAX_CLASSES} classes; refused to bound memory")
                self._standins[(module, name)] = _standin(module, name)
            return self._standins[(module, name)]
        raise _refuse(
            f"refused to load global '{module}.{name}': checkpoints may reference only tensors, plain "
            "containers, NumPy arrays and (as inert stand-ins) EMS-YOLO, SpikeYOLO and torch.nn classes"
        )

    # -- calls ------------------------------------------------------------------------------
    def _check_callable(self, func: Any, how: str) -> None:
        if id(func) in _CALLABLE_IDS or (isinstance(func, type) and issubclass(func, InertObject)):
            return
        raise _refuse(f"refused {how} on {type(func).__name__} {func!r:.60}: only data constructors may be called")

    def _load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        self._check_callable(func, "a call")
        if not isinstance(args, tuple):
            raise pickle.UnpicklingError("REDUCE arguments are not a tuple")
        self.stack[-1] = func(*args)

    def _load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self._check_callable(cls, "object creation")
        if not isinstance(args, tuple):
            raise pickle.UnpicklingError("NEWOBJ arguments are not a tuple")
        self.append(cls(*args))

    def _load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        if kwargs:
            raise _refuse("refused object creation with keyword arguments")
        self._load_newobj()

    def _instantiate(self, klass: Any, args: list) -> None:
        self._check_callable(klass, "object creation")
        self.append(klass(*args))

    # -- state ------------------------------------------------------------------------------
    def _load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if not isinstance(inst, InertObject) or isinstance(inst, type):
            raise _refuse(
                f"refused to set state on {type(inst).__name__} {inst!r:.60}: only inert stand-ins of "
                "model classes take pickled state"
            )
        inst.__setstate__(state)

    def _load_setitems(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1]
        if not isinstance(target, dict):
            raise _refuse(f"refused item assignment on {type(target).__name__}: only dicts take items")
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def _load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        target = self.stack[-1]
        if not isinstance(target, dict):
            raise _refuse(f"refused item assignment on {type(target).__name__}: only dicts take items")
        target[key] = value

    def _load_appends(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1]
        if not isinstance(target, list):
            raise _refuse(f"refused append on {type(target).__name__}: only lists take items")
        target.extend(items)

    def _load_append(self) -> None:
        value = self.stack.pop()
        target = self.stack[-1]
        if not isinstance(target, list):
            raise _refuse(f"refused append on {type(target).__name__}: only lists take items")
        target.append(value)

    def _load_additems(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1]
        if not isinstance(target, set):
            raise _refuse(f"refused set insertion on {type(target).__name__}")
        target.update(items)

    def _load_ext(self) -> None:
        raise _refuse("refused a pickle extension code (copyreg registry)")

    def _load_bytearray8(self) -> None:
        raise _refuse("refused a protocol-5 bytearray (torch.save never writes one)")


def _counted(op: Callable[..., None]) -> Callable[..., None]:
    def run(self: RestrictedUnpickler) -> None:
        self._ops += 1
        if self._ops > MAX_OPS:
            raise _refuse(f"pickle runs more than {MAX_OPS:,} opcodes; refused to bound memory")
        op(self)

    return run


_OVERRIDES = {
    pickle.REDUCE: RestrictedUnpickler._load_reduce,
    pickle.NEWOBJ: RestrictedUnpickler._load_newobj,
    pickle.NEWOBJ_EX: RestrictedUnpickler._load_newobj_ex,
    pickle.BUILD: RestrictedUnpickler._load_build,
    pickle.SETITEM: RestrictedUnpickler._load_setitem,
    pickle.SETITEMS: RestrictedUnpickler._load_setitems,
    pickle.APPEND: RestrictedUnpickler._load_append,
    pickle.APPENDS: RestrictedUnpickler._load_appends,
    pickle.ADDITEMS: RestrictedUnpickler._load_additems,
    pickle.EXT1: RestrictedUnpickler._load_ext,
    pickle.EXT2: RestrictedUnpickler._load_ext,
    pickle.EXT4: RestrictedUnpickler._load_ext,
    pickle.BYTEARRAY8: RestrictedUnpickler._load_bytearray8,
}
RestrictedUnpickler.dispatch = {
    code: _counted(_OVERRIDES.get(bytes([code]), fn))
    for code, fn in pickle._Unpickler.dispatch.items()
}
