"""Bounds on every size-like input, checked before anything is allocated.

A tiny file or flag can ask for gigabytes (a declared-but-unwritten HDF5 dataset, ``nc`` =
1,500,000, ``-T 1000000000000``). Each bound below is a named constant with the reason for its
value; the error message states the bound and how to raise it. A deliberate large run stays
possible: set ``EMSDEPLOY_LIMIT_<NAME>`` (e.g. ``EMSDEPLOY_LIMIT_TIME_STEPS=500``) to raise a
limit for one run; docs/security.md lists them all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import LimitError

__all__ = ["LIMITS", "Limit", "check_limit", "limit"]

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


@dataclass(frozen=True)
class Limit:
    name: str
    value: int
    unit: str
    reason: str


_ALL = [
    # The paper runs T = 4 (COCO) and 5 (Gen1); state, records and run time grow linearly with T.
    Limit("time_steps", 64, "steps", "10x the largest published T"),
    # The paper's largest input is 640x640; activations grow with H*W.
    Limit("input_side", 2048, "pixels", "3.2x the paper's 640 px input"),
    # COCO has 80 classes and Gen1 2; the head has na*(nc+5) output channels.
    Limit("classes", 4096, "classes", "50x COCO's 80 classes"),
    # The widest official layer is BasicBlock_1's hidden width, 1024 channels.
    Limit("channels", 2048, "channels", "2x the widest official layer (1024)"),
    # Official configs repeat a block at most 3 times and upsample by 2.
    Limit("repeats", 64, "repeats", "20x the official configs' largest repeat (3)"),
    Limit("upsample_factor", 16, "x", "8x the official configs' nearest x2"),
    # A decoded RGB image of this many pixels is 300 MB as float32.
    Limit("image_pixels", 25_000_000, "pixels", "a 25 MP image is 300 MB as float32"),
    # Input arrays (.npy): a batch of 640x640 images at T = 64 is 300 MB as float32.
    Limit("npy_bytes", 1 * GiB, "bytes", "inputs are loaded into memory whole"),
    # Gen1 label files hold a few thousand boxes per recording.
    Limit("label_records", 5_000_000, "records", "1000x a long Gen1 recording's boxes"),
    # HDF5 files (.emsir, Lava folders): resnet34 at 640 px is ~0.1 GB of weights.
    Limit("hdf5_file_bytes", 8 * GiB, "bytes", "40x the largest paper model's export"),
    Limit("hdf5_dataset_bytes", 2 * GiB, "bytes", "a dataset is read into memory whole"),
    Limit("hdf5_objects", 200_000, "objects", "a Lava DAG of resnet34 has a few thousand"),
    Limit("hdf5_attribute_bytes", 64 * MiB, "bytes", "attributes hold JSON metadata only"),
    Limit("hdf5_chunk_bytes", 64 * MiB, "bytes", "our writers use h5py's automatic chunks (< 1 MiB)"),
    # ONNX: protobuf cannot hold more than 2 GiB, and the file is read into memory whole.
    Limit("onnx_bytes", 2 * GiB, "bytes", "the protobuf limit"),
    Limit("onnx_initializer_bytes", 1 * GiB, "bytes", "resnet34's largest weight is 9 MB"),
    # State tensors are allocated from the declared input shapes of the stepwise graph.
    Limit("onnx_tensor_elements", 1 << 28, "elements", "1 GiB of float32 per state tensor"),
    # YAML model configs and TOML profiles are a few kB.
    Limit("text_bytes", 1 * MiB, "bytes", "the official YAML files are under 5 kB"),
]
LIMITS: dict[str, Limit] = {lim.name: lim for lim in _ALL}


def _env(name: str) -> str:
    return f"EMSDEPLOY_LIMIT_{name.upper()}"


def limit(name: str) -> int:
    """The bound called ``name``, raised by ``EMSDEPLOY_LIMIT_<NAME>`` when that is set."""
    lim = LIMITS[name]
    raw = os.environ.get(_env(name))
    if raw is None:
        return lim.value
    try:
        value = int(raw)
    except ValueError:
        raise LimitError(f"{_env(name)}={raw!r}: not an integer") from None
    if value < 1:
        raise LimitError(f"{_env(name)}={raw!r}: must be a positive integer")
    return value


def check_limit(name: str, value: int, what: str) -> int:
    """Raise :class:`LimitError` naming ``what`` when ``value`` exceeds the bound ``name``."""
    bound = limit(name)
    if value > bound:
        lim = LIMITS[name]
        raise LimitError(
            f"{what} is {value:,} {lim.unit}; the limit is {bound:,} ({lim.reason}); "
            f"set {_env(name)} to raise it for a deliberate large run"
        )
    return value
