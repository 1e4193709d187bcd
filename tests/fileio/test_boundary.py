"""No module outside emsdeploy/fileio opens an untrusted file format directly (issue 15).

The AST of every package module is searched for the calls that open each kind: reading HDF5
(``h5py.File`` without a write mode), ``onnx.load*``, ``onnxruntime.InferenceSession``,
``np.load``/``np.memmap``, ``PIL.Image.open``, YAML and TOML parsing of anything but
:func:`emsdeploy.fileio.read_text`. The few exceptions read our own temporary files, each with
its reason."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ["emsdeploy", "exporters", "models", "simulators"]
CHECKED = REPO / "emsdeploy" / "fileio"

ALLOWED = {
    # onnxruntime gets the bytes the checked reader (load_onnx / check_onnx_bytes) returned
    ("exporters/onnx/runtime.py", "InferenceSession"),
    ("exporters/onnx/fixed_runtime.py", "InferenceSession"),
    # the Lava recorder's own .npy files, written by this process into its TemporaryDirectory
    ("exporters/lava/network.py", "np.load"),
    # the Lava worker's input and output .npz/.npy, written by its parent into a private temp folder
    ("exporters/lava/runner.py", "np.load"),
    # Gen1 event files: a memory map of exactly the bytes present, every field range-checked on decode
    ("models/data/gen1.py", "np.memmap"),
    # NIR's own HDF5 reader, called only after open_hdf5 has vetted the file
    ("exporters/nir/importer.py", "nir.read"),
    # checkpoints have their own loaders (emsdeploy/checkpoint), outside this boundary
}


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return "?"


def _mode(call: ast.Call) -> str | None:
    args = [*call.args[1:2], *(k.value for k in call.keywords if k.arg == "mode")]
    for a in args:
        if isinstance(a, ast.Constant) and isinstance(a.value, str):
            return a.value
    return None


def _reads_checked_text(call: ast.Call) -> bool:
    return bool(call.args) and isinstance(call.args[0], ast.Call) and _name(call.args[0].func).endswith("read_text")


def violations(path: Path) -> list[str]:
    rel = path.relative_to(REPO).as_posix() if REPO in path.parents else path.name
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        kind = None
        if name.endswith("h5py.File") and _mode(node) in (None, "r", "r+", "a"):
            kind = "h5py.File (read)"
        elif name.startswith("onnx.load") or name in ("onnx.load_model", "onnx.load_from_string"):
            kind = name
        elif name.endswith("InferenceSession"):
            kind = "InferenceSession"
        elif name in ("np.load", "numpy.load", "np.memmap", "numpy.memmap"):
            kind = name.replace("numpy", "np")
        elif name == "nir.read":
            kind = name
        elif name.endswith("Image.open"):
            kind = "Image.open"
        elif name in ("yaml.load", "yaml.full_load", "yaml.unsafe_load", "tomllib.load", "tomli.load"):
            kind = name
        elif name in ("yaml.safe_load", "tomllib.loads", "tomli.loads") and not _reads_checked_text(node):
            kind = f"{name} of unchecked text"
        if kind and (rel, kind) not in ALLOWED:
            found.append(f"{rel}:{node.lineno}: {kind}")
    return found


def test_no_module_opens_untrusted_formats_directly():
    files = [p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py") if CHECKED not in p.parents]
    assert len(files) > 50
    bad = [v for f in files for v in violations(f)]
    assert bad == [], "open these through emsdeploy.fileio:\n" + "\n".join(bad)


def test_the_search_finds_what_it_looks_for(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import h5py, numpy as np, onnx, yaml\n"
        "h5py.File('x')\nnp.load('x')\nonnx.load('x')\nyaml.safe_load(open('x'))\n"
        "h5py.File('x', 'w')\nyaml.safe_load(read_text('x'))\n"
    )
    assert len(violations(probe)) == 4
