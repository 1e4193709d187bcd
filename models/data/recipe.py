"""The recipe of a synthetic dataset: everything that regenerates it, bit for bit.

Stored in a checkpoint's ``meta["data"]`` so that ``emsdeploy eval`` can rebuild the exact
validation split a model was made for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .errors import DatasetError

__all__ = ["KINDS", "SPLITS", "SynthRecipe"]

KINDS = ("shapes", "events")  # static RGB scenes (direct encoding), moving shapes as DVS events (frames)
SPLITS = ("train", "val")


@dataclass(frozen=True)
class SynthRecipe:
    """Parameters of a synthetic detection dataset.

    Attributes:
        kind: ``"shapes"`` or ``"events"``.
        seed: root seed; each image draws from its own stream ``(seed, split, index)``.
        size: image side, pixels.
        train, val: number of images per split.
        max_objects: 1 to this many objects per image.
        min_size, max_size: object size range, pixels.
        time_bins: event frames per sample (``events`` only).
        window_us: time span of one sample, µs (``events`` only; the Gen1 setting by default).
    """

    kind: str = "shapes"
    seed: int = 0
    size: int = 128
    train: int = 4000
    val: int = 500
    max_objects: int = 4
    min_size: int = 14
    max_size: int = 44
    time_bins: int = 5
    window_us: int = 250_000

    def __post_init__(self) -> None:
        where = "synthetic recipe"
        if self.kind not in KINDS:
            raise DatasetError(where, "kind", f"{self.kind!r} is not one of {', '.join(KINDS)}")
        for name in ("size", "train", "val", "max_objects", "min_size", "time_bins", "window_us"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise DatasetError(where, name, f"must be a positive integer, got {getattr(self, name)!r}")
        if not self.min_size <= self.max_size < self.size:
            raise DatasetError(
                where,
                "max_size",
                f"need min_size <= max_size < size, got {self.min_size}, {self.max_size}, {self.size}",
            )

    def count(self, split: str) -> int:
        if split not in SPLITS:
            raise DatasetError("synthetic recipe", "split", f"{split!r} is not one of {', '.join(SPLITS)}")
        return self.train if split == "train" else self.val

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SynthRecipe:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DatasetError("synthetic recipe", unknown[0], f"unknown key; known keys: {', '.join(sorted(known))}")
        return cls(**data)

    @classmethod
    def parse(cls, spec: str) -> SynthRecipe:
        """``"shapes"`` or ``"events:seed=3,train=200"`` → a recipe (integers only after the kind)."""
        kind, _, rest = spec.partition(":")
        values: dict = {"kind": kind}
        for item in filter(None, rest.split(",")):
            key, eq, value = item.partition("=")
            if not eq:
                raise DatasetError(spec, key or item, "expected key=value")
            try:
                values[key.strip()] = int(value)
            except ValueError:
                raise DatasetError(spec, key.strip(), f"expected an integer, got {value!r}") from None
        return cls.from_dict(values)
