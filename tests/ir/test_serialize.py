"""The .emsir HDF5 format: identical round trips; damaged, foreign and newer files fail clearly."""

import h5py
import pytest

from emsdeploy.errors import IRFormatError
from emsdeploy.ir import SCHEMA_VERSION, read_ir, write_ir
from emsdeploy.passes import fold_affine, partition
from emsdeploy.targets import load_target
from emsdeploy.tracer import trace
from tests.helpers import edit_hdf5, tiny_ee


@pytest.fixture(scope="module")
def graph():
    return trace(tiny_ee(), (32, 32))


def test_round_trip_is_identical(graph, tmp_path):
    a = write_ir(graph, tmp_path / "a.emsir")
    g1 = read_ir(a)
    assert g1.same_as(graph)
    b = write_ir(g1, tmp_path / "b.emsir")
    assert read_ir(b).same_as(g1)


def test_round_trip_keeps_float64_folded_weights_and_meta(graph, tmp_path):
    g = partition(fold_affine(graph), load_target("lava"))
    back = read_ir(write_ir(g, tmp_path / "f.emsir"))
    assert back.same_as(g)
    conv = back["model.0.conv"]
    assert conv.op.weight.dtype.name == "float64" and conv.meta["partition"] == "host"


def test_truncated_file(graph, tmp_path):
    path = write_ir(graph, tmp_path / "g.emsir")
    data = path.read_bytes()
    cut = tmp_path / "cut.emsir"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(IRFormatError, match="cut.emsir"):
        read_ir(cut)


def test_corrupted_weights_are_detected_by_checksum(graph, tmp_path):
    path = write_ir(graph, tmp_path / "g.emsir")
    with h5py.File(path, "r") as f:
        ds = f["nodes"]["00001"]["weight"]  # model.0.conv
        offset = ds.id.get_offset() if ds.chunks is None else ds.id.get_chunk_info(0).byte_offset
    raw = bytearray(path.read_bytes())
    raw[offset + 5] ^= 0xFF
    bad = tmp_path / "bad.emsir"
    bad.write_bytes(bytes(raw))
    with pytest.raises(IRFormatError, match="bad.emsir"):
        read_ir(bad)


def test_newer_schema_is_refused(graph, tmp_path):
    path = write_ir(graph, tmp_path / "g.emsir")
    with edit_hdf5(path) as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(IRFormatError, match=f"schema version {SCHEMA_VERSION + 1} is newer"):
        read_ir(path)


def test_unknown_op_is_named(graph, tmp_path):
    path = write_ir(graph, tmp_path / "g.emsir")
    with edit_hdf5(path) as f:
        f["nodes"]["00003"].attrs["op"] = "Quantum"
    with pytest.raises(IRFormatError, match="unknown op 'Quantum'"):
        read_ir(path)


@pytest.mark.parametrize("content", [b"", b"not hdf5 at all"])
def test_foreign_files(tmp_path, content):
    p = tmp_path / "x.emsir"
    p.write_bytes(content)
    with pytest.raises(IRFormatError, match="x.emsir"):
        read_ir(p)


def test_hdf5_without_our_format_tag(tmp_path):
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f["a"] = [1, 2]
    with pytest.raises(IRFormatError, match="not an emsdeploy IR file"):
        read_ir(p)


def test_failed_write_leaves_no_partial_file(graph, tmp_path, monkeypatch):
    import emsdeploy.ir.serialize as ser

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ser, "_write", boom)
    with pytest.raises(RuntimeError):
        write_ir(graph, tmp_path / "g.emsir")
    assert list(tmp_path.iterdir()) == []
