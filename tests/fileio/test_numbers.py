"""Issue 15 findings 5 and 6: bad numbers are refused (or, for data labels, dropped with a
counted warning); files we write get the umask's permissions."""

from __future__ import annotations

import copy
import json
import os
import stat

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from emsdeploy.checkpoint import from_model, save_checkpoint
from emsdeploy.cli import cli
from emsdeploy.models.data import DatasetWarning, read_boxes
from tests.data.test_gen1 import GEN1_BOX_DTYPE, write_boxes
from tests.fileio.conftest import run_cli
from tests.helpers import edit_hdf5, tiny_ee

BAD_ARRAYS = {
    "nan": (np.full((1, 3, 32, 32), np.nan, np.float32), "values must be finite"),
    "inf": (np.full((1, 3, 32, 32), np.inf, np.float32), "values must be finite"),
    "empty": (np.zeros((0, 3, 32, 32), np.float32), "empty array"),
    "complex": (np.zeros((1, 3, 32, 32), np.complex64), "complex"),
    "object": (None, "pickles"),
}


def _bad_npy(kind, path):
    arr, _ = BAD_ARRAYS[kind]
    if arr is None:
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        np.save(path, arr)
    return path


@pytest.mark.parametrize("command", ["run", "verify", "energy"])
@pytest.mark.parametrize("kind", sorted(BAD_ARRAYS))
def test_bad_input_arrays(kind, command, tiny_onnx, tiny_ckpt, tmp_path):
    bad = _bad_npy(kind, tmp_path / f"{kind}.npy")
    argv = {
        "run": ["run", tiny_onnx, "--input", bad],
        "verify": ["verify", tiny_ckpt, "--input", bad, "--targets", "ref"],
        "energy": ["energy", tiny_ckpt, "--input", bad],
    }[command]
    run_cli(*argv).assert_clear_error(str(bad), BAD_ARRAYS[kind][1])


@pytest.fixture(scope="module")
def nan_ir(tiny_ir, tmp_path_factory):
    path = tmp_path_factory.mktemp("nan") / "nan.emsir"
    path.write_bytes(tiny_ir.read_bytes())
    with edit_hdf5(path) as f:
        w = f["nodes"]["00001"]["weight"]
        v = w[()]
        v.flat[3] = np.nan
        w[...] = v
    return path


@pytest.mark.parametrize("target", ["lava", "onnx", "nir"])
def test_nan_weights_in_an_ir_file(target, nan_ir, tmp_path):
    r = run_cli("export", nan_ir, "--target", target, "-o", tmp_path / "out")
    r.assert_clear_error(str(nan_ir), "weight", "nan", "must be finite")
    assert not (tmp_path / "out").exists()


def test_nan_weights_never_reach_the_lava_quantiser(tmp_path):
    """A checkpoint (not an IR file) with a NaN weight: the Lava lowering refuses it by name."""
    model = tiny_ee()
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad():
        conv.weight[0, 0, 0, 0] = float("nan")
    ck = save_checkpoint(tmp_path / "nan.pt", from_model(model, {"input_size": 32}))
    r = run_cli("export", ck, "--target", "lava", "-o", tmp_path / "out")
    r.assert_clear_error("NaN or Inf", "Lava quantiser")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.pt"]


def test_groups_zero(tiny_ir, tmp_path):
    ck = from_model(tiny_ee(), {"input_size": 32})
    cfg = copy.deepcopy(ck.config)
    row = cfg["backbone"][0]
    cfg["backbone"][0] = [row[0], row[1], row[2], [*row[3][:3], None, 0]]
    ck.config = cfg
    path = save_checkpoint(tmp_path / "g0.pt", ck)
    run_cli("inspect", path).assert_clear_error(str(path), "groups")
    ir = tmp_path / "g0.emsir"
    ir.write_bytes(tiny_ir.read_bytes())
    with edit_hdf5(ir) as f:
        g = f["nodes"]["00001"]
        params = json.loads(g.attrs["params"])
        params["groups"] = 0
        g.attrs["params"] = json.dumps(params)
    run_cli("inspect", ir).assert_clear_error(str(ir), "groups must be a positive integer")


def test_gen1_negative_width_is_a_counted_warning(tmp_path):
    rows = [(100, 10, 10, 20, 20, 0, 1.0, 1), (100, 50, 50, -5, 20, 1, 1.0, 2), (200, 5, 5, 10, -1, 0, 1.0, 3)]
    path = write_boxes(tmp_path / "r_bbox.npy", rows, GEN1_BOX_DTYPE)
    with pytest.warns(DatasetWarning, match=r"2 labels with negative width or height dropped \(first: row 1\)"):
        boxes = read_boxes(path)
    assert len(boxes) == 1 and boxes["w"][0] == 20


def test_gen1_label_file_with_nan_is_refused(tmp_path):
    rows = [(100, np.nan, 10, 20, 20, 0, 1.0, 1)]
    path = write_boxes(tmp_path / "n_bbox.npy", rows, GEN1_BOX_DTYPE)
    with pytest.raises(ValueError, match="must be finite"):
        read_boxes(path)


def test_data_pngs_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        r = CliRunner().invoke(cli, ["data", "shapes", "-o", str(tmp_path / "val"), "--limit", "2"])
    finally:
        os.umask(old)
    assert r.exit_code == 0, r.output
    files = sorted((tmp_path / "val").iterdir())
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in files), [oct(p.stat().st_mode) for p in files]
