"""The one place where user files are read and artifacts written.

Every file a user gives us is untrusted. Each kind has one checked reader here, and no other
module opens these formats directly (``tests/test_fileio_boundary.py`` checks it):

* HDF5 (``.emsir``, Lava folders): :func:`open_hdf5` (:mod:`.hdf5`)
* ONNX: :func:`load_onnx` (:mod:`.onnx_model`)
* ``.npy``: :func:`load_npy` (:mod:`.npy`)
* YAML/TOML text and images: :func:`read_text`, :func:`read_toml`, :func:`open_image` (:mod:`.text`)

Sizes are bounded by the named limits of :mod:`.limits`. Every artifact is written through
:func:`atomic_write` or :func:`atomic_folder` (:mod:`.atomic`). docs/security.md lists what each
reader refuses.
"""

from __future__ import annotations

from .atomic import atomic_folder, atomic_write, atomic_write_bytes, atomic_write_text, temporaries
from .hdf5 import USERBLOCK_SIZE, open_hdf5, seal_hdf5, sha256_file
from .limits import LIMITS, check_limit, limit
from .manifest import MANIFEST, manifest_names, verify_manifest, write_manifest
from .npy import load_npy, npy_header
from .onnx_model import check_onnx_bytes, load_onnx, seal_onnx
from .text import open_image, read_text, read_toml

__all__ = [
    "LIMITS",
    "MANIFEST",
    "USERBLOCK_SIZE",
    "atomic_folder",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_limit",
    "check_onnx_bytes",
    "limit",
    "load_npy",
    "load_onnx",
    "manifest_names",
    "npy_header",
    "open_hdf5",
    "open_image",
    "read_text",
    "read_toml",
    "seal_hdf5",
    "seal_onnx",
    "sha256_file",
    "temporaries",
    "verify_manifest",
    "write_manifest",
]
