"""Issue 15 finding 2: tiny files and flags that ask for gigabytes fail fast, in one line that
states the limit, and a deliberate large run stays possible (EMSDEPLOY_LIMIT_<NAME>).
The last test runs every case in one fresh process and measures its peak RSS."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from emsdeploy.checkpoint import from_model, save_checkpoint
from emsdeploy.fileio import check_limit
from emsdeploy.models import ConfigError, build_model, parse_config
from tests.fileio.attacks import attack, secret_files
from tests.fileio.conftest import run_cli
from tests.helpers import edit_hdf5, tiny_ee

RSS_BUDGET_MB = 800  # issue 15: peak RSS under 800 MB over the baseline


def _ckpt_with(folder: Path, name: str, **changes) -> Path:
    ck = from_model(tiny_ee(), {"input_size": 32})
    cfg = copy.deepcopy(ck.config)
    cfg.update(changes)
    ck.config = cfg
    return save_checkpoint(folder / name, ck)


def _npy_header_only(path: Path, shape: tuple[int, ...], dtype: str = "<f4") -> Path:
    """A .npy whose header declares ``shape`` but holds no data (a few hundred bytes)."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
    return path


def _onnx_state(path: Path, dims: list[int]) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])
    s = helper.make_tensor_value_info("state_in.a.h", TensorProto.FLOAT, dims)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 32, 32])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x, s], [y])
    onnx.save(helper.make_model(g), path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_ir, tiny_onnx) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("limits")
    raw, h5 = secret_files(d)
    out = {
        "nc": _ckpt_with(d, "nc.pt", nc=1_500_000),
        "width": _ckpt_with(d, "width.pt", width_multiple=8.0),  # 512 x 8 = 4096 channels
        "unwritten": d / "unwritten.emsir",
        "bomb": d / "bomb.emsir",
        "npy": _npy_header_only(d / "big.npy", (100_000, 3, 32, 32)),  # 1.2 GB declared in 128 bytes
        "onnx_state": _onnx_state(d / "state.onnx", [1, 100_000, 100_000, 100]),
        "input_ir": d / "input.emsir",
        "onnx": tiny_onnx,
    }
    attack("unwritten", tiny_ir, out["unwritten"], raw, h5)
    attack("compression_bomb", tiny_ir, out["bomb"], raw, h5)
    out["input_ir"].write_bytes(tiny_ir.read_bytes())
    with edit_hdf5(out["input_ir"]) as f:
        g = f["nodes"]["00000"]
        params = json.loads(g.attrs["params"])
        params["shape"] = [3, 100_000, 100_000]
        g.attrs["params"] = json.dumps(params)
    return out


def cases(f: dict[str, Path], ckpt: Path, tmp: Path) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (argv, fragments the one-line error must contain)."""
    return {
        "verify_T": (["verify", str(ckpt), "-T", "1000000000000", "--targets", "ref"], ["T is 1,000,000,000,000", "limit is 64"]),
        "energy_T": (["energy", str(ckpt), "-T", "99999"], ["T is 99,999", "EMSDEPLOY_LIMIT_TIME_STEPS"]),
        "export_T": (["export", str(ckpt), "--target", "onnx", "-T", "100000", "-o", str(tmp / "x.onnx")], ["limit is 64"]),
        "run_T": (["run", str(f["onnx"]), "--input", str(f["npy"]), "--time-steps", "10000000"], ["limit is 64"]),
        "trace_size": (["trace", str(ckpt), "--input-size", "100000", "-o", str(tmp / "x.emsir")], ["input size", "limit is 2,048"]),
        "inspect_size": (["inspect", str(ckpt), "--input-size", "3x90000"], ["limit is 2,048"]),
        # a checkpoint's config is checked on load (emsdeploy.checkpoint.checks), before the build's limit
        "nc": (["inspect", str(f["nc"])], [str(f["nc"]), "config['nc'] must be an integer in [1, 100000], got 1500000"]),
        "width": (["export", str(f["width"]), "--target", "onnx", "-o", str(tmp / "w.onnx")], [str(f["width"]), "4,096 channels", "limit is 2,048"]),
        "ir_unwritten": (["inspect", str(f["unwritten"])], [str(f["unwritten"]), "stores 0 bytes"]),
        "ir_bomb": (["export", str(f["bomb"]), "--target", "onnx", "-o", str(tmp / "b.onnx")], [str(f["bomb"]), "unwritten chunks"]),
        "ir_input_shape": (["energy", str(f["input_ir"])], [str(f["input_ir"]), "limit is 2,048"]),
        "npy_run": (["run", str(f["onnx"]), "--input", str(f["npy"])], [str(f["npy"]), "limit is"]),
        "npy_verify": (["verify", str(ckpt), "--input", str(f["npy"]), "--targets", "ref"], [str(f["npy"]), "limit is"]),
        "npy_energy": (["energy", str(ckpt), "--input", str(f["npy"])], [str(f["npy"]), "limit is"]),
        "onnx_state": (["run", str(f["onnx_state"]), "--input", str(f["npy"])], [str(f["onnx_state"]), "state_in.a.h", "limit is"]),
    }  # fmt: skip


@pytest.mark.parametrize(
    "name",
    ["verify_T", "energy_T", "export_T", "run_T", "trace_size", "inspect_size", "nc", "width", "ir_unwritten",
     "ir_bomb", "ir_input_shape", "npy_run", "npy_verify", "npy_energy", "onnx_state"],
)  # fmt: skip
def test_size_bounds(name, files, tiny_ckpt, tmp_path):
    argv, fragments = cases(files, tiny_ckpt, tmp_path)[name]
    run_cli(*argv).assert_clear_error(*fragments)
    assert list(tmp_path.iterdir()) == []


def test_a_deliberate_large_run_raises_the_limit(monkeypatch):
    with pytest.raises(Exception, match="EMSDEPLOY_LIMIT_TIME_STEPS"):
        check_limit("time_steps", 100, "T")
    monkeypatch.setenv("EMSDEPLOY_LIMIT_TIME_STEPS", "500")
    assert check_limit("time_steps", 100, "T") == 100


def test_config_bounds_and_groups():
    cfg = build_model("res10-ee").config
    with pytest.raises(ConfigError, match="nc is 1,500,000"):
        parse_config({**cfg, "nc": 1_500_000})
    with pytest.raises(ConfigError, match="4,096 channels"):
        parse_config({**cfg, "width_multiple": 8.0})
    groups0 = copy.deepcopy(cfg)
    groups0["backbone"][0] = [-1, 1, "Conv_2", [32, 3, 2, None, 0]]
    with pytest.raises(ConfigError, match="groups"):
        parse_config(groups0)
    repeats = copy.deepcopy(cfg)
    repeats["head"][0] = [-1, 10**6, "BasicBlock_ms", [512, 3, 1]]
    with pytest.raises(ConfigError, match="repeats"):
        parse_config(repeats)


_DRIVER = r"""
import io, json, resource, sys, time, contextlib
import torch, h5py, onnx, onnxruntime, numpy
from emsdeploy.cli.main import cli
def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
base = rss_mb()
out = []
for name, argv in json.loads(sys.argv[1]).items():
    err = io.StringIO()
    t0 = time.perf_counter()
    code = 0
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            cli.main(argv, prog_name="emsdeploy", standalone_mode=False)
    except SystemExit as e:
        code = e.code
    except BaseException as e:
        code = "exception: " + repr(e)
    out.append({"name": name, "code": code, "stderr": err.getvalue(), "s": time.perf_counter() - t0, "rss_mb": rss_mb()})
print(json.dumps({"base_mb": base, "cases": out}))
"""


@pytest.mark.slow
def test_peak_rss_of_every_case_stays_small(files, tiny_ckpt, tmp_path):
    """All cases in one fresh process: ru_maxrss never falls, so its final value bounds each case."""
    argvs = {name: argv for name, (argv, _) in cases(files, tiny_ckpt, tmp_path).items()}
    r = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(argvs)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    for c in report["cases"]:
        assert c["code"] == 2 and len(c["stderr"].strip().splitlines()) == 1, c
        assert c["s"] < 10, c  # fails fast
    peak = max(c["rss_mb"] for c in report["cases"]) - report["base_mb"]
    print(f"peak RSS over baseline: {peak:.0f} MB (baseline {report['base_mb']:.0f} MB)")
    assert peak < RSS_BUDGET_MB
