"""The base of every IR primitive: a frozen dataclass with declared inputs, shapes and kinds."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from ...errors import IRValidationError
from ..kinds import Kind

__all__ = ["Op", "Shape", "as_array", "as_pair", "param"]

Shape = tuple[int, ...]  # one sample, one step: (C, H, W); time and batch axes are implicit


def param(unit: str = "", shape: str = "", default: Any = dataclasses.MISSING, doc: str = "") -> Any:
    """A dataclass field that documents its unit and shape (read by docs, inspect and serializers)."""
    meta = {"unit": unit, "shape": shape, "doc": doc}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def as_array(value: Any, dtype: Any = None) -> NDArray[Any]:
    arr = np.asarray(value, dtype=dtype)
    arr.setflags(write=False)  # ops are values: nobody edits a weight in place
    return arr


def as_pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return (int(value), int(value))
    a, b = value
    return (int(a), int(b))


@dataclasses.dataclass(frozen=True, eq=False)
class Op:
    """Base class. Subclasses declare:

    * ``arity``: (min, max) number of inputs (max ``None`` = any);
    * ``accepts``: the input kinds the op accepts (the same set for every input);
    * ``output_shape`` and ``output_kind`` from the inputs';
    * ``timeless``: the output has no time axis (it is produced once, after the last step).
    """

    arity: ClassVar[tuple[int, int | None]] = (1, 1)
    accepts: ClassVar[frozenset[Kind]] = frozenset(Kind)
    timeless: ClassVar[bool] = False

    @property
    def type_name(self) -> str:
        return type(self).__name__

    def output_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        return tuple(in_shapes[0])

    def output_kind(self, in_kinds: Sequence[Kind]) -> Kind:
        return in_kinds[0]

    def check_inputs(self, in_shapes: Sequence[Shape], in_kinds: Sequence[Kind]) -> None:
        """Raise :class:`IRValidationError` if the inputs do not fit (the caller adds the node name)."""
        lo, hi = self.arity
        n = len(in_shapes)
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else f"{lo}..{hi if hi is not None else 'n'}"
            raise IRValidationError(f"{self.type_name} takes {want} inputs, got {n}")
        for k in in_kinds:
            if k not in self.accepts:
                ok = ", ".join(sorted(a.value for a in self.accepts))
                raise IRValidationError(f"{self.type_name} does not accept {k.value} inputs (accepts: {ok})")

    def params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def num_parameters(self) -> int:
        """Trainable-parameter count (arrays with a weight/bias role)."""
        return 0

    def same_as(self, other: Op) -> bool:
        """Structural equality (arrays compared element by element, dtype included)."""
        if type(self) is not type(other):
            return False
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if a is None or b is None:
                    return False
                if a.dtype != b.dtype or not np.array_equal(a, b):
                    return False
            elif a != b:
                return False
        return True
