"""HDF5 files that try to read other files or ask for memory, built from a valid file of ours.

Each attack rewrites one dataset of a copy and seals the copy again, as an attacker who knows
our format would (the seal is a checksum against damage, not a signature)."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np

from tests.helpers import edit_hdf5

SECRET = b"TOP-SECRET-" * 512


def _first_array(f: h5py.File) -> str:
    """The path of the first non-empty numeric dataset of the file."""
    found: list[str] = []

    def visit(name: str, obj) -> None:
        if not found and isinstance(obj, h5py.Dataset) and obj.size > 1:
            found.append(name)

    f.visititems(visit)
    return found[0]


def secret_files(folder: Path) -> tuple[Path, Path]:
    """A raw secret and an HDF5 file holding it (targets of the links)."""
    raw = folder / "secret.bin"
    raw.write_bytes(SECRET)
    h5 = folder / "secret.h5"
    with h5py.File(h5, "w") as f:
        f["data"] = np.frombuffer(SECRET, np.uint8)
    return raw, h5


def attack(kind: str, valid: Path, out: Path, raw: Path, h5: Path) -> str:
    """Write the ``kind`` attack on a copy of ``valid`` to ``out``; returns the dataset it replaced."""
    shutil.copyfile(valid, out)
    with edit_hdf5(out) as f:
        name = _first_array(f)
        ds = f[name]
        shape, dtype = ds.shape, ds.dtype
        parent, leaf = name.rsplit("/", 1) if "/" in name else ("/", name)
        del f[name]
        g = f[parent]
        if kind == "external_storage":
            g.create_dataset(
                leaf, shape=shape, dtype=dtype, external=[(str(raw), 0, int(np.prod(shape)) * dtype.itemsize)]
            )
        elif kind == "soft_link":
            g[leaf] = h5py.SoftLink("/" + _first_array(f))
        elif kind == "external_link":
            g[leaf] = h5py.ExternalLink(str(h5), "/data")
        elif kind == "virtual":
            layout = h5py.VirtualLayout(shape=(len(SECRET),), dtype=np.uint8)
            layout[:] = h5py.VirtualSource(str(h5), "data", shape=(len(SECRET),))
            g.create_virtual_dataset(leaf, layout)
        elif kind == "unwritten":  # 1.5 GB declared, nothing stored
            g.create_dataset(leaf, shape=(375_000_000,), dtype=np.float32)
        elif kind == "compression_bomb":  # 1.5 GB declared behind a deflate filter, nothing stored
            g.create_dataset(leaf, shape=(375_000_000,), dtype=np.float32, chunks=(1 << 20,), compression="gzip")
        elif kind == "huge_declared":  # beyond the dataset bound
            g.create_dataset(leaf, shape=(1 << 40,), dtype=np.float32, chunks=(1024,))
        elif kind == "hard_link_twice":
            g.create_dataset(leaf, data=np.zeros(shape, dtype))
            f["/second_name"] = g[leaf]
        else:
            raise ValueError(kind)
    return name


ATTACKS = {
    "external_storage": "external storage",
    "soft_link": "soft link",
    "external_link": "external link",
    "virtual": "virtual dataset",
    "unwritten": "unwritten or cut",
    "huge_declared": "the limit is",
    "compression_bomb": "unwritten chunks",
    "hard_link_twice": "hard links",
}
