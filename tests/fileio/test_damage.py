"""Issue 15 finding 4: cut, bit-flipped or tampered ONNX files and Lava folders give one line
naming the file and what is wrong (exit 2), or are caught by the checksum our exporters write:
``metadata_props["emsdeploy.sha256"]`` in ONNX, ``manifest.json`` in Lava folders."""

from __future__ import annotations

import shutil

import onnx
import pytest

from emsdeploy.fileio import seal_onnx
from tests.fileio.attacks import secret_files
from tests.fileio.conftest import OpenWatch, run_cli


def _npy(tmp_path):
    import numpy as np

    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32))
    return path


def _damaged_onnx(kind: str, good, out, tmp_path):
    data = bytearray(good.read_bytes())
    model = onnx.load_from_string(bytes(data))
    if kind == "cut":
        data = data[: len(data) // 2]
    elif kind == "flip_metadata":  # a bit of the T in metadata_props: parses, says T = 7 not 3
        i = data.find(b"time_steps") + len(b"time_steps") + 2
        data[i] ^= 0x04
    elif kind == "flip_weight":  # one bit of the largest initialiser: parses, computes garbage
        big = max(model.graph.initializer, key=lambda t: len(t.raw_data))
        i = data.find(big.raw_data) + len(big.raw_data) // 2
        data[i] ^= 0x10
    elif kind == "external_data":
        raw, _ = secret_files(tmp_path)
        t = model.graph.initializer[0]
        t.ClearField("raw_data")
        t.data_location = onnx.TensorProto.EXTERNAL
        e = t.external_data.add()
        e.key, e.value = "location", str(raw)
        data = bytearray(seal_onnx(model).SerializeToString())  # an attacker can seal it again
    out.write_bytes(bytes(data))
    return out


ONNX_DAMAGE = {
    "cut": "not a readable ONNX model",
    "flip_metadata": "checksum mismatch",
    "flip_weight": "checksum mismatch",
    "external_data": "keeps its data in another file",
}


@pytest.mark.parametrize("command", ["run", "verify"])
@pytest.mark.parametrize("kind", sorted(ONNX_DAMAGE))
def test_damaged_onnx(kind, command, tiny_onnx, tiny_ir, tmp_path):
    bad = _damaged_onnx(kind, tiny_onnx, tmp_path / f"{kind}.onnx", tmp_path)
    secret = tmp_path / "secret.bin"
    watch = OpenWatch(secret) if secret.exists() else None
    if command == "run":
        r = run_cli("run", bad, "--input", _npy(tmp_path))
    else:
        r = run_cli("verify", tiny_ir, "--targets", "onnx", "--onnx", bad, "--limit", "1")
    r.assert_clear_error(str(bad), ONNX_DAMAGE[kind])
    if watch:
        assert watch.events() == 0


def test_intact_onnx_still_runs(tiny_onnx, tmp_path):
    r = run_cli("run", tiny_onnx, "--input", _npy(tmp_path))
    assert r.code == 0, r.stderr


LAVA_DAMAGE = {
    "missing_h5": ("network.lava.h5", "missing (listed in manifest.json)"),
    "truncated_h5": ("network.lava.h5", "manifest.json says"),
    "flipped_h5": ("network.lava.h5", "checksum mismatch"),
    "mapping_mismatch": ("mapping.json", "checksum mismatch"),
    "no_manifest": ("", "no manifest.json"),
    "extra_file": ("", "not listed in manifest.json"),
}


@pytest.mark.lava  # verify --lava runs the folder in lava-nc
@pytest.mark.parametrize("kind", sorted(LAVA_DAMAGE))
def test_damaged_lava_folder(kind, tiny_lava, tiny_ir, tmp_path):
    folder = tmp_path / "net"
    shutil.copytree(tiny_lava, folder)
    name, what = LAVA_DAMAGE[kind]
    target = folder / name if name else folder
    if kind == "missing_h5":
        target.unlink()
    elif kind == "truncated_h5":
        target.write_bytes(target.read_bytes()[:-1000])
    elif kind == "flipped_h5":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x01
        target.write_bytes(bytes(data))
    elif kind == "mapping_mismatch":  # same size, one number changed: the report of another export
        text = target.read_text()
        i = next(k for k, ch in enumerate(text) if ch.isdigit())
        target.write_text(text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1 :])
    elif kind == "no_manifest":
        (folder / "manifest.json").unlink()
    elif kind == "extra_file":
        (folder / "network.net").write_bytes(b"planted")
    r = run_cli("verify", tiny_ir, "--targets", "lava", "--lava", folder, "--limit", "1")
    r.assert_clear_error(str(target), what)


def test_lava_export_refuses_to_replace_a_folder_of_other_files(tiny_ir, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    r = run_cli("export", tiny_ir, "--target", "lava", "-o", home)
    r.assert_clear_error(str(home), "thesis.tex")
    assert (home / "thesis.tex").read_text() == "years of work"
